"""Fidelity of the evaluators: each core against an independent re-implementation of its reference
code (see docs/fidelity.md, "Evaluators"), on synthetic arrays or the tiny world."""
from __future__ import annotations

import copy
import logging
import math

import numpy as np
import pytest
import torch
from scipy.optimize import minimize
from scipy.spatial.distance import jensenshannon

from erasure.core.cache import ModelCache
from erasure.core.factory import build
from erasure.core.timing import Timing, measure
from erasure.evaluators.forgetting_quality import ForgettingQuality, challenge_epsilon, forgetting_quality
from erasure.evaluators.mia import entropy_member_rate, mia_efficacy, svc_nonmember_rate
from erasure.evaluators.mutual_information import soft_mutual_information
from erasure.evaluators.relearn import RelearnTime
from erasure.evaluators.replicas import logit_confidence, replica_scores
from erasure.evaluators.runtime import RunTime, speedup
from erasure.evaluators.scores import Scores
from erasure.evaluators.umia import loss_attack_accuracy
from erasure.evaluators.zrf import ZRF, reference_divergence, zrf_score

CPU = torch.device("cpu")


# --------------------------------------------------------------------------------------------
# ForgettingQuality: the challenge's metric.py, re-implemented literally (one threshold per row)
def _rates(inside_pos: np.ndarray, inside_neg: np.ndarray) -> tuple[np.ndarray, ...]:
    """(tpr, fnr, fpr, tnr) per threshold from boolean (models, thresholds) predictions."""
    return inside_pos.mean(0), (~inside_pos).mean(0), inside_neg.mean(0), (~inside_neg).mean(0)


def _reference_example_epsilon(pos: np.ndarray, neg: np.ndarray, delta: float) -> float:
    pos_diff, neg_diff = pos.max() - pos.min(), neg.max() - neg.min()
    largest = pos_diff if pos_diff > neg_diff else neg_diff
    smallest = neg_diff if pos_diff > neg_diff else pos_diff
    with np.errstate(invalid="ignore", divide="ignore"):
        if smallest / largest < 0.01:
            return 50.0
    # two thresholds: the peakier distribution is "positive" and predicted between them
    p, n = (neg, pos) if pos_diff >= neg_diff else (pos, neg)
    width = smallest
    lo, hi = p.min() + width - 2.0, p.max() + 2.0
    rights = np.linspace(lo, hi, num=int(np.ceil((hi - lo) * 100)))
    pairs = [(left, right) for right in rights
             for left in np.linspace(right - width - 2.0, right - width + 2.0, num=int(np.ceil(4.0 * 100)))]
    lefts = np.array([a for a, _ in pairs])[None, :]
    rights_flat = np.array([b for _, b in pairs])[None, :]
    between = lambda c: (lefts <= c[:, None]) & (c[:, None] <= rights_flat)  # noqa: E731
    double = _rates(between(p), between(n))
    # one threshold: predicted positive at or above it (positive = larger median)
    both = np.concatenate([pos, neg])
    t = np.linspace(both.min(), both.max(), int(np.ceil((both.max() - both.min()) * 100)))[None, :]
    single = _rates(pos[:, None] >= t, neg[:, None] >= t)
    tpr, fnr, fpr, tnr = (np.concatenate([d, s]) for d, s in zip(double, single))
    eps = np.zeros(len(tpr))
    eps = np.where((fpr + fnr == 0) & (tpr + tnr == 2), np.inf, eps)
    eps = np.where((eps == 0) & (fpr * fnr == 0), np.nan, eps)
    with np.errstate(invalid="ignore", divide="ignore"):
        candidates = np.stack([np.log(1 - delta - fpr) - np.log(fnr), np.log(1 - delta - fnr) - np.log(fpr)])
        best = np.where(np.isnan(candidates).all(0), np.nan, np.nanmax(np.where(np.isnan(candidates), -np.inf, candidates), 0))
    eps = np.where(eps == 0, np.clip(best, 0, None), eps)
    kept = eps[~np.isnan(eps)]
    if len(kept) == 0:  # the reference stops here with an assertion
        return 0.0
    return float(np.clip(kept.max(), 0, 50))


def reference_forget_score(unlearned: np.ndarray, retrained: np.ndarray, delta: float = 1e-5) -> tuple[float, np.ndarray]:
    """compute_forget_score_from_confs: per-example ε, then points per bucket of 0.5 up to ⌈ln(N−1)⌉."""
    retrain_is_positive = np.median(retrained, 0) > np.median(unlearned, 0)
    pos = np.where(retrain_is_positive, retrained, unlearned)
    neg = np.where(retrain_is_positive, unlearned, retrained)
    eps = np.array([_reference_example_epsilon(pos[:, i], neg[:, i], delta) for i in range(pos.shape[1])])
    max_epsilon = np.ceil(np.log(unlearned.shape[0] - 1))
    buckets, start, points = {}, 0.0, 1.0
    while start + 0.5 <= max_epsilon:
        buckets[start] = points
        points /= 2
        start += 0.5
    score = 0.0
    for e in eps:
        for start, points in buckets.items():
            if e < start + 0.5:
                score += points
                break
    return score / pos.shape[1], eps


def _synthetic_phi(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Forget-set φ of n unlearned and n retrained models: overlapping, shifted, wider and narrower,
    separated, a deterministic unlearner (one repeated value), a peaky one just under and over 1%."""
    rng = np.random.default_rng(seed)
    r = rng.normal(2.0, 1.0, (n, 9))
    u = np.stack([rng.normal(2.0, 1.0, n), rng.normal(3.0, 1.0, n), rng.normal(2.0, 3.0, n), rng.normal(1.5, 0.3, n),
                  rng.normal(9.0, 0.5, n), np.full(n, 4.2), rng.normal(0.0, 1.0, n), 2 + 0.005 * rng.standard_normal(n),
                  2 + 0.2 * rng.standard_normal(n)], 1)
    return u, r


@pytest.mark.parametrize("n", [4, 8, 16])
def test_challenge_attacks_equal_the_reference_metric(n):
    u, r = _synthetic_phi(n, n)
    ref_score, ref_eps = reference_forget_score(u, r)
    np.testing.assert_allclose(challenge_epsilon(u, r), ref_eps, rtol=1e-12)
    assert forgetting_quality(u, r, attacks="challenge") == pytest.approx(ref_score, abs=1e-12)
    assert ref_eps[5] == 50  # a deterministic unlearner is caught by the range-ratio rule
    assert 0 < ref_score < 1


def test_challenge_score_of_identical_models_is_zero_and_ratio_rule_edges():
    rng = np.random.default_rng(0)
    r = rng.normal(0, 1, (16, 20))
    same = np.repeat(rng.normal(0, 1, (1, 20)), 16, 0)
    assert forgetting_quality(same, r) == 0.0 == reference_forget_score(same, r)[0]
    # the all-intervals family needs no ratio rule for that: the one value is an interval of its own
    assert forgetting_quality(same, r, attacks="all_intervals") == 0.0
    # two constant groups (0/0 is not "peaky"); every attack is discarded: ε = 0 (the reference asserts)
    assert challenge_epsilon(np.full((4, 1), 1.0), np.full((4, 1), 1.0))[0] == 0.0


def _outcome(runner, state, label, spec, model=None, timing=None):
    unlearner = build(spec, "unlearner", "u")
    ctx = runner.make_context(state, label)
    model = unlearner.unlearn(copy.deepcopy(state.original), ctx) if model is None else model
    return runner.make_outcome(state, label, unlearner, model, ctx, timing or Timing(wall_seconds=0.01))


def test_challenge_protocol_repeats_the_unlearner_on_the_jobs_original(tiny_world):
    runner, state = tiny_world
    identity = _outcome(runner, state, "Identity", {"class": "Identity"})
    challenge = ForgettingQuality(num_models=4)
    assert (challenge.protocol, challenge.attacks) == ("challenge", "challenge")
    assert runner.evaluate(identity, challenge)["forgetting_quality"] == 0.0  # 4 identical models
    replica = identity.unlearn_reference(123, original_seed=identity.seed)
    assert all(torch.equal(a, b) for a, b in zip(replica.state_dict().values(), state.original.state_dict().values()))
    assert np.ptp(replica_scores(identity, 4, "challenge").unlearned, 0).max() == 0
    assert np.ptp(replica_scores(identity, 4, "varied_originals").unlearned, 0).min() > 0  # 4 originals
    # GoldModel's replicas under the challenge protocol are golds of other seeds: not identical
    gold = _outcome(runner, state, "GoldModel", {"class": "GoldModel"})
    assert runner.evaluate(gold, challenge)["forgetting_quality"] > 0


# --------------------------------------------------------------------------------------------
# ZRF: bad-teaching-unlearning metrics.py (JSDiv with kl_div's "mean" reduction) and the paper's JS
def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def test_zrf_reference_form_is_the_authors_code_and_js_is_the_paper():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(50, 7, generator=g) * 3, torch.randn(50, 7, generator=g)
    p, q = _softmax(a.double().numpy()), _softmax(b.double().numpy())
    m = (p + q) / 2
    # kl_div(log p, m) with reduction "mean": the mean over all 50·7 elements of m·(log m − log p)
    code = 0.5 * np.mean(m * (np.log(m) - np.log(p))) + 0.5 * np.mean(m * (np.log(m) - np.log(q)))
    assert float(reference_divergence(a, b)) == pytest.approx(code, rel=1e-5)
    assert zrf_score(a, b) == pytest.approx(1 - code, rel=1e-6)
    paper = np.mean(jensenshannon(p, q, axis=1) ** 2)  # scipy's distance is sqrt(JS), natural log
    assert zrf_score(a, b, "js") == pytest.approx(1 - paper, rel=1e-5)
    # the code's value is a reversed KL over C: (KL(m‖p) + KL(m‖q)) / (2C), not the JS
    reversed_kl = np.sum(m * np.log(m / p), 1) + np.sum(m * np.log(m / q), 1)
    assert code == pytest.approx(np.mean(reversed_kl) / (2 * 7), rel=1e-9)
    assert code < paper
    assert ZRF().divergence == "reference" and ZRF().partition == "forget"


def test_zrf_partitions(tiny_world):
    runner, state = tiny_world
    outcome = _outcome(runner, state, "Identity", {"class": "Identity"})
    forget = runner.evaluate(outcome, ZRF())["zrf"]
    forget_test = runner.evaluate(outcome, ZRF(partition="forget_test"))["zrf"]
    js = runner.evaluate(outcome, ZRF(divergence="js"))["zrf"]
    assert forget != forget_test and 1 - math.log(2) <= js <= 1 and forget <= 1


# --------------------------------------------------------------------------------------------
# Scores: AIN with α 0.05 (ERASURE's measures.py), Avg-Gap over SalUn's four metrics
def test_ain_alpha_is_the_published_one_and_avg_gap_reads_mia_efficacy(tiny_world):
    runner, state = tiny_world
    assert RelearnTime().alpha == 0.05
    assert "mia_efficacy" in Scores(scores=["avg_gap"]).requires
    assert "umia_accuracy" not in Scores(scores=["avg_gap"]).requires
    outcome = _outcome(runner, state, "NegGrad", {"class": "NegGrad", "parameters": {"epochs": 1, "lr": 0.05}})
    for name in ("Accuracy", "MIAEfficacy"):
        outcome.metrics.update(runner.evaluate(outcome, build({"class": name}, "evaluator", "e")))
    gap = runner.evaluate(outcome, Scores(scores=["avg_gap"]))["avg_gap"]
    # independently: SalUn's SVC on gold's true-class confidences, then the four absolute gaps
    parts = state.partitions
    gold_out = {p: torch.softmax(state.gold(parts.dataset.inputs[parts[p]]).detach(), 1) for p in ("retain", "test", "forget")}
    conf = {p: gold_out[p][torch.arange(parts.size(p)), parts.targets(p)].numpy() for p in gold_out}
    gold = {f"accuracy_{p}": float((gold_out[p].argmax(1) == parts.targets(p)).float().mean()) for p in gold_out}
    gold["mia_efficacy"] = svc_nonmember_rate(conf["retain"], conf["test"], conf["forget"], np.random.default_rng(outcome.seed))
    expected = np.mean([abs(outcome.metrics[k] - gold[k]) for k in
                        ("accuracy_forget", "mia_efficacy", "accuracy_retain", "accuracy_test")])
    assert gap == pytest.approx(expected, abs=1e-6)
    assert mia_efficacy(outcome, "gold") == pytest.approx(gold["mia_efficacy"])


# --------------------------------------------------------------------------------------------
# RunTime: memory above the call's start, and a speed-up only between comparable timings
def test_peak_rss_is_the_increment_of_the_call_even_when_nested():
    ballast = np.ones(64 * 2**20 // 8)  # resident before the call: not the call's
    with measure(CPU) as empty:
        pass
    assert abs(empty.peak_rss_mb) < 4
    with measure(CPU) as outer:
        spike = np.ones(48 * 2**20 // 8)
        del spike  # freed before the nested call: only a high-water mark remembers it
        with measure(CPU) as inner:
            small = np.ones(16 * 2**20 // 8)
            del small
    assert 44 < outer.peak_rss_mb < 60 and 12 < inner.peak_rss_mb < 28
    assert (empty.device, empty.threads, empty.origin) == ("cpu", torch.get_num_threads(), "measured")
    del ballast


def test_speedup_only_between_comparable_timings(tmp_path, caplog, tiny_world):
    with measure(CPU) as method:
        pass
    gold = Timing(**{**method.as_dict(), "wall_seconds": 2.0})
    assert speedup(method, gold)[0] == pytest.approx(2.0 / max(method.wall_seconds, 1e-9))
    other_threads = Timing(**{**gold.as_dict(), "threads": gold.threads + 1})
    value, reason = speedup(method, other_threads)
    assert math.isnan(value) and "threads" in reason
    old_entry = Timing.from_record({"wall_seconds": 2.0, "cpu_seconds": 2.0, "peak_rss_mb": 1.0, "peak_cuda_mb": math.nan})
    assert old_entry.origin == "cache" and "device unknown" in speedup(method, old_entry)[1]
    # a model-cache hit keeps where the time was measured, and says it came from the cache
    cache, model = ModelCache(tmp_path), torch.nn.Linear(2, 2)

    def train(m):
        with measure(CPU) as t:
            pass
        return t

    _, fresh, _ = cache.get_or_train("k", model, train)
    _, cached, hit = cache.get_or_train("k", torch.nn.Linear(2, 2), train)
    assert hit and cached.origin == "cache" and fresh.origin == "measured" and cached.mismatch(fresh) == ""
    outcome = _outcome(*tiny_world, "Identity", {"class": "Identity"}, timing=method)
    gold_model = outcome.gold
    outcome.gold_provider = lambda: (gold_model, other_threads)
    from erasure.evaluators import runtime
    from erasure.execution.safety import undefined_reason

    runtime._REPORTED.clear()
    with caplog.at_level(logging.WARNING, logger="erasure"):
        metrics = RunTime().evaluate(outcome)
        again = RunTime().evaluate(outcome)
    assert math.isnan(metrics["speedup_vs_gold"]) and "threads" in undefined_reason(metrics["speedup_vs_gold"])
    assert undefined_reason(again["speedup_vs_gold"]) == undefined_reason(metrics["speedup_vs_gold"])
    assert caplog.text.count("speedup_vs_gold left NaN") == 1 and "threads" in caplog.text, "one warning per difference"


# --------------------------------------------------------------------------------------------
# The population attacks: the starting kit's simple_mia, SSD's entropy attack, SalUn's SVC_MIA
def test_umia_equals_the_kits_simple_mia_on_balanced_groups():
    from sklearn import linear_model, model_selection

    rng = np.random.default_rng(3)
    forget, test = rng.exponential(0.5, 120), rng.exponential(0.8, 120)
    samples = np.concatenate((test, forget)).reshape((-1, 1))
    labels = [0] * len(test) + [1] * len(forget)
    cv = model_selection.StratifiedShuffleSplit(n_splits=10, random_state=0)
    kit = model_selection.cross_val_score(linear_model.LogisticRegression(), samples, labels, cv=cv, scoring="accuracy")
    assert loss_attack_accuracy(forget, test, 10, seed=0) == pytest.approx(kit.mean(), abs=1e-12)


def test_entropy_attack_is_the_references_two_class_softmax_regression():
    """SSD's LogisticRegression(class_weight="balanced", multi_class="multinomial") on two classes,
    solved directly: a two-class softmax with per-sample balanced weights and ½‖W‖² (C = 1)."""
    rng = np.random.default_rng(0)
    member, nonmember, target = rng.gamma(1.0, 0.2, 600), rng.gamma(2.0, 0.3, 200), rng.gamma(1.5, 0.25, 300)
    x = np.r_[member, nonmember]
    y = np.r_[np.ones(len(member)), np.zeros(len(nonmember))].astype(int)
    weight = np.where(y == 1, len(y) / (2 * len(member)), len(y) / (2 * len(nonmember)))

    def objective(theta):
        z = np.outer(x, theta[:2]) + theta[2:]
        log_lik = z[np.arange(len(y)), y] - np.logaddexp(z[:, 0], z[:, 1])
        return -(weight * log_lik).sum() + 0.5 * (theta[:2] ** 2).sum()

    theta = minimize(objective, np.zeros(4), method="BFGS", options={"gtol": 1e-10}).x
    reference = (np.outer(target, theta[:2]) + theta[2:]).argmax(1).mean()
    assert entropy_member_rate(member, nonmember, target) == pytest.approx(reference, abs=1 / len(target))


def test_mia_efficacy_equals_salun_svc_on_its_shadow_split():
    from sklearn.svm import SVC

    rng = np.random.default_rng(1)
    retain, test, forget = rng.beta(8, 1, 150), rng.beta(3, 1, 150), rng.beta(5, 1, 80)
    clf = SVC(C=3, gamma="auto", kernel="rbf").fit(np.r_[retain, test].reshape(-1, 1), np.r_[np.ones(150), np.zeros(150)])
    salun = 1 - clf.predict(forget.reshape(-1, 1)).mean()
    assert svc_nonmember_rate(retain, test, forget, np.random.default_rng(0)) == pytest.approx(salun, abs=1e-12)


def test_soft_mutual_information_equals_the_reference_estimator():
    """Machine_Unlearn_via_Info_Reg's compute_mutual_information_multiclass on the pool
    (remain ∪ unlearn → z = 0, remain → z = 1), with its 1e-10 guards and p(z) from the labels."""
    g = torch.Generator().manual_seed(0)
    remain, unlearn = torch.randn(40, 6, generator=g), torch.randn(15, 6, generator=g) + 0.7
    probs = torch.softmax(torch.cat([remain, unlearn, remain]).double(), 1).clamp(1e-10, 1 - 1e-10)
    z = torch.cat([torch.zeros(55), torch.ones(40)]).double()
    n, eps = len(z), 1e-10
    p_z1 = z.mean()
    joint1, joint0 = (probs * z[:, None]).sum(0) / n, (probs * (1 - z)[:, None]).sum(0) / n
    p_y = joint1 + joint0
    reference = (joint1 * torch.log(joint1 / (p_y * p_z1 + eps) + eps)).sum() \
        + (joint0 * torch.log(joint0 / (p_y * (1 - p_z1) + eps) + eps)).sum()
    ours = soft_mutual_information(torch.softmax(remain, 1), torch.softmax(unlearn, 1))
    assert float(ours) == pytest.approx(float(reference), abs=1e-6)


def test_logit_confidence_equals_the_challenges_scaling():
    """metric.py's compute_logit_scaled_confidence: log(p_y + 1e-45) − log(Σ_{c≠y} p_c + 1e-45)."""
    g = torch.Generator().manual_seed(2)
    logits, y = torch.randn(30, 10, generator=g) * 5, torch.randint(0, 10, (30,), generator=g)
    z = logits.numpy() - logits.numpy().max(1, keepdims=True)
    probs = np.exp(z).astype(np.float64)
    probs /= probs.sum(1, keepdims=True)
    right = probs[np.arange(30), y.numpy()]
    probs[np.arange(30), y.numpy()] = 0
    reference = np.log(right + 1e-45) - np.log(probs.sum(1) + 1e-45)
    np.testing.assert_allclose(logit_confidence(logits, y), reference, rtol=1e-5, atol=1e-5)
