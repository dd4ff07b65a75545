"""Metrics of exact and training-time unlearning: how far from retraining the result is
(``exact_gap``) and what share of a full retrain the request cost (``retrain_fraction``)."""
from __future__ import annotations

import torch
from torch import Tensor

from erasure.evaluators.base import TASKS, Evaluator, Outcome, Undefined
from erasure.results.targets import Target, ideal, informational

PARTITIONS = ("forget", "retain", "test")


def exact_gap(p_logits: Tensor, q_logits: Tensor) -> float:
    """The largest absolute difference between two models' output probabilities (0 when equal)."""
    if len(p_logits) == 0:
        return 0.0
    return float((torch.softmax(p_logits.float(), 1) - torch.softmax(q_logits.float(), 1)).abs().max())


class ExactGap(Evaluator):
    """``exact_gap``: the largest difference between the unlearned model's output probabilities
    and the gold model's (retrained from scratch without the deleted data, same seed and, for a
    method with a training scheme, the same scheme) over forget, retain and test. 0 means the
    unlearning was exact (SISA's claim, Bourtoule et al. 2021)."""

    uses_gold = True
    metric_targets = {"exact_gap": ideal(0, 0, 1)}

    def __init__(self) -> None:
        pass

    def evaluate(self, outcome: Outcome) -> dict[str, float]:
        return {"exact_gap": max(exact_gap(outcome.logits("unlearned", p), outcome.logits("gold", p))
                                 for p in PARTITIONS)}


class RetrainFraction(Evaluator):
    """``retrain_fraction``: the training compute spent on this request over that of a full
    retrain. Exact methods count it themselves (SISA: sample-gradient steps over those of
    retraining the whole ensemble; Amnesiac: repair epochs over training epochs; CertifiedRemoval:
    0, no training); for other methods it is the unlearning call's CPU seconds over gold's
    training CPU seconds."""

    uses_gold = True
    tasks = TASKS
    metric_targets: dict[str, Target] = {"retrain_fraction": informational("lower")}

    def __init__(self) -> None:
        pass

    def evaluate(self, outcome: Outcome) -> dict[str, float]:
        counted = getattr(outcome.context, "extras", {}).get("retrain_fraction")
        if counted is not None:
            return {"retrain_fraction": float(counted)}
        gold = outcome.gold_timing.cpu_seconds
        if not gold > 0:
            return {"retrain_fraction": Undefined("gold's training CPU time is unknown")}
        return {"retrain_fraction": outcome.timing.cpu_seconds / gold}
