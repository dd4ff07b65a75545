"""KLoM, ToW, the memorization proxy and the worst-case selection against independent
re-implementations of their reference code (toy arrays), and the structured forget sets and the
new evaluators on digits (see docs/evaluation.md, docs/partitions.md and docs/fidelity.md)."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from scipy import stats

from conftest import make_workspace
from erasure.core.errors import ConfigError
from erasure.core.factory import build
from erasure.core.timing import Timing
from erasure.data.memorization import memorization_proxy, select_by_level
from erasure.data.partitions import Split, make_partitions
from erasure.data.worst_case import worst_case_weights
from erasure.evaluators.klom import klom
from erasure.evaluators.tow import tow
from erasure.models.training import accuracy, predict_logits
from erasure.testing.contract import tiny_config


# --------------------------------------------------------------------------------------------
# KLoM: RoyRin/data-unlearning-bench unlearning_bench/eval.py, one point at a time, and run.py's call
def _reference_binned_kl(p_arr, q_arr, bin_count=20, eps=1e-5, min_val=-100, max_val=100):
    p_arr, q_arr = np.clip(p_arr, min_val, max_val), np.clip(q_arr, min_val, max_val)
    bins_start, bins_end = min(p_arr.min(), q_arr.min()), max(p_arr.max(), q_arr.max())
    if bins_start >= bins_end:
        bins_end = bins_start + 1
    bins = np.linspace(bins_start, bins_end, bin_count + 1)
    p_idx, q_idx = np.digitize(p_arr, bins), np.digitize(q_arr, bins)
    p_counts = np.array([np.sum(p_idx == i) for i in range(1, bin_count + 1)])
    q_counts = np.array([np.sum(q_idx == i) for i in range(1, bin_count + 1)])
    p_probs = p_counts / p_counts.sum() if p_counts.sum() > 0 else np.zeros_like(p_counts, dtype=float)
    q_probs = q_counts / q_counts.sum() if q_counts.sum() > 0 else np.zeros_like(q_counts, dtype=float)
    q_safe = np.where(p_probs > 0, np.maximum(q_probs, eps), q_probs)
    return stats.entropy(pk=p_probs, qk=q_safe)


def _reference_kl_from_margins(all_unlearned_margins, all_oracle_margins):
    return np.stack([_reference_binned_kl(all_unlearned_margins[:, i], all_oracle_margins[:, i])
                     for i in range(all_oracle_margins.shape[1])])


def test_klom_equals_the_reference_as_run_py_calls_it():
    rng = np.random.default_rng(0)
    n = 12
    oracle = rng.normal(0, 1, (n, 8))
    unlearned = np.stack([rng.normal(0, 1, n), rng.normal(3, 1, n), rng.normal(0, 4, n), np.full(n, 2.5),
                          rng.normal(50, 1, n), rng.normal(-0.1, 0.2, n), oracle[:, 6], rng.normal(250, 1, n)], 1)
    oracle[:, 3] = 2.5  # both constant: the range is widened by one
    # run.py: kl_from_margins(oracle_margins, margins), so the oracle is the first distribution
    reference = _reference_kl_from_margins(oracle, unlearned)
    np.testing.assert_allclose(klom(unlearned, oracle), reference, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(klom(unlearned, oracle, "unlearned"), _reference_kl_from_margins(unlearned, oracle),
                               rtol=1e-12, atol=1e-12)
    assert reference[6] == 0 and reference[3] == 0  # identical samples
    assert reference[4] > 5  # disjoint: near the ε floor, −log 1e-5 ≈ 11.5
    # all clipped to 100, the top edge, where np.digitize puts them outside every bin: an empty histogram
    assert reference[7] < reference[4]
    assert reference[1] > reference[0]


# --------------------------------------------------------------------------------------------
# ToW: kairanzhao/RUM surgical_plugins/analysis.py (accuracies in %) and analysis_mia.py
def _reference_tow(df, df_rt, mia=False):
    ratio = {col: 1 - (abs(df[col] - df_rt[col]) / 100) for col in ("retain", "forget", "test")}
    if mia:
        ratio["MIA_confidence"] = 1 - abs(df["MIA_confidence"] - df_rt["MIA_confidence"])
        return ratio["MIA_confidence"] * ratio["retain"] * ratio["test"]
    return ratio["forget"] * ratio["retain"] * ratio["test"]


def test_tow_equals_the_reference():
    rng = np.random.default_rng(1)
    for _ in range(20):
        u = dict(zip(("forget", "retain", "test", "mia"), rng.uniform(0, 1, 4)))
        g = dict(zip(("forget", "retain", "test", "mia"), rng.uniform(0, 1, 4)))
        pct = lambda d: {"forget": 100 * d["forget"], "retain": 100 * d["retain"], "test": 100 * d["test"],  # noqa: E731
                         "MIA_confidence": d["mia"]}
        assert tow(u, g) == pytest.approx(_reference_tow(pct(u), pct(g)), abs=1e-12)
        assert tow(u, g, ("mia", "retain", "test")) == pytest.approx(_reference_tow(pct(u), pct(g), mia=True), abs=1e-12)
    assert tow(u, u) == 1.0


# --------------------------------------------------------------------------------------------
# Memorization proxy: RUM memorization_proxy/learning_events.py and main_forget.py's confidence branch
def _reference_confidence_groups(batches_per_epoch, n, k):
    """learning_events.py: per step, each sample's true-class confidence appended, its running
    mean kept; main_forget.py: sort by mean confidence (highest first), high / low / median groups."""
    softmax_confidences: dict[int, list] = {}
    learning_events = {}
    for epoch, batches in enumerate(batches_per_epoch):
        for ids, confidences in batches:
            for unique_id, c in zip(ids, confidences):
                softmax_confidences.setdefault(int(unique_id), []).append(float(c))
                learning_events[int(unique_id)] = [epoch, np.mean(softmax_confidences[int(unique_id)])]
    events = np.array([[key] + value for key, value in learning_events.items()])
    sorted_confidences = events[events[:, 0].argsort()][:, 2]
    indices_con = list(zip(range(n), sorted_confidences))
    indices_con.sort(key=lambda x: x[1], reverse=True)
    high, low = indices_con[:k], indices_con[-k:]
    median_con = np.median(sorted_confidences)
    medium_con = (np.min(sorted_confidences) + np.max(sorted_confidences)) / 2
    indices_con.sort(key=lambda x: abs(x[1] - medium_con))
    indices_con.sort(key=lambda x: abs(x[1] - median_con))
    mid = indices_con[:k]
    return {name: {i for i, _ in group} for name, group in (("high", high), ("mid", mid), ("low", low))}


def test_memorization_proxy_and_levels_equal_rums_learning_events():
    rng = np.random.default_rng(2)
    n, epochs, k = 50, 6, 8
    history = torch.as_tensor(rng.beta(2, 1, (epochs, n)))  # true-class confidence per epoch
    batches = []  # the reference sees each epoch as shuffled batches
    for e in range(epochs):
        order = rng.permutation(n)
        batches.append([(order[s:s + 16], history[e, order[s:s + 16]].numpy()) for s in range(0, n, 16)])
    reference = _reference_confidence_groups(batches, n, k)
    scores = memorization_proxy({"confidence": history, "correct": history > 0.5})
    np.testing.assert_allclose(scores, 1 - history.mean(0).numpy(), rtol=1e-12)
    # the reference names groups by confidence; ours by memorization (1 − confidence): high ↔ low
    assert set(select_by_level(scores, k, "high").tolist()) == reference["low"]
    assert set(select_by_level(scores, k, "low").tolist()) == reference["high"]
    assert set(select_by_level(scores, k, "mid").tolist()) == reference["mid"]


# --------------------------------------------------------------------------------------------
# Worst-case selection: OPTML-Group/Unlearn-WorstCase data-wise/unlearn/impl.py optimize_select and
# data-wise/utils.py bisection, with the lower level held at the original (fixed losses)
def _reference_bisection(a, eps, xi=1e-5, ub=1, max_iter=1e2):
    mu_l, mu_u = np.min(a - 1), np.max(a)
    iter_count = 0
    mu_a = (mu_u + mu_l) / 2
    while np.abs(mu_u - mu_l) > xi:
        mu_a = (mu_u + mu_l) / 2
        gu = np.sum(np.clip(a - mu_a, 0, ub)) - eps
        gu_l = np.sum(np.clip(a - mu_l, 0, ub)) - eps
        if gu == 0 or iter_count >= max_iter:
            break
        if np.sign(gu) == np.sign(gu_l):
            mu_l = mu_a
        else:
            mu_u = mu_a
        iter_count += 1
    return np.clip(a - mu_a, 0, ub)


def _reference_select(losses, w, k, epochs, w_lr, gamma):
    for _ in range(epochs):
        w = w - w_lr * (losses + gamma * 2 * w)
        w = _reference_bisection(w, k)
    return w, set(np.argsort(-w, kind="stable")[:k].tolist())


@pytest.mark.parametrize("w_lr,gamma", [(0.01, 0.0), (0.5, 0.1), (1e4, 0.0)])
def test_worst_case_upper_level_equals_the_reference(w_lr, gamma):
    rng = np.random.default_rng(3)
    n, k = 60, 9
    losses = rng.exponential(1.0, n)
    start = np.zeros(n)
    start[rng.choice(n, k, replace=False)] = 1
    w_ref, top_ref = _reference_select(losses, start, k, 10, w_lr, gamma)
    w = worst_case_weights(torch.as_tensor(losses), torch.as_tensor(start), k, 10, w_lr, gamma)
    np.testing.assert_allclose(w.numpy(), w_ref, atol=1e-9)
    assert set(torch.topk(w, k).indices.tolist()) == top_ref
    assert w.sum().item() == pytest.approx(k, abs=1e-3)
    if w_lr > 100:  # a long enough descent ends at the lowest-loss samples ("lowest_loss")
        assert top_ref == set(np.argsort(losses)[:k].tolist())


# --------------------------------------------------------------------------------------------
# behaviour on digits (MLP, few epochs)
def _digits(directory, forget, cache=None, epochs=8):
    config = tiny_config(directory)
    config["data"] = {"source": {"class": "SklearnDigits"}, "split": {"test_fraction": 0.2}, "forget": forget}
    config["model"] = {"class": "MLP", "parameters": {"hidden": [64]}}
    config["training"] = {"epochs": epochs, "batch_size": 64, "optimizer": {"class": "Adam", "parameters": {"lr": 0.003}}}
    if cache is not None:
        config["cache"] = {"enabled": True, "dir": str(cache)}
    workspace = make_workspace(config, use_cache=cache is not None)
    state = workspace.prepare_seeds()[0]
    workspace.train_references(state)
    return workspace, state


def _outcome(workspace, state, name):
    unlearner = build({"class": name}, "unlearner", "u")
    ctx = workspace.make_context(state, name)
    model = unlearner.unlearn(copy.deepcopy(state.original), ctx)
    return workspace.make_outcome(state, name, unlearner, model, ctx, Timing(wall_seconds=0.01))


def _evaluate(workspace, outcome, spec):
    return workspace.evaluate(outcome, build(spec, "evaluator", "e"))


@pytest.fixture(scope="module")
def class_world(tmp_path_factory):
    workspace, state = _digits(tmp_path_factory.mktemp("klom"), {"class": "ClassForget", "parameters": {"classes": [3]}})
    return workspace, {name: _outcome(workspace, state, name) for name in ("Identity", "GoldModel")}


def test_klom_on_class_forgetting_is_smaller_for_gold_than_identity(class_world):
    workspace, outcomes = class_world
    spec = {"class": "KLoM", "parameters": {"num_models": 6, "bins": 5}}
    identity, gold = (_evaluate(workspace, outcomes[n], spec) for n in ("Identity", "GoldModel"))
    assert set(identity) == {f"klom_{g}_p{q}" for g in ("forget", "retain", "val") for q in (50, 95)}
    assert gold["klom_forget_p50"] < identity["klom_forget_p50"] - 3  # Identity: disjoint margins, the ε floor
    assert gold["klom_forget_p95"] <= identity["klom_forget_p95"]
    assert len(outcomes["GoldModel"].artifacts["klom_forget"]) == outcomes["GoldModel"].partitions.size("forget")


def test_tow_is_one_for_gold_and_lower_for_identity(class_world):
    workspace, outcomes = class_world
    gold, identity = (_evaluate(workspace, outcomes[n], {"class": "ToW"}) for n in ("GoldModel", "Identity"))
    assert gold["tow"] == pytest.approx(1.0, abs=1e-9) and gold["tow_mia"] == pytest.approx(1.0, abs=1e-9)
    assert identity["tow"] < 0.2  # forget accuracy ~1 against gold's ~0
    assert identity["tow_mia"] < gold["tow_mia"]


@pytest.fixture(scope="module")
def model_cache(tmp_path_factory):
    """One model cache for the worlds that differ only by a forget set chosen with the original:
    the original and its training history are trained once."""
    return tmp_path_factory.mktemp("cache")


def test_high_memorization_forget_set_is_harder_for_retraining_than_low(tmp_path, model_cache):
    gold_accuracy = {}
    for level in ("high", "low"):
        workspace, state = _digits(tmp_path / level, {"class": "MemorizationForget",
                                                      "parameters": {"level": level, "fraction": 0.1}}, model_cache)
        gold_accuracy[level] = accuracy(state.gold, state.partitions, "forget")
        assert state.partitions.size("forget") == round(0.1 * state.partitions.size("train"))
    assert gold_accuracy["high"] < gold_accuracy["low"] - 0.3


def test_worst_case_and_subpopulation_choose_with_the_original(tmp_path, model_cache):
    workspace, state = _digits(tmp_path / "w", {"class": "WorstCaseForget", "parameters": {"fraction": 0.1}}, model_cache)
    parts = state.partitions
    losses = {p: torch.nn.functional.cross_entropy(predict_logits(state.original, parts, p), parts.targets(p)).item()
              for p in ("forget", "retain")}
    all_losses = torch.nn.functional.cross_entropy(predict_logits(state.original, parts, "train"), parts.targets("train"),
                                                   reduction="none")
    assert losses["forget"] <= all_losses.sort().values[: parts.size("forget")].mean().item() + 1e-6 < losses["retain"]
    workspace, state = _digits(tmp_path / "s", {"class": "SubpopulationForget", "parameters": {"n_clusters": 10, "rank": 0}},
                               model_cache)
    counts = torch.bincount(state.partitions.targets("forget"))
    assert state.partitions.size("forget") >= state.partitions.size("train") / 10  # the largest cluster
    assert counts.max().item() > 0.5 * counts.sum().item()  # a cluster of features: mostly one digit (train: 10% each)


def test_backdoored_original_obeys_its_trigger_and_gold_does_not(tmp_path):
    forget = {"class": "BackdoorForget", "parameters": {"target": 0, "fraction": 0.1, "trigger_size": 3, "value": 1.0}}
    workspace, state = _digits(tmp_path, forget, epochs=10)
    parts, raw = state.partitions, workspace.dataset()
    assert state.data_key != raw.fingerprint()  # models trained on poisoned data are cached apart
    assert bool((parts.targets("forget") == 0).all())
    assert torch.equal(parts.inputs("retain"), raw.inputs[parts["retain"]])
    assert bool((parts.inputs("forget")[..., 3:6, 3:6] == 1.0).all())
    success = {n: _evaluate(workspace, _outcome(workspace, state, n), {"class": "BackdoorSuccess"})["attack_success"]
               for n in ("Identity", "GoldModel")}
    assert success["Identity"] > 0.7 and success["GoldModel"] < 0.2


def test_backdoor_success_is_undefined_without_a_backdoor(class_world):
    workspace, outcomes = class_world
    value = _evaluate(workspace, outcomes["Identity"], {"class": "BackdoorSuccess"})["attack_success"]
    assert np.isnan(value)


def test_forget_sets_that_need_the_original_are_refused_outside_a_run():
    from erasure.data.sources.sklearn import SklearnDigits

    spec = build({"class": "WorstCaseForget", "parameters": {"count": 10}}, "forget", "data.forget")
    with pytest.raises(ConfigError) as error:
        make_partitions(SklearnDigits().load(), Split(), spec, seed=0)
    assert error.value.path == "data.forget" and "original model" in error.value.message
    with pytest.raises(ConfigError, match="exactly one of 'fraction' or 'count'"):
        build({"class": "MemorizationForget", "parameters": {"level": "low"}}, "forget", "data.forget")
