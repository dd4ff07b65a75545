"""ForgettingQuality: the per-example ε score of the NeurIPS 2023 unlearning challenge.

Triantafillou et al., "Are we making progress in unlearning? Findings from the
first NeurIPS unlearning competition" (2024); reference code:
google-deepmind/unlearning_evaluation, ``metric.py`` (attacks and score) and
``main.py`` (protocol). For each forget example, the logit-scaled confidences φ
of N unlearned and N retrained models are two samples; each decision rule of an
attack family is an attack with a false-positive rate (FPR) and a false-negative
rate (FNR); the example's ε is the largest
max(log(1−δ−FPR) − log FNR, log(1−δ−FNR) − log FPR) over the attacks (attacks
with exactly one zero rate are discarded, both zero gives ε = ∞). Each example
scores points by its ε bucket (width 0.5): 1, 1/2, 1/4, …, and 0 from
ε_max = ⌈ln(N−1)⌉ on; F is the mean. The challenge's final score is
F·(RA/RA_retrained)·(TA/TA_retrained).

Two attack families:

* ``challenge`` (metric.py): if one group's range (max − min) is below 1% of the
  other's, ε = 50 (the cap); otherwise single thresholds on a grid of 100 per
  unit over both groups, one direction only ("positive iff φ ≥ t", positive =
  the group with the larger median), and intervals [l, r] that call the peakier
  group (the smaller range) inside: 400 left thresholds within ±2 of r − width
  for each right threshold r on a grid from its max − 2 to its max + 2.
* ``all_intervals``: every interval (t1, t2] with thresholds at the observed
  values, and its complement (a superset of all one- and two-threshold rules).
"""
from __future__ import annotations

import math
from typing import Literal

import numpy as np

from erasure.core.errors import ConfigError
from erasure.core.params import OpenFraction, PositiveInt
from erasure.evaluators.base import Evaluator, Outcome
from erasure.evaluators.replicas import replica_scores
from erasure.results.targets import at_least_gold

AttackFamily = Literal["challenge", "all_intervals"]
Protocol = Literal["challenge", "varied_originals"]

EPSILON_CAP = 50.0  # metric.py's EPSILON_CAP
THRESHOLDS_PER_UNIT = 100  # metric.py's NUM_THRESHOLDS_PER_UNIT
BUFFER = 2.0  # metric.py's interval buffer
PEAKY_RATIO = 0.01  # a range below 1% of the other group's means ε = EPSILON_CAP


def attack_epsilon(fpr: np.ndarray, fnr: np.ndarray, delta: float) -> np.ndarray:
    """ε of each attack from its error rates; NaN marks a discarded attack: exactly one rate zero,
    or both log terms undefined (FPR = FNR = 1)."""
    fpr, fnr = np.asarray(fpr, float), np.asarray(fnr, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        e1 = np.log(1 - delta - fpr) - np.log(fnr)
        e2 = np.log(1 - delta - fnr) - np.log(fpr)
        eps = np.fmax(e1, e2)  # NaN only where both are NaN
    eps = np.where((fpr == 0) & (fnr == 0), np.inf, eps)
    return np.where((fpr == 0) ^ (fnr == 0), np.nan, eps)


def _best_epsilon(inside_a: np.ndarray, inside_b: np.ndarray, size_a: int, size_b: int, delta: float) -> float:
    """Largest ε over attacks "a iff inside", given how many of a and of b each one calls inside
    (0 when every attack is discarded; the reference code stops with an assertion there)."""
    seen = np.zeros((size_a + 1) * (size_b + 1), bool)  # ε depends on the counts alone
    seen[(inside_a * (size_b + 1) + inside_b).ravel()] = True
    pairs = np.flatnonzero(seen)
    k_a, k_b = np.divmod(pairs, size_b + 1)
    eps = attack_epsilon(k_b / size_b, (size_a - k_a) / size_a, delta)
    return max(float(np.nanmax(eps)), 0.0) if not np.isnan(eps).all() else 0.0


def challenge_example_epsilon(unlearned: np.ndarray, retrained: np.ndarray, delta: float = 1e-5) -> float:
    """ε of one forget example under the challenge's attack family (metric.py, ``_get_epsilons``)."""
    u, r = np.sort(np.asarray(unlearned, float)), np.sort(np.asarray(retrained, float))
    pos, neg = (r, u) if np.median(r) > np.median(u) else (u, r)
    pos_range, neg_range = pos[-1] - pos[0], neg[-1] - neg[0]
    smallest, largest = min(pos_range, neg_range), max(pos_range, neg_range)
    if largest > 0 and smallest / largest < PEAKY_RATIO:
        return EPSILON_CAP
    best = [0.0]
    # single thresholds: "pos iff φ ≥ t"
    low, high = min(pos[0], neg[0]), max(pos[-1], neg[-1])
    t = np.linspace(low, high, int(math.ceil((high - low) * THRESHOLDS_PER_UNIT)))
    if len(t):
        at_or_above = [len(g) - np.searchsorted(g, t, "left") for g in (pos, neg)]
        best.append(_best_epsilon(*at_or_above, len(pos), len(neg), delta))
    # intervals: "peaky iff l ≤ φ ≤ r", for each right threshold r a row of left thresholds l
    peaky, other = (neg, pos) if pos_range >= neg_range else (pos, neg)
    width = smallest
    low, high = peaky[0] + width - BUFFER, peaky[-1] + BUFFER
    right = np.linspace(low, high, int(math.ceil((high - low) * THRESHOLDS_PER_UNIT)))
    n_left = int(math.ceil(2 * BUFFER * THRESHOLDS_PER_UNIT))
    left = np.linspace(right - width - BUFFER, right - width + BUFFER, n_left, axis=1)
    if left.size:
        inside = [np.maximum(np.searchsorted(g, right, "right")[:, None] - np.searchsorted(g, left, "left"), 0)
                  for g in (peaky, other)]
        best.append(_best_epsilon(*inside, len(peaky), len(other), delta))
    return min(max(best), EPSILON_CAP)


def challenge_epsilon(unlearned: np.ndarray, retrained: np.ndarray, delta: float = 1e-5) -> np.ndarray:
    """ε of each column (forget example) of ``unlearned`` (N_u, S) versus ``retrained`` (N_r, S)
    under the challenge's attack family."""
    u, r = np.asarray(unlearned, float), np.asarray(retrained, float)
    return np.array([challenge_example_epsilon(u[:, s], r[:, s], delta) for s in range(u.shape[1])])


def all_intervals_epsilon(unlearned: np.ndarray, retrained: np.ndarray, delta: float = 1e-5,
                        chunk: int = 20_000_000) -> np.ndarray:
    """ε of each column (forget example) of ``unlearned`` (N_u, S) versus ``retrained`` (N_r, S)
    under the ``all_intervals`` family.

    Attacks: "unlearned iff t1 < φ ≤ t2" and its complement for every pair of
    thresholds taken at the observed values (t1 = −∞ gives the single-threshold
    rules). Rates come from the empirical CDFs, so the work is O(S·T²) with
    T = N_u + N_r + 1, done in chunks of examples.
    """
    u, r = np.asarray(unlearned, float), np.asarray(retrained, float)
    n_s = u.shape[1]
    t_count = u.shape[0] + r.shape[0] + 1
    step = max(1, chunk // (t_count * t_count))
    out = np.empty(n_s)
    for start in range(0, n_s, step):
        uu, rr = u[:, start:start + step], r[:, start:start + step]
        thresholds = np.concatenate([np.full((1, uu.shape[1]), -np.inf), uu, rr]).T  # (s, T)
        cdf_u = (uu.T[:, None, :] <= thresholds[:, :, None]).mean(2)  # (s, T)
        cdf_r = (rr.T[:, None, :] <= thresholds[:, :, None]).mean(2)
        in_u = cdf_u[:, None, :] - cdf_u[:, :, None]  # (s, t1, t2): share of u in (t1, t2]
        in_r = cdf_r[:, None, :] - cdf_r[:, :, None]
        valid = (thresholds[:, :, None] < thresholds[:, None, :])[..., None]
        fpr = np.stack([in_r, 1 - in_r], -1)  # interval rule and its complement
        fnr = np.stack([1 - in_u, in_u], -1)
        eps = np.where(valid, attack_epsilon(fpr, fnr, delta), np.nan).reshape(len(thresholds), -1)
        all_nan = np.isnan(eps).all(1)
        eps = np.where(all_nan[:, None], 0.0, eps)
        out[start:start + step] = np.maximum(np.nanmax(eps, 1), 0.0)
    return out


def epsilon_points(epsilons: np.ndarray, num_models: int, width: float = 0.5) -> np.ndarray:
    """Points per example: 2^−k for ε in [k·width, (k+1)·width) below ε_max = ⌈ln(N−1)⌉, else 0."""
    eps = np.asarray(epsilons, float)
    eps_max = math.ceil(math.log(max(num_models - 1, 1)))
    with np.errstate(invalid="ignore", over="ignore"):
        points = np.power(0.5, np.floor(np.where(np.isfinite(eps), eps, 0.0) / width))
    return np.where(eps < eps_max, points, 0.0)


def example_epsilons(unlearned: np.ndarray, retrained: np.ndarray, delta: float = 1e-5,
                     attacks: AttackFamily = "challenge") -> np.ndarray:
    """The per-example ε under the chosen attack family."""
    epsilon = challenge_epsilon if attacks == "challenge" else all_intervals_epsilon
    return epsilon(unlearned, retrained, delta)


def forgetting_quality(unlearned: np.ndarray, retrained: np.ndarray, delta: float = 1e-5,
                       attacks: AttackFamily = "challenge") -> float:
    """F: mean points of the per-example ε (N = the number of models of each kind)."""
    eps = example_epsilons(unlearned, retrained, delta, attacks)
    return float(epsilon_points(eps, min(len(unlearned), len(retrained))).mean())


class ForgettingQuality(Evaluator):
    """``forgetting_quality`` (F, in [0, 1], 1 = indistinguishable from retraining) and
    ``forgetting_quality_final`` = F·(RA/RA_gold)·(TA/TA_gold) with accuracies averaged over
    the replicas (the NeurIPS 2023 challenge score; the challenge used N = 512, δ = 1e-5).

    ``protocol``: ``challenge`` (default, the challenge's main.py) runs the unlearner
    ``num_models`` times from the job's own original with other unlearning seeds, so a
    deterministic unlearner gives N identical models and scores 0; ``varied_originals``
    applies it once to each of N originals trained with other seeds. Either way the
    retrained replicas are N gold models with other seeds (see
    :mod:`erasure.evaluators.replicas`). ``attacks``: ``challenge`` (default, metric.py's
    family) or ``all_intervals`` (every interval at the observed values and its complement).
    Both estimators have a floor below 1 (two samples of one distribution do not score 1) that
    depends on N (the challenge's family up to about N = 16, all_intervals at every N), so
    compare rows at equal N, against GoldModel's row. N = 16 gives ε_max = 3; at least 3
    models are needed (ε_max = ⌈ln(N−1)⌉ > 0).

    Target: higher is better, with GoldModel's value as a noisy ceiling (``at_least_gold``): the
    score is the challenge's, where more is better, and gold's own row is the estimator's floor
    for two samples of one distribution, not a value to approach from above; the gold gap counts
    only how far a method falls below it.
    """

    metric_targets = {"forgetting_quality": at_least_gold(), "forgetting_quality_final": at_least_gold(0, None)}

    contract_config = {"parameters": {"num_models": 4}}

    def __init__(self, num_models: PositiveInt = 16, delta: OpenFraction = 1e-5,
                 protocol: Protocol = "challenge", attacks: AttackFamily = "challenge"):
        self.num_models = num_models
        self.delta = delta
        self.protocol = protocol
        self.attacks = attacks

    def check(self) -> None:
        if self.num_models < 3:
            raise ConfigError(f"num_models must be at least 3 (ε_max = ⌈ln(N−1)⌉ is 0 below), got {self.num_models}", "num_models")

    def evaluate(self, outcome: Outcome) -> dict[str, float]:
        s = replica_scores(outcome, self.num_models, self.protocol)
        eps = example_epsilons(s.unlearned, s.retrained, self.delta, self.attacks)
        f = float(epsilon_points(eps, min(len(s.unlearned), len(s.retrained))).mean())
        outcome.artifacts["forgetting_quality_epsilon"] = eps  # per forget example, for the report
        ratio = 1.0
        for p in ("retain", "test"):
            ratio *= s.unlearned_accuracy[p] / max(s.retrained_accuracy[p], 1e-12)
        return {"forgetting_quality": f, "forgetting_quality_final": f * ratio}
