"""ToW and ToW-MIA: tug-of-war between forgetting and utility (Zhao et al., "What makes unlearning
hard and what to do about it", NeurIPS 2024; kairanzhao/RUM surgical_plugins/analysis.py and
analysis_mia.py)."""
from __future__ import annotations

from typing import Mapping

import numpy as np

from erasure.evaluators.accuracy import top1_accuracy
from erasure.evaluators.base import Evaluator, Outcome
from erasure.evaluators.mia import mia_efficacy
from erasure.results.targets import ideal

#: The three accuracies of ToW; ToW-MIA swaps forget accuracy for the MIA efficacy.
TOW_TERMS = ("forget", "retain", "test")


def tow(unlearned: Mapping[str, float], gold: Mapping[str, float], terms: tuple[str, ...] = TOW_TERMS) -> float:
    """Π over ``terms`` of (1 − |unlearned[t] − gold[t]|), values in [0, 1] (the reference's
    accuracies are percentages divided by 100). 1 means the unlearned model matches retraining."""
    return float(np.prod([1.0 - abs(unlearned[t] - gold[t]) for t in terms]))


class ToW(Evaluator):
    """``tow``: ToW over forget, retain and test accuracy against gold (the retrained model of the
    seed); ``tow_mia``: the same with the forget-accuracy term replaced by the MIA efficacy term
    (the confidence SVC of :class:`~erasure.evaluators.mia.MIAEfficacy`, SalUn's ``SVC_MIA``, as
    analysis_mia.py reads ``SVC_MIA_forget_efficacy["confidence"]``). Target 1 for both."""

    uses_gold = True
    metric_targets = {"tow": ideal(1), "tow_mia": ideal(1)}

    def __init__(self) -> None:
        pass

    def evaluate(self, outcome: Outcome) -> dict[str, float]:
        values = {}
        for which in ("unlearned", "gold"):
            parts = outcome.partitions_for(which)
            values[which] = {p: top1_accuracy(outcome.logits(which, p), parts.targets(p)) for p in TOW_TERMS}
            values[which]["mia"] = mia_efficacy(outcome, which)
        return {"tow": tow(values["unlearned"], values["gold"]),
                "tow_mia": tow(values["unlearned"], values["gold"], ("mia", "retain", "test"))}
