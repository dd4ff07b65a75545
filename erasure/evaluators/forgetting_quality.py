"""ForgettingQuality: the per-example ε score of the NeurIPS 2023 unlearning challenge.

Triantafillou et al., "Are we making progress in unlearning? Findings from the
first NeurIPS unlearning competition" (2024). For each forget example, the
logit-scaled confidences φ of N unlearned and N retrained models are two
samples; every single-threshold and double-threshold (interval) decision rule
is an attack with a false-positive rate (retrained called unlearned) and a
false-negative rate; the example's ε is the largest
max(log(1−δ−FPR) − log FNR, log(1−δ−FNR) − log FPR) over attacks (attacks
with exactly one zero rate are discarded, both zero gives ε = ∞). Each
example scores points by its ε bucket (width 0.5): 1, 1/2, 1/4, …, and 0
from ε_max = ⌈ln(N−1)⌉ on; F is the mean. The challenge's final score is
F·(RA/RA_retrained)·(TA/TA_retrained).
"""
from __future__ import annotations

import math

import numpy as np

from erasure.core.errors import ConfigError
from erasure.core.params import OpenFraction, PositiveInt
from erasure.evaluators.base import Evaluator, Outcome
from erasure.evaluators.replicas import replica_scores
from erasure.results.targets import as_gold


def attack_epsilon(fpr: np.ndarray, fnr: np.ndarray, delta: float) -> np.ndarray:
    """ε of each attack from its error rates; NaN marks a discarded attack (exactly one rate zero)."""
    fpr, fnr = np.asarray(fpr, float), np.asarray(fnr, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        e1 = np.log(1 - delta - fpr) - np.log(fnr)
        e2 = np.log(1 - delta - fnr) - np.log(fpr)
        eps = np.fmax(e1, e2)  # NaN only where both are NaN
    eps = np.where(np.isnan(eps), np.inf, eps)
    eps = np.where((fpr == 0) & (fnr == 0), np.inf, eps)
    return np.where((fpr == 0) ^ (fnr == 0), np.nan, eps)


def per_example_epsilon(unlearned: np.ndarray, retrained: np.ndarray, delta: float = 1e-5,
                        chunk: int = 20_000_000) -> np.ndarray:
    """ε of each column (forget example) of ``unlearned`` (N_u, S) versus ``retrained`` (N_r, S).

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


def forgetting_quality(unlearned: np.ndarray, retrained: np.ndarray, delta: float = 1e-5) -> float:
    """F: mean points of the per-example ε (N = the number of models of each kind)."""
    eps = per_example_epsilon(unlearned, retrained, delta)
    return float(epsilon_points(eps, min(len(unlearned), len(retrained))).mean())


class ForgettingQuality(Evaluator):
    """``forgetting_quality`` (F, in [0, 1], 1 = indistinguishable from retraining) and
    ``forgetting_quality_final`` = F·(RA/RA_gold)·(TA/TA_gold) with accuracies averaged over
    the replicas (the NeurIPS 2023 challenge score; the challenge used N = 512, δ = 1e-5).

    ``num_models`` unlearned and as many retrained replicas are trained through the model
    cache (see :mod:`erasure.evaluators.replicas`); N = 16 gives ε_max = 3, enough to tell
    forgotten from remembered examples, and is what the challenge's organisers found the
    smallest useful number. Needs at least 3 models (ε_max = ⌈ln(N−1)⌉ > 0).
    """

    metric_targets = {"forgetting_quality": as_gold(), "forgetting_quality_final": as_gold(0, None)}

    contract_config = {"parameters": {"num_models": 4}}

    def __init__(self, num_models: PositiveInt = 16, delta: OpenFraction = 1e-5):
        self.num_models = num_models
        self.delta = delta

    def check(self) -> None:
        if self.num_models < 3:
            raise ConfigError(f"num_models must be at least 3 (ε_max = ⌈ln(N−1)⌉ is 0 below), got {self.num_models}", "num_models")

    def evaluate(self, outcome: Outcome) -> dict[str, float]:
        s = replica_scores(outcome, self.num_models)
        f = forgetting_quality(s.unlearned, s.retrained, self.delta)
        ratio = 1.0
        for p in ("retain", "test"):
            ratio *= s.unlearned_accuracy[p] / max(s.retrained_accuracy[p], 1e-12)
        return {"forgetting_quality": f, "forgetting_quality_final": f * ratio}
