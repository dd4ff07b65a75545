"""JiT, MIRegularized (+ Î and trajectories), MutualInformation, WassersteinBarycenter, FeatureIndependence."""
from __future__ import annotations

import functools
import math
import sys
import types

import numpy as np
import pytest
import torch
from torch import nn

from erasure.core.errors import ConfigError
from erasure.core.timing import Timing
from erasure.data.dataset import Dataset
from erasure.data.forget import ClassForget, FeatureForget
from erasure.data.partitions import Partitions, Split, make_partitions
from erasure.data.sources.sklearn import SklearnDigits
from erasure.data.sources.synthetic import Synthetic
from erasure.evaluators.base import Outcome
from erasure.evaluators.feature_independence import (
    FeatureIndependence, bures_wasserstein_distance, empirical_w2_between_groups, gaussian_w2_between_groups,
    majority_rate, probe_scores)
from erasure.evaluators.mutual_information import (
    MutualInformation, soft_mutual_information, soft_mutual_information_from_logits)
from erasure.models.training import TrainingRecipe, accuracy, predict_logits, train_model
from erasure.models.zoo import MLP
from erasure.unlearners.base import UnlearningContext
from erasure.unlearners.jit import JiT, lipschitz_loss, local_lipschitz_ratio, perturb
from erasure.unlearners.mi_regularized import MIRegularized, trajectory_metrics
from erasure.unlearners.wasserstein import (
    WassersteinBarycenter, exact_barycenter_transform, gaussian_barycenter_maps, gaussian_barycenter_transform)

RECIPE = TrainingRecipe(epochs=15, batch_size=64)
CPU = torch.device("cpu")


# ----------------------------------------------------------------------------- helpers
@functools.lru_cache(maxsize=None)
def digits_partitions() -> Partitions:
    return make_partitions(SklearnDigits().load(), Split(0.2), ClassForget([3], 0.75), seed=0)


def new_mlp(dataset: Dataset, seed: int = 0, dropout: float = 0.0) -> MLP:
    torch.manual_seed(seed)
    return MLP(dataset.input_shape, dataset.num_classes, [32], dropout)


@functools.lru_cache(maxsize=None)
def _trained_state(partition: str) -> dict:
    parts = digits_partitions()
    model = new_mlp(parts.dataset)
    train_model(model, parts, partition, RECIPE, torch.Generator().manual_seed(0))
    return {k: v.clone() for k, v in model.state_dict().items()}


def trained_mlp(partition: str = "train") -> MLP:
    """A 64-32-10 MLP trained on the digits' ``partition`` (trained once per test session)."""
    model = new_mlp(digits_partitions().dataset)
    model.load_state_dict(_trained_state(partition))
    return model.eval()


def make_context(parts: Partitions, gold: nn.Module | None = None, log: list | None = None) -> UnlearningContext:
    logged = log if log is not None else []

    def gold_provider():
        if gold is None:
            raise AssertionError("this unlearner should not need the gold model")
        return gold, Timing(wall_seconds=123.0)

    return UnlearningContext(
        partitions=parts, device=CPU, num_classes=parts.dataset.num_classes, recipe=RECIPE, seed=0,
        generator=torch.Generator().manual_seed(0), rng=np.random.default_rng(0),
        new_model=lambda: new_mlp(parts.dataset, seed=1), gold_provider=gold_provider,
        log_fn=lambda step, metrics: logged.append((step, dict(metrics))),
    )


@functools.lru_cache(maxsize=None)
def synthetic_partitions(correlation: float = 0.8) -> Partitions:
    dataset = Synthetic(n_samples=600, n_features=6, num_classes=4, attribute="z", attribute_correlation=correlation,
                        attribute_shift=3.0, seed=1).load()
    return make_partitions(dataset, Split(0.2), FeatureForget("z"), seed=0)


def three_group_data(n: int = 240) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    z = np.arange(n) % 3
    x = rng.normal(size=(n, 2)) * (1 + z[:, None]) + np.array([[0, 0], [4, 0], [0, 4]])[z]
    return x, z


def params_vector(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()])


# ------------------------------------------------------------------ Î (soft plug-in)
def test_soft_mi_is_zero_when_mean_softmax_is_equal():
    remain = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.6, 0.3]], dtype=torch.float64)
    unlearn = torch.tensor([[0.5, 0.3, 0.2], [0.3, 0.5, 0.2]], dtype=torch.float64)  # different rows, same mean (0.4, 0.4, 0.2)
    assert float(soft_mutual_information(remain, unlearn)) == pytest.approx(0.0, abs=1e-12)
    assert float(soft_mutual_information(remain.float(), unlearn.float())) == pytest.approx(0.0, abs=1e-6)
    shifted = torch.tensor([[0.9, 0.05, 0.05], [0.8, 0.1, 0.1]])
    assert float(soft_mutual_information(remain, shifted)) > 1e-3


def test_soft_mi_matches_a_hand_computation():
    remain = torch.tensor([[0.5, 0.5]], dtype=torch.float64)
    unlearn = torch.tensor([[0.75, 0.25]], dtype=torch.float64)
    # N = 2·1 + 1 = 3; P(c,0) = (0.5+0.75, 0.5+0.25)/3, P(c,1) = (0.5, 0.5)/3
    joint = np.array([[1.25, 0.5], [0.75, 0.5]]) / 3
    pc, pz = joint.sum(1, keepdims=True), joint.sum(0, keepdims=True)
    expected = float((joint * np.log(joint / (pc * pz))).sum())
    assert expected > 0
    assert float(soft_mutual_information(remain, unlearn)) == pytest.approx(expected, rel=1e-6)
    # written out: P(c,z)·log(P(c,z) / (P(c)·π_z)), P(c) = (1.75/3, 1.25/3), π = (2/3, 1/3)
    terms = [(1.25 / 3, 1.75 / 3, 2 / 3), (0.5 / 3, 1.75 / 3, 1 / 3), (0.75 / 3, 1.25 / 3, 2 / 3), (0.5 / 3, 1.25 / 3, 1 / 3)]
    assert expected == pytest.approx(sum(p * math.log(p / (a * b)) for p, a, b in terms))


def test_soft_mi_has_a_gradient_that_reduces_it():
    torch.manual_seed(0)
    remain = torch.randn(8, 4)
    unlearn = (torch.randn(3, 4) + torch.tensor([3.0, 0, 0, 0])).requires_grad_()
    value = soft_mutual_information_from_logits(remain, unlearn)
    value.backward()
    assert unlearn.grad is not None and torch.isfinite(unlearn.grad).all() and unlearn.grad.abs().sum() > 0
    with torch.no_grad():
        stepped = unlearn - 1.0 * unlearn.grad
    assert float(soft_mutual_information_from_logits(remain, stepped)) < float(value.detach())


def test_soft_mi_rejects_mismatched_classes():
    with pytest.raises(ValueError):
        soft_mutual_information(torch.rand(2, 3), torch.rand(2, 4))


# ------------------------------------------------------------------------------ JiT
class RecordingPartitions(Partitions):
    """Records every partition read; any read other than the forget set fails."""

    def __getitem__(self, name):
        self.extras.setdefault("read", []).append(name)
        if name != "forget":
            raise AssertionError(f"JiT read the {name!r} partition")
        return super().__getitem__(name)


def test_jit_never_touches_retain_data():
    parts = digits_partitions()
    inputs = parts.dataset.inputs.clone()
    outside_forget = torch.ones(len(inputs), dtype=torch.bool)
    outside_forget[parts["forget"]] = False
    inputs[outside_forget] = float("nan")  # retain, test and everything else poisoned
    poisoned = Dataset(inputs, parts.dataset.targets, parts.dataset.num_classes, name="poisoned")
    recording = RecordingPartitions(poisoned, dict(parts.indices), parts.forget_spec)
    model = trained_mlp()
    before = params_vector(model)
    out = JiT(sigma=0.5, lr=1e-2).unlearn(model, make_context(recording))
    after = params_vector(out)
    assert torch.isfinite(after).all()
    assert not torch.equal(before, after)
    assert set(recording.extras["read"]) == {"forget"}


def test_jit_lowers_the_local_lipschitz_ratio_on_forget_samples():
    parts = digits_partitions()
    forget_x = parts.inputs("forget")
    model = trained_mlp()
    before = local_lipschitz_ratio(model, forget_x, 0.5, 25, torch.Generator().manual_seed(7))
    out = JiT(sigma=0.5, lr=2e-3, batch_size=16).unlearn(model, make_context(parts))
    after = local_lipschitz_ratio(out, forget_x, 0.5, 25, torch.Generator().manual_seed(7))
    assert after < 0.9 * before
    assert not out.training


def test_perturb_clamps_and_scales_with_sigma():
    x = torch.rand(5, 1, 8, 8)
    small = perturb(x, 0.01, 7, torch.Generator().manual_seed(0))
    large = perturb(x, 1.0, 7, torch.Generator().manual_seed(0))
    assert small.shape == (7, 5, 1, 8, 8)
    assert large.min() >= x.min() and large.max() <= x.max()
    assert (small - x).abs().mean() < (large - x).abs().mean() / 10


def test_jit_runs_in_eval_mode_with_one_batched_forward_per_perturbation_set():
    parts = digits_partitions()
    model = new_mlp(parts.dataset, dropout=0.5)
    seen = []
    model.register_forward_hook(lambda m, inp, out: seen.append((m.training, inp[0].shape[0])))
    n_forget = parts.size("forget")
    # the paper's formula (the defaults are the reference code's train mode and N passes)
    JiT(num_samples=4, batch_size=32, accumulate_gradients=False, train_mode=False).unlearn(model, make_context(parts))
    assert all(not training for training, _ in seen)
    batches = math.ceil(n_forget / 32)
    assert len(seen) == 2 * batches  # f(x) and f(x') per batch: no per-sample Python
    assert [n for _, n in seen[:2]] == [32, 4 * 32]


def test_jit_lr_and_sigma_are_honoured():
    parts = digits_partitions()
    base = params_vector(trained_mlp())

    def moved(**kw):
        return float((params_vector(JiT(**kw).unlearn(trained_mlp(), make_context(parts))) - base).norm())

    assert moved(lr=1e-3) > 5 * moved(lr=1e-5)
    assert moved(lr=1e-3, sigma=0.01) != pytest.approx(moved(lr=1e-3, sigma=0.5), rel=1e-3)


def test_lipschitz_loss_matches_a_per_sample_computation():
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    x = torch.randn(4, 3)
    xp = perturb(x, 0.3, 5, torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = np.mean([sum(float((model(x[i]) - model(xp[n, i])).norm() / (x[i] - xp[n, i]).norm())
                                for i in range(4)) for n in range(5)])
    assert float(lipschitz_loss(model, x, xp, grad=False)) == pytest.approx(expected, rel=1e-5)


# ------------------------------------------------------------------- MIRegularized
def test_mi_regularized_logs_a_trajectory_and_unlearns():
    parts = digits_partitions()
    log: list = []
    original = trained_mlp()
    out = MIRegularized(gamma=5.0, epochs=3).unlearn(trained_mlp(), make_context(parts, log=log))
    assert [step for step, _ in log] == [0, 1, 2, 3]
    assert set(log[0][1]) == {"mutual_information", "accuracy_retain", "accuracy_forget", "accuracy_test"}
    assert log[0][1] == pytest.approx(trajectory_metrics(original, make_context(parts)))
    assert log[-1][1]["mutual_information"] < log[0][1]["mutual_information"]
    assert log[-1][1]["accuracy_forget"] < log[0][1]["accuracy_forget"] - 0.1
    assert log[-1][1]["accuracy_retain"] > 0.9
    assert accuracy(out, parts, "forget") == pytest.approx(log[-1][1]["accuracy_forget"])


def test_mi_regularized_gamma_zero_only_fine_tunes_and_gamma_drives_forgetting():
    parts = digits_partitions()
    forget = {g: accuracy(MIRegularized(gamma=g, epochs=3, trajectory=False).unlearn(trained_mlp(), make_context(parts)),
                          parts, "forget") for g in (0.0, 5.0)}
    assert forget[5.0] < forget[0.0] - 0.1


def test_mi_regularized_batch_sizes_lr_and_trajectory_switch():
    parts = digits_partitions()
    model = trained_mlp()
    sizes = []
    model.register_forward_hook(lambda m, inp, out: sizes.append(inp[0].shape[0]) if m.training else None)
    log: list = []
    MIRegularized(epochs=1, remain_batch_size=40, unlearn_batch_size=10, trajectory=False).unlearn(model, make_context(parts, log=log))
    assert log == []
    steps = min(math.ceil(parts.size("retain") / 40), math.ceil(parts.size("forget") / 10))
    assert len(sizes) == steps and sizes[0] == 50
    base = params_vector(trained_mlp())
    tiny = MIRegularized(epochs=1, lr=1e-9, trajectory=False).unlearn(trained_mlp(), make_context(parts))
    big = MIRegularized(epochs=1, lr=1e-3, trajectory=False).unlearn(trained_mlp(), make_context(parts))
    assert (params_vector(tiny) - base).norm() < 1e-4 < (params_vector(big) - base).norm()


def test_mi_regularized_optimizer_spec_is_used_and_lr_refused_inside():
    parts = digits_partitions()
    adam = MIRegularized(epochs=1, trajectory=False).unlearn(trained_mlp(), make_context(parts))
    sgd = MIRegularized(epochs=1, trajectory=False, optimizer={"class": "SGD"}).unlearn(trained_mlp(), make_context(parts))
    assert not torch.allclose(params_vector(adam), params_vector(sgd))
    from erasure.core.factory import build

    with pytest.raises(ConfigError, match="'lr' parameter") as refused:
        build({"class": "MIRegularized", "parameters": {"optimizer": {"class": "SGD", "parameters": {"lr": 0.1}}}},
              "unlearner", "unlearners[0]")
    assert refused.value.path == "unlearners[0].parameters.optimizer.parameters.lr"


def test_mi_regularized_stop_rules():
    parts = digits_partitions()
    original = trained_mlp()
    # Î below a threshold that already holds: nothing is trained
    log: list = []
    out = MIRegularized(epochs=5, stop="mutual_information", stop_threshold=1.0).unlearn(trained_mlp(), make_context(parts, log=log))
    assert [s for s, _ in log] == [0] and torch.equal(params_vector(out), params_vector(original))
    # forget accuracy target: stops as soon as it is reached, before the last epoch
    log = []
    MIRegularized(gamma=5.0, epochs=30, stop="forget_accuracy", stop_threshold=0.9).unlearn(trained_mlp(), make_context(parts, log=log))
    assert log[-1][1]["accuracy_forget"] <= 0.9 and all(m["accuracy_forget"] > 0.9 for _, m in log[:-1])
    assert len(log) < 31
    # gold's forget accuracy: read through gold_provider, without taking gold's run time
    gold = trained_mlp("retain")
    gold_acc = accuracy(gold, parts, "forget")
    log = []
    ctx = make_context(parts, gold=gold, log=log)
    MIRegularized(gamma=5.0, epochs=30, stop="gold_accuracy").unlearn(trained_mlp(), ctx)
    assert ctx.timing_override is None
    assert log[-1][1]["accuracy_forget"] <= gold_acc < min(m["accuracy_forget"] for _, m in log[:-1])


def test_mi_regularized_stop_checks():
    with pytest.raises(ConfigError) as err:
        MIRegularized(stop="mutual_information").check()
    assert err.value.path == "stop_threshold"
    with pytest.raises(ConfigError):
        MIRegularized(stop="gold_accuracy", stop_threshold=0.5).check()
    MIRegularized(stop="forget_accuracy", stop_threshold=0.5).check()


# -------------------------------------------------------------- MutualInformation
def outcome_for(model: nn.Module, parts: Partitions, original: nn.Module | None = None) -> Outcome:
    return Outcome(model=model, original=original or model, gold_provider=lambda: (model, Timing()), partitions=parts,
                   reference_partitions=parts, timing=Timing(), seed=0, unlearner="x", device=CPU)


def test_mutual_information_evaluator_uses_whole_forget_and_retain_sets():
    parts = digits_partitions()
    model = trained_mlp()
    value = MutualInformation().evaluate(outcome_for(model, parts))["mutual_information"]
    expected = soft_mutual_information_from_logits(predict_logits(model, parts, "retain"), predict_logits(model, parts, "forget"))
    assert value == pytest.approx(float(expected)) and value > 0
    feature = synthetic_partitions()
    assert math.isnan(MutualInformation().evaluate(outcome_for(new_mlp(feature.dataset), feature))["mutual_information"])


# ------------------------------------------------------------- end to end: trajectories
def test_trajectories_reach_csv_and_wandb_history_and_plot(tmp_path, monkeypatch):
    from erasure.execution.experiment import build_experiment
    from erasure.execution.runner import Runner
    from erasure.plot import main as plot_main
    from erasure.results.writers import read_rows

    logged: list = []

    class FakeRun:
        def __init__(self):
            self.summary = {}

        def log(self, values, step):
            logged.append((step, dict(values)))

        def finish(self, exit_code=0):
            pass

    fake = types.SimpleNamespace(init=lambda **kw: FakeRun(), Settings=lambda **kw: None)
    monkeypatch.setitem(sys.modules, "wandb", fake)
    config = {
        "name": "traj", "seeds": [0, 1], "device": "cpu",
        "data": {"source": {"class": "SklearnDigits"}, "split": {"test_fraction": 0.2},
                 "forget": {"class": "ClassForget", "parameters": {"classes": [3], "fraction": 0.75}}},
        "model": {"class": "MLP", "parameters": {"hidden": [16]}},
        "training": {"epochs": 3, "batch_size": 64},
        "unlearners": [{"class": "GoldModel"},
                       {"class": "MIRegularized", "label": "MI", "parameters": {"gamma": 3.5, "epochs": 2}}],
        "evaluators": [{"class": "Accuracy"}, {"class": "MutualInformation"}],
        "output": {"dir": str(tmp_path / "out"), "writers": [{"class": "CSVWriter"}, {"class": "WandbWriter"}]},
        "cache": {"enabled": False},
    }
    report = Runner(build_experiment(config), progress=False, out=lambda s: None).run()
    assert report.errors == 0
    rows = [r for r in read_rows(report.results_path) if r["unlearner"] == "MI"]
    steps = {(r["seed"], r["step"], r["metric"]) for r in rows if r["step"] != ""}
    for seed in ("0", "1"):
        for step in ("0", "1", "2"):
            for metric in ("mutual_information", "accuracy_retain", "accuracy_forget", "accuracy_test"):
                assert (seed, step, metric) in steps
    finals = {r["metric"] for r in rows if r["step"] == ""}
    assert {"mutual_information", "accuracy_forget"} <= finals
    mi_history = [(s, v) for s, v in logged if "mutual_information" in v]
    assert [s for s, _ in mi_history] == [0, 1, 2, 0, 1, 2]  # two seeds, steps 0..2 as wandb history
    png = tmp_path / "traj.png"
    assert plot_main(["trajectories", str(report.results_path), "-o", str(png)]) == 0
    assert png.stat().st_size > 10_000 and png.read_bytes()[:4] == b"\x89PNG"
    empty = tmp_path / "empty.csv"
    empty.write_text("run_id,seed,unlearner,metric,value,step,status\n")
    assert plot_main(["trajectories", str(empty), "-o", str(tmp_path / "x.png")]) == 2


def test_trajectory_table_means_over_seeds():
    from erasure.plot import mean_std, trajectory_table

    rows = [{"status": "ok", "step": str(s), "unlearner": "A", "metric": "m", "value": str(v)}
            for s, v in [(0, 1.0), (0, 3.0), (1, 2.0)]] + [{"status": "ok", "step": "", "unlearner": "A", "metric": "m", "value": "9"}]
    steps, mean, std = mean_std(trajectory_table(rows)["A"]["m"])
    assert list(steps) == [0, 1] and list(mean) == [2.0, 2.0] and list(std) == [1.0, 0.0]


# ------------------------------------------------------------ WassersteinBarycenter
def test_gaussian_maps_are_the_closed_form_and_equalise_the_groups():
    from scipy.linalg import sqrtm

    parts = synthetic_partitions()
    x = parts.dataset.inputs.double().numpy()
    z = parts.dataset.attributes["z"].numpy()
    train = parts["train"].numpy()
    maps = gaussian_barycenter_maps(x[train], z[train])
    moved = gaussian_barycenter_transform(x, z, train)
    xt, zt, mt = x[train], z[train], moved[train]
    for g, (a, b) in maps.items():
        cov = np.cov(xt[zt == g], rowvar=False) + 1e-6 * np.eye(x.shape[1])
        other = np.cov(mt[zt == g], rowvar=False)
        root = np.real(sqrtm(cov))
        inv = np.linalg.inv(root)
        assert a == pytest.approx(inv @ np.real(sqrtm(root @ (a.T @ cov @ a) @ root)) @ inv, abs=1e-5)
        assert other == pytest.approx(a.T @ np.cov(xt[zt == g], rowvar=False) @ a, abs=1e-8)
    assert np.abs(mt[zt == 0].mean(0) - mt[zt == 1].mean(0)).max() < 1e-8
    assert np.abs(np.cov(mt[zt == 0], rowvar=False) - np.cov(mt[zt == 1], rowvar=False)).max() < 1e-3
    assert gaussian_w2_between_groups(xt, zt) > 2.0 > 0.01 > gaussian_w2_between_groups(mt, zt)


def test_exact_two_groups_is_mccann_interpolation_with_out_of_sample_offsets():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(size=(30, 2)), rng.normal(size=(30, 2)) + 5, [[0.1, 0.2]]])
    z = np.array([0] * 30 + [1] * 30 + [0])
    train = np.arange(60)
    moved = exact_barycenter_transform(x, z, train, rng)
    # equal sizes: the plan is a permutation, so each point moves halfway to its partner and the groups coincide
    assert np.allclose(np.sort(moved[:30], axis=0), np.sort(moved[30:60], axis=0))
    assert np.allclose(moved[:30].mean(0), (x[:30].mean(0) + x[30:60].mean(0)) / 2)
    nearest = int(np.argmin(((x[:30] - x[60]) ** 2).sum(1)))
    assert np.allclose(moved[60], moved[nearest] + x[60] - x[nearest])


def test_exact_three_groups_uses_a_free_support_barycenter():
    x, z = three_group_data()
    moved = exact_barycenter_transform(x, z, np.arange(len(x)), np.random.default_rng(0))
    means = np.stack([moved[z == g].mean(0) for g in range(3)])
    assert np.abs(means - means.mean(0)).max() < 0.3
    assert empirical_w2_between_groups(moved, z) < 0.25 * empirical_w2_between_groups(x, z)


@pytest.mark.parametrize("variant", ["gaussian", "exact"])
def test_wasserstein_unlearner_trains_a_fresh_model_on_transformed_data(variant):
    parts = synthetic_partitions(correlation=0.5)
    ctx = make_context(parts)
    original = new_mlp(parts.dataset)
    model = WassersteinBarycenter(variant=variant).unlearn(original, ctx)
    new = ctx.evaluation_partitions
    assert model is not original and new is not None and new.dataset is not parts.dataset
    assert all(torch.equal(new[k], parts[k]) for k in parts.names)
    assert not torch.allclose(new.dataset.inputs, parts.dataset.inputs)
    assert accuracy(model, new, "test") > 0.85  # z independent of y here: the task survives
    x = new.dataset.inputs.double().numpy()
    z = new.dataset.attributes["z"].numpy()
    raw = parts.dataset.inputs.double().numpy()
    tr, te = parts["train"].numpy(), parts["test"].numpy()
    probe = probe_scores(x[tr], z[tr], x[te], z[te])["probe_accuracy_logistic"]
    assert probe < majority_rate(z[te]) + 0.1 < probe_scores(raw[tr], z[tr], raw[te], z[te])["probe_accuracy_logistic"]


def test_wasserstein_variant_and_attribute_parameters():
    parts = synthetic_partitions()
    rng = np.random.default_rng(0)
    gaussian = WassersteinBarycenter("gaussian").transform(parts, rng).inputs
    exact = WassersteinBarycenter("exact").transform(parts, rng).inputs
    assert not torch.allclose(gaussian, exact, atol=1e-3)
    renamed = Dataset(parts.dataset.inputs, parts.dataset.targets, 4, {"group": parts.dataset.attributes["z"]})
    other = Partitions(renamed, dict(parts.indices), ClassForget([0]))
    with pytest.raises(ValueError, match="no attribute"):
        WassersteinBarycenter().transform(other, rng)
    assert torch.allclose(WassersteinBarycenter(attribute="group").transform(other, rng).inputs, gaussian)


# ------------------------------------------------------------- FeatureIndependence
def test_bures_wasserstein_distance_matches_pot():
    import ot

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(3, 3)), rng.normal(size=(3, 3))
    c0, c1 = a @ a.T + np.eye(3), b @ b.T + np.eye(3)
    m0, m1 = rng.normal(size=3), rng.normal(size=3)
    assert bures_wasserstein_distance(m0, c0, m1, c1) == pytest.approx(float(ot.gaussian.bures_wasserstein_distance(m0, m1, c0, c1)), rel=1e-6)
    assert bures_wasserstein_distance(m0, c0, m0, c0) == pytest.approx(0.0, abs=1e-6)


def test_empirical_w2_of_a_shift_is_its_length():
    x = np.random.default_rng(0).normal(size=(20, 2))
    both = np.concatenate([x, x + np.array([3.0, 4.0])])
    assert empirical_w2_between_groups(both, np.repeat([0, 1], 20)) == pytest.approx(5.0)


def test_feature_independence_detects_the_attribute_only_when_present():
    parts = synthetic_partitions()
    model = new_mlp(parts.dataset)
    metrics = FeatureIndependence().evaluate(outcome_for(model, parts))
    w2_attribute = metrics["w2_between_groups"]
    assert metrics["probe_accuracy"] > metrics["probe_chance"] + 0.2 and metrics["probe_auc"] > 0.85
    assert metrics["probe_accuracy"] == max(metrics["probe_accuracy_logistic"], metrics["probe_accuracy_mlp"])
    assert metrics["w2_between_groups"] > 2.0
    z = parts.dataset.attributes["z"].numpy()
    assert metrics["probe_chance"] == majority_rate(z[parts["test"].numpy()]) >= 0.5
    # an attribute independent of everything: probes at chance, groups close
    noise = torch.as_tensor(np.random.default_rng(1).integers(0, 2, len(z)))
    shuffled = Dataset(parts.dataset.inputs, parts.dataset.targets, 4, {"z": parts.dataset.attributes["z"], "noise": noise})
    metrics = FeatureIndependence(attribute="noise").evaluate(outcome_for(model, parts.with_dataset(shuffled)))
    assert abs(metrics["probe_accuracy_logistic"] - metrics["probe_chance"]) < 0.1 and abs(metrics["probe_auc"] - 0.5) < 0.15
    assert metrics["w2_between_groups"] < 0.5 * w2_attribute
    assert 0.0 <= metrics["task_accuracy"] <= 1.0 and metrics["task_accuracy"] == metrics["task_accuracy_original"]


def test_feature_independence_needs_an_attribute():
    parts = digits_partitions()
    with pytest.raises(ValueError):
        FeatureIndependence().evaluate(outcome_for(trained_mlp(), parts))


def test_example_configs_validate():
    from erasure.cli import main

    for path in ("configs/examples/mi_digit3.jsonc", "configs/examples/feature_unlearning_synthetic.jsonc"):
        assert main([path, "--validate"]) == 0


def test_jit_refuses_graph_data():
    parts = digits_partitions()
    graphs = Partitions(Dataset([object()] * len(parts.dataset), parts.dataset.targets, 10), dict(parts.indices))
    with pytest.raises(ValueError, match="tensor"):
        JiT().unlearn(trained_mlp(), make_context(graphs))
