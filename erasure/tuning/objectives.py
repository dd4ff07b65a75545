"""What a tuning trial scores: the gold gap, a gold-free rule, or one metric (lower is better)."""
from __future__ import annotations

import math
from typing import Any, Iterable, Mapping

from erasure.results.targets import DEFAULT_RANKING, Ranking, Target, gold_gap

ACCURACY_NEEDED = ("accuracy_forget", "accuracy_retain", "accuracy_test")


def final_metrics(rows: Iterable[dict[str, Any]]) -> dict[str, float]:
    """A job's final values (no trajectory rows; the last deletion request when there are several)."""
    rows = [r for r in rows if r.get("status") == "ok" and r.get("step") in (None, "")]
    last = max((r["request"] for r in rows if r.get("request") not in (None, "")), default=None)
    return {r["metric"]: float(r["value"]) for r in rows if r.get("request") in (None, "", last)}


def gold_free(values: Mapping[str, float], original: Mapping[str, float]) -> float:
    """A score that needs no retrained model (0 is best).

    Forgetting: with class or group forgetting the forgotten classes' held-out samples should not
    be recognised any more (``accuracy_forget_test``, 0 for a retrained model); with random
    forgetting the forget set should look like unseen data: forget accuracy at or below accuracy
    on held-out data of the same distribution (``max(0, FA − TA)``). Utility: retain accuracy
    kept (``max(0, RA_original − RA)``).
    """
    if "accuracy_forget_test" in values:
        forgetting = values["accuracy_forget_test"]
    else:
        forgetting = max(0.0, values["accuracy_forget"] - values["accuracy_test"])
    return forgetting + max(0.0, original["accuracy_retain"] - values["accuracy_retain"])


def trial_value(objective: str, values: Mapping[str, float], gold: Mapping[str, float],
                original: Mapping[str, float], targets: Mapping[str, Target],
                ranking: Ranking = DEFAULT_RANKING) -> tuple[float, str]:
    """``(value to minimise, why it is undefined)``: NaN with a reason when a metric is missing.
    The gold gap is the results page's: weighed and restricted as the config's ``ranking`` says."""
    try:
        if objective == "gold_gap":
            value = gold_gap(values, gold, targets, ranking)
            missing = [m for m in gold if m not in values]
            return value, "" if math.isfinite(value) else f"the gold gap is undefined (missing: {missing or 'a value'})"
        if objective == "gold_free":
            return gold_free(values, original), ""
        metric, _, direction = objective.rpartition(":")
        return (values[metric] if direction == "min" else -values[metric]), ""
    except KeyError as exc:
        return math.nan, f"metric {exc.args[0]!r} is missing from the trial's results"
