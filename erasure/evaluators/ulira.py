"""ULiRA: the unlearning likelihood-ratio attack (Hayes et al., "Inexact unlearning needs more
careful evaluations to avoid a false sense of privacy", SaTML 2025)."""
from __future__ import annotations

import numpy as np

from erasure.core.errors import ConfigError
from erasure.core.params import PositiveInt
from erasure.evaluators.base import Evaluator, Outcome
from erasure.evaluators.replicas import replica_scores
from erasure.results.targets import as_gold


def gaussian_log_ratio(x: np.ndarray, shadow_u: np.ndarray, shadow_r: np.ndarray, min_std: float = 1e-3) -> np.ndarray:
    """log N(x; μ_u, σ_u) − log N(x; μ_r, σ_r) per example, the Gaussians fitted column-wise to
    the shadow scores (n, S); ``x`` is (m, S)."""
    mu_u, mu_r = shadow_u.mean(0), shadow_r.mean(0)
    sd_u = np.maximum(shadow_u.std(0, ddof=1), min_std)
    sd_r = np.maximum(shadow_r.std(0, ddof=1), min_std)
    log_u = -0.5 * ((x - mu_u) / sd_u) ** 2 - np.log(sd_u)
    log_r = -0.5 * ((x - mu_r) / sd_r) ** 2 - np.log(sd_r)
    return log_u - log_r


def ulira_attack(shadow_u: np.ndarray, shadow_r: np.ndarray, target_u: np.ndarray, target_r: np.ndarray) -> tuple[float, float]:
    """(balanced accuracy, AUC) of the per-example likelihood-ratio test that calls a target
    "unlearned" when its ratio is positive; targets are (m, S) scores of unlearned / retrained models."""
    from sklearn.metrics import roc_auc_score

    lr_u = gaussian_log_ratio(target_u, shadow_u, shadow_r).ravel()
    lr_r = gaussian_log_ratio(target_r, shadow_u, shadow_r).ravel()
    accuracy = 0.5 * (float((lr_u > 0).mean()) + float((lr_r <= 0).mean()))
    labels = np.concatenate([np.ones(len(lr_u)), np.zeros(len(lr_r))])
    return accuracy, float(roc_auc_score(labels, np.concatenate([lr_u, lr_r])))


def cross_fitted_ulira(unlearned: np.ndarray, retrained: np.ndarray) -> tuple[float, float]:
    """Two-fold cross-fitting over models: fit on one half of each kind, attack the other half, swap, average."""
    n = min(len(unlearned), len(retrained))
    half = n // 2
    folds = [(slice(0, half), slice(half, n)), (slice(half, n), slice(0, half))]
    results = [ulira_attack(unlearned[a], retrained[a], unlearned[b], retrained[b]) for a, b in folds]
    return float(np.mean([r[0] for r in results])), float(np.mean([r[1] for r in results]))


class ULiRA(Evaluator):
    """``ulira_accuracy`` and ``ulira_auc`` of the U-LiRA test (target: gold's, about 0.5).

    For each forget example, Gaussians are fitted to φ = log p_y − log(1−p_y) of shadow
    unlearned models and shadow retrained models; held-out target models of both kinds are
    classified by the sign of the likelihood ratio. Models are the ``varied_originals`` replicas
    of :mod:`erasure.evaluators.replicas` (the unlearner applied to originals trained with other
    seeds, as the paper's shadow models are; the retrained replicas are shared with
    ForgettingQuality), split into two halves for cross-fitting. Deviation from the paper: the forget set is the experiment's fixed
    one rather than random splits of candidate examples, so the test measures exactly the
    forget set that the other metrics judge. ``num_models`` models of each kind (at least 4,
    so that each half fits a standard deviation); the paper uses 16 to 32 shadow models.
    """

    metric_targets = {"ulira_accuracy": as_gold(), "ulira_auc": as_gold()}

    contract_config = {"parameters": {"num_models": 4}}

    def __init__(self, num_models: PositiveInt = 16):
        self.num_models = num_models

    def check(self) -> None:
        if self.num_models < 4:
            raise ConfigError(f"num_models must be at least 4 (two halves with two models each), got {self.num_models}", "num_models")

    def evaluate(self, outcome: Outcome) -> dict[str, float]:
        s = replica_scores(outcome, self.num_models, "varied_originals")
        accuracy, auc = cross_fitted_ulira(s.unlearned, s.retrained)
        # per forget example, for the report: mean φ over the unlearned and the retrained replicas
        outcome.artifacts["ulira_phi_unlearned"] = s.unlearned.mean(0)
        outcome.artifacts["ulira_phi_retrained"] = s.retrained.mean(0)
        return {"ulira_accuracy": accuracy, "ulira_auc": auc}
