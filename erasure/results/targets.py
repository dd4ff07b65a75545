"""What each metric should be: its target, direction and range, and the gold gap built on them.

Every evaluator declares, in ``metric_targets`` on its class, one :class:`Target` per metric it
produces (a key may be a pattern such as ``"accuracy_*"``, matched with :mod:`fnmatch`):

* ``ideal(v)``: a fixed value is best (retain accuracy 1, a divergence to gold 0);
* ``as_gold()``: the best value is the gold (retrained) model's on the same seed (forget
  accuracy, membership attacks, AUS, ...). These metrics make up the gold gap;
* ``at_least_gold()``: higher is better and the gold model's value is a (noisy) ceiling: a
  value above gold's costs nothing in the gold gap (ForgettingQuality's score);
* ``informational()``: no target (timings, counts); an optional direction says which way is
  cheaper (``wall_seconds`` lower, ``speedup_vs_gold`` higher).

A run writes the targets it used to ``targets.json`` beside ``results.csv`` so that summaries
and reports of a results directory need none of the evaluators' code. Metrics without a
declaration are shown but never ranked.
"""
from __future__ import annotations

import fnmatch
import json
import math
from collections import defaultdict
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Literal, Mapping

from erasure.results.files import atomic_write_text

Kind = Literal["ideal", "gold", "none"]
Direction = Literal["higher", "lower", "closer"]
TARGETS_FILE = "targets.json"


@dataclass(frozen=True)
class Target:
    """The goal of one metric: ``kind`` (ideal value, as gold, or none), the ideal ``value`` for
    kind "ideal", the metric's range [``low``, ``high``] (``None``: open) and, for kind "none",
    which ``direction`` is cheaper or better, if any. For kind "gold", a ``direction`` makes the
    target one-sided: "higher" means gold's value is a ceiling (at or above it is as good as gold).
    ``family`` names the evaluator that declared it (set by :func:`targets_of`); the gold gap
    weighs every family alike. It takes no part in comparisons."""

    kind: Kind
    value: float | None = None
    low: float | None = None
    high: float | None = None
    direction: Direction | None = None
    family: str | None = field(default=None, compare=False)

    @property
    def better(self) -> Direction | None:
        """Which way is better: "higher" or "lower" for an ideal at an end of the range (or a
        directed informational metric), "closer" to the ideal or to gold otherwise."""
        if self.kind == "ideal":
            if self.value == self.high:
                return "higher"
            if self.value == self.low:
                return "lower"
            return "closer"
        if self.kind == "gold":
            return self.direction or "closer"
        return self.direction

    @property
    def width(self) -> float:
        """high − low, or NaN for an open range."""
        if self.low is None or self.high is None:
            return math.nan
        return self.high - self.low

    def describe(self) -> str:
        """``as gold``, ``ideal 1``, ``lower is better`` or ``informational``."""
        if self.kind == "gold":
            return "as gold" if self.direction is None else f"{self.direction}, gold as ceiling"
        if self.kind == "ideal":
            return f"ideal {self.value:g}"
        return f"{self.direction} is better" if self.direction else "informational"

    def clip(self, value: float) -> float:
        """``value`` clipped to the range (NaN stays NaN)."""
        if math.isnan(value):
            return value
        if self.low is not None:
            value = max(value, self.low)
        if self.high is not None:
            value = min(value, self.high)
        return value

    def distance(self, value: float, gold: float | None = None) -> float:
        """How far ``value`` is from the target (the ideal, or ``gold`` for kind "gold"); for kind
        "none", a value to minimise (−value where higher is better), or NaN without direction."""
        if self.kind == "ideal":
            return abs(value - self.value)
        if self.kind == "gold":
            if gold is None:
                return math.nan
            return abs(value - gold) if self.direction is None else self.shortfall(value, gold)
        if self.direction is None:
            return math.nan
        return value if self.direction == "lower" else -value

    def shortfall(self, value: float, gold: float) -> float:
        """How far ``value`` falls short of ``gold`` on the worse side (0 at or beyond gold on the
        better side); |value − gold| for a two-sided target."""
        if self.direction == "higher":
            return max(gold - value, 0.0)
        if self.direction == "lower":
            return max(value - gold, 0.0)
        return abs(value - gold)


def ideal(value: float, low: float | None = 0.0, high: float | None = 1.0) -> Target:
    """A fixed ideal ``value`` in [low, high] (default range [0, 1])."""
    return Target("ideal", float(value), low, high)


def as_gold(low: float | None = 0.0, high: float | None = 1.0) -> Target:
    """The gold model's value on the same seed is the target (default range [0, 1])."""
    return Target("gold", None, low, high)


def at_least_gold(low: float | None = 0.0, high: float | None = 1.0) -> Target:
    """Higher is better and the gold model's value on the same seed is a noisy ceiling: the gold
    gap counts only how far a value falls below gold's (default range [0, 1])."""
    return Target("gold", None, low, high, "higher")


def informational(direction: Literal["higher", "lower"] | None = None, low: float | None = 0.0,
                  high: float | None = None) -> Target:
    """No target; ``direction`` says which way is cheaper or better, if any."""
    return Target("none", None, low, high, direction)


def lookup(metric: str, targets: Mapping[str, Target]) -> Target | None:
    """The target of ``metric``: an exact key first, then the first pattern that matches."""
    if metric in targets:
        return targets[metric]
    for pattern, target in targets.items():
        if any(c in pattern for c in "*?[") and fnmatch.fnmatchcase(metric, pattern):
            return target
    return None


def targets_of(evaluators: Iterable[Any]) -> dict[str, Target]:
    """The ``metric_targets`` declared by evaluator instances (or classes), later ones winning. An
    evaluator whose metric names depend on its parameters declares them on the instance (a
    property); its class then contributes nothing. Each target's ``family`` is the evaluator's
    class name (unless it declares one)."""
    out: dict[str, Target] = {}
    for evaluator in evaluators:
        declared = getattr(evaluator, "metric_targets", None)
        if isinstance(declared, Mapping):
            family = evaluator.__name__ if isinstance(evaluator, type) else type(evaluator).__name__
            out.update({k: t if t.family else replace(t, family=family) for k, t in declared.items()})
    return out


def registered_targets() -> dict[str, Target]:
    """The targets of every registered evaluator (the built-ins and any imported plugin)."""
    from erasure.core.registry import registry

    return targets_of(registry("evaluator").values())


def write_targets(targets: Mapping[str, Target], path: str | Path) -> None:
    atomic_write_text(path, json.dumps({k: asdict(t) for k, t in targets.items()}, indent=1, sort_keys=True) + "\n")


def read_targets(path: str | Path) -> dict[str, Target]:
    """Targets from a ``targets.json`` written by :func:`write_targets`."""
    data = json.loads(Path(path).read_text())
    return {k: Target(**v) for k, v in data.items()}


def normalised_gap(value: float, gold: float, target: Target) -> float:
    """|value − gold| in [0, 1] (only the shortfall for a one-sided target): divided by the
    range's width, or, for an open range, relative to |gold| and capped at 1 (0 when both are 0)."""
    gap = target.shortfall(value, gold)
    if math.isfinite(target.width) and target.width > 0:
        return min(gap / target.width, 1.0)
    if gap == 0:
        return 0.0
    return min(gap / abs(gold), 1.0) if gold != 0 else 1.0


Weights = Literal["evaluator", "metric"]
WEIGHTS = ("evaluator", "metric")


@dataclass(frozen=True)
class Ranking:
    """Which metrics make up the gold gap and how they are weighed (the config's ``ranking``).

    ``metrics``: names or :mod:`fnmatch` patterns of the "as gold" metrics to rank on (None: all
    of them); ``weights``: "evaluator" (default) averages each evaluator's terms first, then the
    evaluators, so one evaluator with many metrics (ModelDistance's twenty distances) weighs as
    much as one with a single metric; "metric" weighs every metric alike."""

    metrics: tuple[str, ...] | None = None
    weights: Weights = "evaluator"

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None) -> "Ranking":
        """The ``ranking`` object of a (resolved) config, or the default."""
        spec = (config or {}).get("ranking") or {}
        metrics = spec.get("metrics")
        return cls(tuple(metrics) if metrics is not None else None, spec.get("weights", "evaluator"))

    def ranks_on(self, metric: str, target: Target | None) -> bool:
        """Whether ``metric`` is a term of the gold gap: an "as gold" target, and named (if names are given)."""
        if target is None or target.kind != "gold":
            return False
        return self.metrics is None or any(fnmatch.fnmatchcase(metric, p) for p in self.metrics)

    def families(self, metrics: Iterable[str], targets: Mapping[str, Target]) -> dict[str, list[str]]:
        """The terms of the gold gap grouped by the family that weighs them: the declaring evaluator
        (a metric without one is its own family), or one family per metric for "metric" weights."""
        groups: dict[str, list[str]] = defaultdict(list)
        for metric in metrics:
            target = lookup(metric, targets)
            if self.ranks_on(metric, target):
                family = (target.family or metric) if self.weights == "evaluator" else metric
                groups[family].append(metric)
        return dict(groups)


DEFAULT_RANKING = Ranking()


def gold_gap(values: Mapping[str, float], gold_values: Mapping[str, float], targets: Mapping[str, Target],
             ranking: Ranking = DEFAULT_RANKING) -> float:
    """The gold gap: over the metrics of ``gold_values`` whose target is "as gold" (those that
    ``ranking`` names), :func:`normalised_gap` (|m − m_gold| / the metric's range) averaged within
    each evaluator, then over the evaluators (``ranking.weights`` "evaluator", the default), or
    over all the metrics alike ("metric"); in [0, 1], 0 for the gold model's values. NaN when a
    metric is missing from ``values`` or not finite, or when no metric has a gold target."""
    family_gaps = []
    for members in ranking.families(gold_values, targets).values():
        gaps = []
        for metric in members:
            value, gold = values.get(metric, math.nan), gold_values[metric]
            if not (math.isfinite(value) and math.isfinite(gold)):
                return math.nan
            gaps.append(normalised_gap(value, gold, lookup(metric, targets)))
        family_gaps.append(sum(gaps) / len(gaps))
    return float(sum(family_gaps) / len(family_gaps)) if family_gaps else math.nan
