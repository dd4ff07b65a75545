"""MultiLabelAccuracy: Hamming accuracy and F1 (micro, macro, per label) on multi-label data."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from erasure.data.dataset import MULTI_LABEL
from erasure.evaluators.accuracy import REPORTED, Accuracy
from erasure.evaluators.base import Evaluator, Outcome, Undefined
from erasure.results.targets import informational

#: forget-side partitions are judged against gold, retain-side ones against 1, as by Accuracy
PARTITION_TARGETS = {p: Accuracy.metric_targets[f"accuracy_{p}"] for p in REPORTED}


@dataclass
class LabelScores:
    """Scores of predicted labels (logit > 0) against 0/1 targets; F1 is NaN where undefined."""

    hamming_accuracy: float  # share of (sample, label) pairs predicted right
    f1_micro: float  # 2·TP / (2·TP + FP + FN) over all labels pooled
    f1_macro: float  # mean of the per-label F1 over the labels where it is defined
    label_accuracy: list[float]
    label_f1: list[float]  # NaN for a label that neither occurs nor is predicted


def label_scores(logits: Tensor, targets: Tensor) -> LabelScores:
    """Hamming accuracy and F1 of ``logits`` ``(N, L)`` against 0/1 ``targets`` ``(N, L)``, N > 0.

    F1 is 2·TP / (2·TP + FP + FN), so scikit-learn's ``f1_score`` with ``zero_division=nan``: a
    label with no positive in the targets nor in the predictions has no F1 and is left out of
    the macro mean.
    """
    predicted, truth = logits > 0, targets.bool()
    tp = (predicted & truth).sum(0).double()
    errors = (predicted != truth).sum(0).double()  # FP + FN
    per_label = torch.where(2 * tp + errors > 0, 2 * tp / (2 * tp + errors), torch.nan)
    pooled = 2 * tp.sum() + errors.sum()
    label_accuracy = (predicted == truth).double().mean(0)
    return LabelScores(
        hamming_accuracy=float(label_accuracy.mean()),
        f1_micro=float(2 * tp.sum() / pooled) if pooled > 0 else float("nan"),
        f1_macro=float(per_label.nanmean()),
        label_accuracy=label_accuracy.tolist(),
        label_f1=per_label.tolist(),
    )


def _defined(value: float, reason: str) -> float:
    return Undefined(reason) if value != value else value


class MultiLabelAccuracy(Evaluator):
    """On multi-label data, per partition p (forget, retain, test, forget_test, retain_test):
    ``hamming_accuracy_<p>`` (share of labels predicted right), ``f1_micro_<p>`` and
    ``f1_macro_<p>`` (see :func:`label_scores`); with ``per_label``, ``label_accuracy_<p>/<j>`` and
    ``label_f1_<p>/<j>`` for every label j (informational: outside the gold gap). A label is
    predicted where its logit is positive.
    Subset accuracy (every label right) is :class:`Accuracy`'s ``accuracy_<p>``.
    """

    tasks: ClassVar[tuple[str, ...]] = (MULTI_LABEL,)
    contract_config = {"parameters": {"per_label": True}}
    metric_targets = {
        **{f"{metric}_{p}": target for p, target in PARTITION_TARGETS.items()
           for metric in ("hamming_accuracy", "f1_micro", "f1_macro")},
        # per label: diagnostics, kept out of the gold gap (L of them would outweigh the rest)
        **{f"{metric}_{p}/*": informational() for p in REPORTED for metric in ("label_accuracy", "label_f1")},
    }

    def __init__(self, per_label: bool = False):
        self.per_label = per_label

    def evaluate(self, outcome: Outcome) -> dict[str, float]:
        out: dict[str, float] = {}
        for p in REPORTED:
            if p not in outcome.partitions or outcome.partitions.size(p) == 0:
                continue
            scores = label_scores(outcome.logits("unlearned", p), outcome.targets(p))
            out[f"hamming_accuracy_{p}"] = scores.hamming_accuracy
            out[f"f1_micro_{p}"] = _defined(scores.f1_micro, f"no label occurs or is predicted in {p}")
            out[f"f1_macro_{p}"] = _defined(scores.f1_macro, f"no label occurs or is predicted in {p}")
            if self.per_label:
                for j, (accuracy, f1) in enumerate(zip(scores.label_accuracy, scores.label_f1)):
                    out[f"label_accuracy_{p}/{j}"] = accuracy
                    out[f"label_f1_{p}/{j}"] = _defined(f1, f"label {j} neither occurs nor is predicted in {p}")
        return out
