"""ForgettingQuality and ULiRA: reference computations and behaviour on built distributions."""
import itertools
import math

import numpy as np
import pytest
import torch
from scipy import stats
from sklearn.metrics import roc_auc_score

from erasure.core.errors import ConfigError
from erasure.evaluators.forgetting_quality import (ForgettingQuality, attack_epsilon, epsilon_points,
                                                   forgetting_quality, all_intervals_epsilon)
from erasure.evaluators.replicas import logit_confidence
from erasure.evaluators.ulira import ULiRA, cross_fitted_ulira, gaussian_log_ratio, ulira_attack

DELTA = 1e-5


def brute_force_epsilon(u, r, delta=DELTA):
    """Literal loop over every interval rule and its complement, counting errors sample by sample."""
    thresholds = [-math.inf, *sorted(set(u) | set(r))]
    best = None
    for t1, t2 in itertools.combinations(thresholds, 2):
        for inside in (True, False):
            pred_u = [(t1 < v <= t2) == inside for v in u]
            pred_r = [(t1 < v <= t2) == inside for v in r]
            fnr = pred_u.count(False) / len(u)
            fpr = pred_r.count(True) / len(r)
            if fpr == 0 and fnr == 0:
                eps = math.inf
            elif fpr == 0 or fnr == 0:
                continue
            else:
                cands = [math.log(a) - math.log(b) for a, b in ((1 - delta - fpr, fnr), (1 - delta - fnr, fpr)) if a > 0]
                eps = max(cands) if cands else math.inf
            best = eps if best is None else max(best, eps)
    return max(best if best is not None else 0.0, 0.0)


def test_logit_confidence_matches_definition():
    logits = torch.randn(30, 5, generator=torch.Generator().manual_seed(0)) * 4
    y = torch.randint(0, 5, (30,), generator=torch.Generator().manual_seed(1))
    p = torch.softmax(logits.double(), 1)[torch.arange(30), y].numpy()
    np.testing.assert_allclose(logit_confidence(logits, y), np.log(p) - np.log1p(-p), rtol=1e-4, atol=1e-4)


def test_epsilon_equals_brute_force_on_random_samples():
    rng = np.random.default_rng(0)
    u = rng.normal(0.8, 1, (6, 5))
    r = rng.normal(0, 1, (6, 5))
    got = all_intervals_epsilon(u, r, DELTA, chunk=200)  # small chunk: several chunks
    expected = [brute_force_epsilon(list(u[:, s]), list(r[:, s])) for s in range(5)]
    np.testing.assert_allclose(got, expected, rtol=1e-9)


def test_two_known_gaussians_hand_computed_epsilon():
    """N(μ,1) vs N(0,1); the balanced threshold t = μ/2 has FPR = FNR = q = Φ(−μ/2), so its
    ε = ln(1−δ−q) − ln q; the best attack is at least that good, and the estimate from large
    samples recovers the rates."""
    mu, n = 2.0, 20_000
    rng = np.random.default_rng(1)
    u, r = rng.normal(mu, 1, n), rng.normal(0, 1, n)
    q = stats.norm.cdf(-mu / 2)
    hand = math.log(1 - DELTA - q) - math.log(q)  # = 1.6683 for μ = 2
    assert hand == pytest.approx(1.6683, abs=1e-3)
    fpr, fnr = (r > mu / 2).mean(), (u <= mu / 2).mean()
    assert attack_epsilon(np.array([fpr]), np.array([fnr]), DELTA)[0] == pytest.approx(hand, abs=0.05)
    assert all_intervals_epsilon(u[:400, None], r[:400, None])[0] >= hand - 0.15


def test_attack_epsilon_rules():
    eps = attack_epsilon(np.array([0.0, 0.0, 0.3, 0.5]), np.array([0.0, 0.2, 0.0, 0.5]), DELTA)
    assert eps[0] == math.inf and math.isnan(eps[1]) and math.isnan(eps[2])
    assert eps[3] == pytest.approx(math.log(0.5 - DELTA) - math.log(0.5))


def test_neurips_points_table():
    # N = 16: ε_max = ⌈ln 15⌉ = 3, buckets of width 0.5 score 1, 1/2, 1/4, 1/8, 1/16, 1/32, then 0
    eps = np.array([0.0, 0.49, 0.5, 0.99, 1.0, 1.6, 2.2, 2.9, 3.0, 7.0, math.inf])
    np.testing.assert_allclose(epsilon_points(eps, 16),
                               [1, 1, 0.5, 0.5, 0.25, 1 / 8, 1 / 16, 1 / 32, 0, 0, 0])
    # N = 512: ε_max = ⌈ln 511⌉ = 7, so ε = 6.9 still scores 2^−13
    assert epsilon_points(np.array([6.9, 7.0]), 512).tolist() == [2.0 ** -13, 0.0]


def test_identical_distributions_give_full_quality_and_separated_about_zero():
    rng = np.random.default_rng(0)
    same = rng.normal(0, 1, (16, 40))
    assert forgetting_quality(same, same.copy()) == 1.0
    far = forgetting_quality(rng.normal(10, 1, (16, 40)), rng.normal(0, 1, (16, 40)))
    assert far < 0.05
    # independent draws from one distribution sit in between: with N = 16 the best of ~2,000
    # threshold attacks overfits the 32 samples, which is the estimator's floor at this N
    mid = forgetting_quality(rng.normal(0, 1, (16, 40)), rng.normal(0, 1, (16, 40)))
    assert far + 0.05 < mid < 1.0


def test_forgetting_quality_rejects_too_few_models():
    with pytest.raises(ConfigError, match="num_models"):
        ForgettingQuality(num_models=2).check()
    with pytest.raises(ConfigError, match="num_models"):
        ULiRA(num_models=3).check()


def test_gaussian_log_ratio_matches_scipy():
    rng = np.random.default_rng(0)
    su, sr, x = rng.normal(1, 2, (8, 3)), rng.normal(0, 1, (8, 3)), rng.normal(0, 1, (5, 3))
    expected = (stats.norm.logpdf(x, su.mean(0), su.std(0, ddof=1))
                - stats.norm.logpdf(x, sr.mean(0), sr.std(0, ddof=1)))
    np.testing.assert_allclose(gaussian_log_ratio(x, su, sr), expected, rtol=1e-9)


def test_ulira_accuracy_and_auc_against_sklearn():
    rng = np.random.default_rng(1)
    su, sr = rng.normal(1, 1, (8, 20)), rng.normal(0, 1, (8, 20))
    tu, tr = rng.normal(1, 1, (8, 20)), rng.normal(0, 1, (8, 20))
    acc, auc = ulira_attack(su, sr, tu, tr)
    lu, lr = gaussian_log_ratio(tu, su, sr).ravel(), gaussian_log_ratio(tr, su, sr).ravel()
    labels = np.r_[np.ones(lu.size), np.zeros(lr.size)]
    assert auc == pytest.approx(roc_auc_score(labels, np.r_[lu, lr]))
    assert acc == pytest.approx(0.5 * ((lu > 0).mean() + (lr <= 0).mean()))
    assert 0.6 < acc < 0.8  # separation 1σ: Bayes accuracy Φ(0.5) ≈ 0.69


def test_ulira_extremes():
    rng = np.random.default_rng(2)
    acc, auc = cross_fitted_ulira(rng.normal(8, 1, (16, 30)), rng.normal(0, 1, (16, 30)))
    assert acc > 0.99 and auc > 0.99
    acc, auc = cross_fitted_ulira(rng.normal(0, 1, (16, 30)), rng.normal(0, 1, (16, 30)))
    assert abs(acc - 0.5) < 0.08 and abs(auc - 0.5) < 0.08


def _independent_models(x, y, count, seed0):
    out = []
    for s in range(count):
        torch.manual_seed(seed0 + s)
        m = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))
        opt = torch.optim.Adam(m.parameters(), 1e-2)
        for _ in range(60):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(m(x), y).backward()
            opt.step()
        out.append(m.eval())
    return out


def test_models_trained_independently_on_same_data_are_indistinguishable():
    from sklearn.datasets import load_digits

    d = load_digits()
    x, y = torch.tensor(d.data[:300], dtype=torch.float32) / 16, torch.tensor(d.target[:300])
    probe_x, probe_y = torch.tensor(d.data[300:360], dtype=torch.float32) / 16, torch.tensor(d.target[300:360])
    group_a, group_b = _independent_models(x, y, 8, 0), _independent_models(x, y, 8, 100)
    with torch.no_grad():
        a = np.stack([logit_confidence(m(probe_x), probe_y) for m in group_a])
        b = np.stack([logit_confidence(m(probe_x), probe_y) for m in group_b])
    acc, auc = cross_fitted_ulira(a, b)
    assert abs(acc - 0.5) < 0.1 and abs(auc - 0.5) < 0.12
    # the same models against ones that were trained on other data are told apart
    other = _independent_models(probe_x.repeat(5, 1), probe_y.repeat(5), 8, 200)
    with torch.no_grad():
        c = np.stack([logit_confidence(m(probe_x), probe_y) for m in other])
    assert cross_fitted_ulira(c, b)[0] > 0.8
    assert forgetting_quality(c, b) < forgetting_quality(a, b)
