"""Scores: single-number summaries built from other metrics of the same (seed, unlearner)."""
from __future__ import annotations

from typing import Literal

import numpy as np

from erasure.core.errors import ConfigError
from erasure.core.params import Fraction, NonNegativeFloat, PositiveFloat
from erasure.evaluators.accuracy import top1_accuracy
from erasure.evaluators.base import Evaluator, Outcome
from erasure.evaluators.mia import mia_efficacy
from erasure.results.targets import as_gold, ideal

ScoreName = Literal["aus", "nomus", "ain", "avg_gap"]
# SalUn's Avg. Gap: unlearning accuracy (1 − forget accuracy, so the same gap), MIA-Efficacy, RA, TA
GAP_METRICS = ("accuracy_forget", "mia_efficacy", "accuracy_retain", "accuracy_test")
NEEDS: dict[str, tuple[str, ...]] = {
    "aus": ("accuracy_test", "accuracy_forget"),
    "nomus": ("accuracy_test", "umia_accuracy"),
    "ain": ("relearn_steps", "relearn_steps_gold"),
    "avg_gap": GAP_METRICS,
}


def aus(test_acc_original: float, test_acc: float, forget_acc: float) -> float:
    """Adaptive Unlearning Score (Cotogni et al. 2023, DUCK): (1 − (TA_orig − TA)) / (1 + |TA − FA|)."""
    return (1 - (test_acc_original - test_acc)) / (1 + abs(test_acc - forget_acc))


def nomus(test_acc: float, mia_accuracy: float, weight: float = 0.5) -> float:
    """NoMUS (Choi & Na 2023): l·TA + (1 − l)·(1 − 2|MIA − 0.5|)."""
    return weight * test_acc + (1 - weight) * (1 - 2 * abs(mia_accuracy - 0.5))


def ain(relearn_steps: float, relearn_steps_gold: float, smoothing: float = 0.01) -> float:
    """Anamnesis Index (Chundawat et al., "Zero-shot machine unlearning", IEEE TIFS 2023):
    (relearn time of the unlearned model + s) / (the gold's + s), s = ``smoothing`` as in
    aiim-research/ERASURE (``erasure/evaluations/measures.py``, AIN: 0.01). 1 is ideal; below 1
    means residual knowledge. When gold needs 0 steps it is 1 + r/s: 1 if the unlearned model
    needs none either, large otherwise; with s = 0 that case is NaN."""
    if relearn_steps_gold + smoothing == 0:
        return float("nan")
    return (relearn_steps + smoothing) / (relearn_steps_gold + smoothing)


def avg_gap(values: dict[str, float], gold_values: dict[str, float]) -> float:
    """Mean absolute gap to the gold model over the shared metrics (Avg. Gap, Fan et al., "SalUn",
    ICLR 2024: over UA = 1 − forget accuracy, MIA-Efficacy, RA and TA)."""
    return float(np.mean([abs(values[k] - gold_values[k]) for k in values]))


class _Requires:
    """``Scores.requires``: on the class, everything any score reads; on an instance, what its
    chosen scores read (so the runner checks exactly those)."""

    def __get__(self, obj: "Scores | None", owner: type) -> tuple[str, ...]:
        chosen = list(NEEDS) if obj is None else obj.chosen
        return tuple(dict.fromkeys(m for s in chosen for m in NEEDS[s]))


class Scores(Evaluator):
    """``aus``, ``nomus``, ``ain`` and ``avg_gap`` (the ones listed in ``scores``).

    - AUS needs Accuracy (TA, FA; TA_orig is read from the original model).
    - NoMUS needs Accuracy and UMIA; ``nomus_weight`` is l (0.5 in the paper).
    - AIN needs RelearnTime (which reports the gold model's relearn steps too; its ``alpha`` 0.05
      is the published one); ``ain_smoothing`` is added to both relearn times (ERASURE's 0.01).
    - Avg-Gap needs Accuracy and MIAEfficacy (SalUn's four metrics); gold's accuracies are read
      from the gold model and gold's MIA-Efficacy is recomputed here with the SVC's ``C`` =
      ``mia_efficacy_C`` (keep it equal to the MIAEfficacy evaluator's) and the same D_r subset.
    ``requires`` lists exactly what the chosen scores read, so the runner runs those evaluators
    first and reports the missing ones by name.
    """

    uses_gold = True
    metric_targets = {"aus": as_gold(0, 2), "nomus": as_gold(), "ain": ideal(1, 0, None), "avg_gap": ideal(0)}

    def __init__(self, scores: list[ScoreName] | None = None, nomus_weight: Fraction = 0.5,
                 ain_smoothing: NonNegativeFloat = 0.01, mia_efficacy_C: PositiveFloat = 3.0):
        self.scores = scores
        self.nomus_weight = nomus_weight
        self.ain_smoothing = ain_smoothing
        self.mia_efficacy_C = mia_efficacy_C

    def check(self) -> None:
        if self.scores is not None and not self.scores:
            raise ConfigError("list at least one score, or leave 'scores' out for all four", "scores")

    @property
    def chosen(self) -> list[str]:
        return list(self.scores) if self.scores is not None else list(NEEDS)

    requires = _Requires()  # type: ignore[assignment]

    def _gold_values(self, outcome: Outcome) -> dict[str, float]:
        key = ("scores_gold", self.mia_efficacy_C)
        if key not in outcome.shared_memo:
            parts = outcome.reference_partitions
            gold = {f"accuracy_{p}": top1_accuracy(outcome.logits("gold", p), parts.targets(p))
                    for p in ("forget", "retain", "test")}
            gold["mia_efficacy"] = mia_efficacy(outcome, "gold", self.mia_efficacy_C)
            outcome.shared_memo[key] = gold
        return outcome.shared_memo[key]

    def evaluate(self, outcome: Outcome) -> dict[str, float]:
        m = outcome.metrics
        out: dict[str, float] = {}
        for name in self.chosen:
            if name == "aus":
                ta_orig = top1_accuracy(outcome.logits("original", "test"), outcome.reference_partitions.targets("test"))
                out["aus"] = aus(ta_orig, m["accuracy_test"], m["accuracy_forget"])
            elif name == "nomus":
                out["nomus"] = nomus(m["accuracy_test"], m["umia_accuracy"], self.nomus_weight)
            elif name == "ain":
                out["ain"] = ain(m["relearn_steps"], m["relearn_steps_gold"], self.ain_smoothing)
            else:
                out["avg_gap"] = avg_gap({k: m[k] for k in GAP_METRICS}, self._gold_values(outcome))
        return out
