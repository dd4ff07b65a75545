"""Accuracy per partition: top-1 on single-label data, subset (exact-match) accuracy on multi-label data."""
from __future__ import annotations

from torch import Tensor

from erasure.core.params import PartitionName
from erasure.evaluators.base import TASKS, Evaluator, Outcome
from erasure.results.targets import as_gold, ideal

REPORTED = ("forget", "retain", "test", "forget_test", "retain_test")


def top1_accuracy(logits: Tensor, targets: Tensor) -> float:
    """Share of rows whose arg-max equals the target (NaN for no rows)."""
    if len(targets) == 0:
        return float("nan")
    return float((logits.argmax(1) == targets).float().mean())


def subset_accuracy(logits: Tensor, targets: Tensor) -> float:
    """Share of rows whose predicted labels (logit > 0) are exactly the target's 0/1 labels, as
    scikit-learn's ``accuracy_score`` on multi-label data (NaN for no rows)."""
    if len(targets) == 0:
        return float("nan")
    return float(((logits > 0) == targets.bool()).all(1).float().mean())


def task_accuracy(logits: Tensor, targets: Tensor) -> float:
    """:func:`top1_accuracy` for class indices ``(N,)``, :func:`subset_accuracy` for multi-label targets ``(N, L)``."""
    return subset_accuracy(logits, targets) if targets.dim() == 2 else top1_accuracy(logits, targets)


class Accuracy(Evaluator):
    """``accuracy_<partition>`` on forget, retain, test and, for class or group forgetting,
    forget_test / retain_test (the "Df" / "Dr" columns of the SSD and JiT tables). On multi-label
    data it is subset accuracy: a sample counts when all its labels are predicted right
    (:class:`MultiLabelAccuracy` adds Hamming accuracy and F1).

    ``partitions`` lists others instead, named ones of ``data.partitions`` included (their
    target: as gold, like test accuracy). Empty partitions are skipped."""

    tasks = TASKS
    metric_targets = {"accuracy_forget": as_gold(), "accuracy_forget_test": as_gold(), "accuracy_test": as_gold(),
                      "accuracy_retain": ideal(1), "accuracy_retain_test": ideal(1), "accuracy_*": as_gold()}

    def __init__(self, partitions: list[PartitionName] | None = None) -> None:
        self.partitions = partitions

    def evaluate(self, outcome: Outcome) -> dict[str, float]:
        return {
            f"accuracy_{name}": task_accuracy(outcome.logits("unlearned", name), outcome.targets(name))
            for name in (REPORTED if self.partitions is None else self.partitions)
            if name in outcome.partitions and outcome.partitions.size(name) > 0
        }
