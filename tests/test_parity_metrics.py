"""SklearnMetric, ModelDistance, Flops, ShadowMIA, UMIA's neural attack, JSON Lines and Parquet results."""
from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest
import sklearn.metrics
import torch
from scipy import stats
from scipy.spatial.distance import jensenshannon

from conftest import make_runner, make_workspace, tiny_config
from erasure.core.errors import ConfigError
from erasure.core.factory import build
from erasure.core.timing import Timing
from erasure.evaluators.flops import count_flops
from erasure.evaluators.model_distance import hausdorff_distance
from erasure.evaluators.shadow_mia import fit_per_class_attack, forgetting_rate
from erasure.evaluators.sklearn_metric import sklearn_score
from erasure.evaluators.umia import loss_attack_accuracy
from erasure.results.jsonl import read_jsonl
from erasure.results.writers import read_rows


def outcome_of(world, unlearner: dict, label: str | None = None):
    """The outcome of running ``unlearner`` (a spec) on the world's original."""
    workspace, state = world
    label = label or unlearner["class"]
    component = build(unlearner, "unlearner", "u")
    ctx = workspace.make_context(state, label)
    model = component.unlearn(copy.deepcopy(state.original), ctx)
    return workspace.make_outcome(state, label, component, model, ctx, Timing(wall_seconds=0.01))


def evaluate(world, outcome, evaluator: dict) -> dict[str, float]:
    return world[0].evaluate(outcome, build(evaluator, "evaluator", "evaluators[0]"))


@pytest.fixture(scope="module")
def memorising_world(tmp_path_factory):
    """A small, noisy problem that the MLP memorises (train accuracy 1, test ~0.75), forgetting a random 30%."""
    config = tiny_config(tmp_path_factory.mktemp("memorising"))
    config["data"] = {"source": {"class": "Synthetic", "parameters": {"n_samples": 200, "n_features": 20, "num_classes": 4,
                                                                        "class_sep": 0.5, "seed": 0}},
                      "split": {"test_fraction": 0.5}, "forget": {"class": "RandomForget", "parameters": {"fraction": 0.3}}}
    config["model"] = {"class": "MLP", "parameters": {"hidden": [128]}}
    config["training"] = {"epochs": 30, "batch_size": 32, "optimizer": {"class": "Adam", "parameters": {"lr": 0.01}}}
    workspace = make_workspace(config)
    state = workspace.prepare_seeds()[0]
    workspace.train_references(state)
    return workspace, state


# ---------------------------------------------------------------- SklearnMetric
@pytest.mark.parametrize("spec, direct", [
    ({"metric": "f1_score", "parameters": {"average": "macro"}},
     lambda y, z: sklearn.metrics.f1_score(y, z.argmax(1), average="macro")),
    ({"metric": "balanced_accuracy_score", "partition": "train"},
     lambda y, z: sklearn.metrics.balanced_accuracy_score(y, z.argmax(1))),
    ({"metric": "roc_auc_score"},
     lambda y, z: sklearn.metrics.roc_auc_score(y, torch.softmax(z.double(), 1), multi_class="ovr")),
    ({"metric": "log_loss"},
     lambda y, z: sklearn.metrics.log_loss(y, torch.softmax(z.double(), 1), labels=[0, 1, 2])),
    ({"metric": "matthews_corrcoef", "model": "gold"},
     lambda y, z: sklearn.metrics.matthews_corrcoef(y, z.argmax(1))),
    ({"metric": "top_k_accuracy_score", "parameters": {"k": 2}, "model": "original"},
     lambda y, z: sklearn.metrics.top_k_accuracy_score(y, torch.softmax(z.double(), 1), k=2, labels=[0, 1, 2])),
])
def test_sklearn_metric_equals_calling_sklearn(tiny_world, spec, direct):
    outcome = outcome_of(tiny_world, {"class": "NegGrad", "parameters": {"epochs": 1, "lr": 0.01}})
    partition, model = spec.get("partition", "test"), spec.get("model", "unlearned")
    result = evaluate(tiny_world, outcome, {"class": "SklearnMetric", "parameters": spec})
    name = f"{spec['metric']}_{partition}" + ("" if model == "unlearned" else f"_{model}")
    logits = outcome.logits(model, partition)
    assert result == {name: pytest.approx(float(direct(outcome.targets(partition), logits)), abs=1e-12)}


def test_sklearn_metric_binary_scores_are_the_positive_class():
    g = torch.Generator().manual_seed(0)
    logits, targets = torch.randn(50, 2, generator=g), torch.randint(0, 2, (50,), generator=g)
    p1 = torch.softmax(logits.double(), 1)[:, 1]
    assert sklearn_score("roc_auc_score", targets, logits) == pytest.approx(sklearn.metrics.roc_auc_score(targets, p1))
    margin = (logits[:, 1] - logits[:, 0]).double()
    assert sklearn_score("hinge_loss", targets, logits) == pytest.approx(sklearn.metrics.hinge_loss(targets, margin))


@pytest.mark.parametrize("parameters, path, words", [
    ({"metric": "f1_scor"}, "evaluators[0].parameters.metric", "did you mean f1_score"),
    ({"metric": "confusion_matrix"}, "evaluators[0].parameters.metric", "not a scoring function"),
    ({"metric": "silhouette_score"}, "evaluators[0].parameters.metric", "not a scoring function"),
    ({"metric": "f1_score", "parameters": {"avg": "macro"}}, "evaluators[0].parameters.parameters.avg", "average"),
])
def test_sklearn_metric_refuses_bad_names_at_build_time(parameters, path, words):
    with pytest.raises(ConfigError) as info:
        build({"class": "SklearnMetric", "parameters": parameters}, "evaluator", "evaluators[0]")
    assert info.value.path == path and words in str(info.value)


def test_sklearn_metric_that_returns_an_array_says_how_to_fix_it(tiny_world):
    outcome = outcome_of(tiny_world, {"class": "Identity"})
    with pytest.raises(ValueError, match="'average'"):
        evaluate(tiny_world, outcome, {"class": "SklearnMetric", "parameters": {"metric": "f1_score",
                                                                                  "parameters": {"average": None}}})


# ---------------------------------------------------------------- ModelDistance
def test_model_distance_is_zero_for_identity_and_matches_references(tiny_world):
    identity = evaluate(tiny_world, outcome_of(tiny_world, {"class": "Identity"}), {"class": "ModelDistance"})
    assert identity and all(v == 0 for v in identity.values())

    outcome = outcome_of(tiny_world, {"class": "NegGrad", "parameters": {"epochs": 2, "lr": 0.05}})
    d = evaluate(tiny_world, outcome, {"class": "ModelDistance"})
    unlearned, original = outcome.model, outcome.original
    diffs = {n: (p - dict(original.named_parameters())[n]).detach() for n, p in unlearned.named_parameters()}
    assert d["distance_original_weight_l2"] == pytest.approx(float(torch.cat([v.flatten() for v in diffs.values()]).norm()), rel=1e-5)
    assert d["distance_original_weight_l2_mean"] == pytest.approx(float(np.mean([float(v.norm()) for v in diffs.values()])), rel=1e-5)
    layers = {n.rsplit(".", 1)[0] for n in diffs}
    assert {k.split("/", 1)[1] for k in d if "/" in k} == layers
    for layer in layers:
        own = torch.cat([v.flatten() for n, v in diffs.items() if n.rsplit(".", 1)[0] == layer])
        assert d[f"distance_original_weight_l2/{layer}"] == pytest.approx(float(own.norm()), rel=1e-5)
    u, o = outcome.logits("unlearned", "forget"), outcome.logits("original", "forget")
    pu, po = torch.softmax(u.double(), 1).numpy(), torch.softmax(o.double(), 1).numpy()
    assert d["distance_original_kl_forget"] == pytest.approx(stats.entropy(pu, po, axis=1).mean(), rel=1e-3)
    assert d["distance_original_js_forget"] == pytest.approx((jensenshannon(pu, po, axis=1) ** 2).mean(), rel=1e-3)
    assert d["distance_original_output_l2_forget"] == pytest.approx(np.linalg.norm(pu - po, axis=1).mean(), rel=1e-4)
    assert d["distance_original_hausdorff_forget"] > 0


def test_hausdorff_is_the_symmetric_set_distance():
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(30, 4, generator=g) * 3, torch.randn(20, 4, generator=g) * 3
    pairwise = torch.cdist(torch.softmax(a.double(), 1), torch.softmax(b.double(), 1))
    expected = max(float(pairwise.min(1).values.max()), float(pairwise.min(0).values.max()))
    assert hausdorff_distance(a, b) == pytest.approx(expected, rel=1e-9)
    assert hausdorff_distance(a, a) == 0


def test_model_distance_to_gold_agrees_with_gold_distance(tiny_world):
    outcome = outcome_of(tiny_world, {"class": "FineTuning", "parameters": {"epochs": 1}})
    d = evaluate(tiny_world, outcome, {"class": "ModelDistance", "parameters": {"reference": "gold", "partitions": ["test"]}})
    g = evaluate(tiny_world, outcome, {"class": "GoldDistance"})
    assert d["distance_gold_kl_test"] == pytest.approx(g["gold_kl_test"], rel=1e-5)
    assert d["distance_gold_js_test"] == pytest.approx(g["gold_js_test"], rel=1e-4)
    assert d["distance_gold_output_l2_test"] == pytest.approx(g["gold_activation_distance_test"], rel=1e-5)
    assert d["distance_gold_weight_l2"] == pytest.approx(g["gold_parameter_l2"], rel=1e-5)
    assert not any(k.endswith("_forget") for k in d)


# ---------------------------------------------------------------- Flops
def mlp_training_flops(model: torch.nn.Module, samples: int) -> int:
    """FLOPs of one epoch of plain training of an MLP by hand: 2·in·out per Linear forward; backward
    2·in·out for the weight gradient and, above the first layer, 2·in·out for the input gradient."""
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    per_sample = sum(2 * m.in_features * m.out_features * (3 if i else 2) for i, m in enumerate(linears))
    return per_sample * samples


def test_flops_count_the_unlearn_call(tiny_world):
    workspace, state = tiny_world
    retain = state.partitions.size("retain")
    per_epoch = mlp_training_flops(state.original, retain)
    flops = {epochs: evaluate(tiny_world, outcome_of(tiny_world, {"class": "FineTuning", "parameters": {"epochs": epochs}}),
                              {"class": "Flops", "parameters": {"vs_gold": True}})
             for epochs in (1, 2)}
    assert flops[1]["flops"] == per_epoch and flops[2]["flops"] == 2 * per_epoch
    gold_epochs = workspace.exp.recipe.epochs
    assert flops[1]["flops_vs_gold"] == pytest.approx(gold_epochs)  # gold trains the recipe's epochs on D_r
    identity = evaluate(tiny_world, outcome_of(tiny_world, {"class": "Identity"}), {"class": "Flops", "parameters": {"vs_gold": True}})
    assert identity["flops"] == 0 and math.isnan(identity["flops_vs_gold"])
    gold = evaluate(tiny_world, outcome_of(tiny_world, {"class": "GoldModel"}), {"class": "Flops"})
    assert gold == {"flops": gold_epochs * per_epoch}  # GoldModel is charged gold's training, as in RunTime


def test_count_flops_of_a_matrix_product():
    a, b = torch.randn(5, 7), torch.randn(7, 3)
    flops, result = count_flops(lambda: a @ b)
    assert flops == 2 * 5 * 7 * 3 and torch.equal(result, a @ b)


# ---------------------------------------------------------------- ShadowMIA
def test_per_class_attack_equals_one_classifier_per_class():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    classes = rng.integers(0, 3, 600)
    membership = rng.integers(0, 2, 600)
    features = rng.normal(size=(600, 3)) + membership[:, None] * (classes[:, None] + 1) * 0.5
    attack = fit_per_class_attack(features, classes, membership, attack="logistic")
    queries, query_classes = rng.normal(size=(90, 3)), np.repeat([0, 1, 2], 30)
    expected = np.concatenate([LogisticRegression().fit(features[classes == c], membership[classes == c])
                               .predict(queries[query_classes == c]) for c in (0, 1, 2)])
    np.testing.assert_array_equal(attack.member(queries, query_classes), expected == 1)
    # a class without both labels falls back to the model fit on every class
    membership_one = np.where(classes == 2, 1, membership)
    fallback = fit_per_class_attack(features, classes, membership_one, attack="logistic")
    assert 2 not in fallback.models
    np.testing.assert_array_equal(fallback.member(queries[60:], query_classes[60:]),
                                  LogisticRegression().fit(features, membership_one).predict(queries[60:]) == 1)


def test_forgetting_rate_is_erasures():
    original = np.array([1, 1, 1, 0], dtype=bool)
    unlearned = np.array([0, 1, 0, 0], dtype=bool)
    assert forgetting_rate(unlearned, original) == pytest.approx((3 - 1) / (3 + 0.01))
    assert forgetting_rate(original, original) == 0


def test_shadow_mia_separates_a_memorising_model_from_an_independent_one(memorising_world):
    calls = []
    evaluator = {"class": "ShadowMIA", "parameters": {"num_shadows": 3}}
    results = {}
    for unlearner in ("Identity", "GoldModel"):
        outcome = outcome_of(memorising_world, {"class": unlearner})
        train_reference = outcome.train_reference
        outcome.train_reference = lambda tag, index, seed: calls.append((tag, len(index))) or train_reference(tag, index, seed)
        results[unlearner] = evaluate(memorising_world, outcome, evaluator)
    memorising, independent = results["Identity"], results["GoldModel"]
    assert memorising["shadow_mia_member_rate_forget"] > independent["shadow_mia_member_rate_forget"] + 0.3
    assert memorising["shadow_mia_member_rate_forget"] > memorising["shadow_mia_member_rate_test"] + 0.3
    assert abs(independent["shadow_mia_member_rate_forget"] - independent["shadow_mia_member_rate_test"]) < 0.15
    assert memorising["shadow_mia_forgetting_rate"] == 0 and independent["shadow_mia_forgetting_rate"] > 0.3
    train_size = memorising_world[1].partitions.size("train")
    assert calls == [("shadow", train_size)] * 3  # shadow models of the target's size, shared by the seed's unlearners


# ---------------------------------------------------------------- UMIA's neural attack
def test_umia_neural_attack_learns_what_a_linear_one_cannot():
    rng = np.random.default_rng(0)
    members = rng.normal(1.0, 0.1, 100)  # losses in a band, non-members on both sides of it
    nonmembers = np.concatenate([rng.normal(0.2, 0.1, 50), rng.normal(1.8, 0.1, 50)])
    logistic = loss_attack_accuracy(members, nonmembers, n_splits=3, attack="logistic")
    neural = loss_attack_accuracy(members, nonmembers, n_splits=3, attack="mlp")
    assert logistic < 0.7 and neural > 0.95


def test_umia_neural_attack_finds_memorisation(memorising_world):
    spec = {"class": "UMIA", "parameters": {"attack": "mlp"}}
    memorising = evaluate(memorising_world, outcome_of(memorising_world, {"class": "Identity"}), spec)["umia_accuracy"]
    independent = evaluate(memorising_world, outcome_of(memorising_world, {"class": "GoldModel"}), spec)["umia_accuracy"]
    assert memorising > independent + 0.1 and abs(independent - 0.5) < 0.1


# ---------------------------------------------------------------- JSON Lines and Parquet
def csv_as_json(path) -> list[dict]:
    """The CSV's rows as the JSON Lines file must hold them (independent of the writer's code)."""
    out = []
    for row in read_rows(path):
        row = dict(row)
        row["seed"] = int(row["seed"])
        row["step"] = int(row["step"]) if row["step"] else None
        for key in ("value", "wall_seconds"):
            row[key] = float(row[key]) if row[key] not in ("", "nan", "inf", "-inf") else None
        out.append(row)
    return out


def strict_lines(path) -> list[dict]:
    def refuse(token):
        raise ValueError(f"not valid JSON: {token}")
    return [json.loads(line, parse_constant=refuse) for line in path.read_text().splitlines()]


def test_jsonl_and_parquet_hold_the_csvs_rows_and_repair_after_a_kill(tmp_path):
    import pandas as pd

    config = tiny_config(tmp_path)
    config["unlearners"] = [{"class": "Identity"}, {"class": "FineTuning", "parameters": {"epochs": 1}},
                            {"class": "NegGrad", "parameters": {"epochs": 1, "lr": 1e30}}]  # an error row
    config["evaluators"] = [{"class": "Accuracy"}, {"class": "Flops", "parameters": {"vs_gold": True}}]  # NaN for Identity
    config["output"]["writers"] = [{"class": "JSONLinesWriter"}, {"class": "ParquetWriter"}]
    make_runner(config).run()
    out = tmp_path / "out"
    rows = strict_lines(out / "results.jsonl")
    assert rows == csv_as_json(out / "results.csv")
    assert {r["status"] for r in rows} == {"ok", "undefined", "error"}
    assert any(r["status"] == "undefined" and r["value"] is None for r in rows)
    frame = pd.read_parquet(out / "results.parquet")
    assert len(frame) == len(rows) and str(frame["seed"].dtype) == "Int64" and frame["value"].dtype == "float64"
    for record, row in zip(frame.to_dict("records"), rows):
        for key, value in row.items():
            cell = None if pd.isna(record[key]) else record[key]
            assert cell == value or (key == "value" and math.isnan(float(record[key])) and value is None), key

    # a kill: the last job's lines never reached the file, and a torn line was left behind
    text = (out / "results.jsonl").read_text().splitlines(keepends=True)
    (out / "results.jsonl").write_text("".join(text[: len(text) // 2]) + '{"run_id": "torn')
    assert len(read_jsonl(out / "results.jsonl")) == len(text) // 2
    make_runner(config).run()  # skips finished jobs, reruns the failed ones
    assert strict_lines(out / "results.jsonl") == csv_as_json(out / "results.csv")
    assert len(pd.read_parquet(out / "results.parquet")) == len(read_rows(out / "results.csv"))


def test_parquet_writer_without_a_parquet_engine_is_a_config_error(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "pyarrow", None)
    monkeypatch.setitem(__import__("sys").modules, "fastparquet", None)
    with pytest.raises(ConfigError, match="pip install pyarrow") as info:
        build({"class": "ParquetWriter"}, "writer", "output.writers[1]")
    assert info.value.path == "output.writers[1]"

