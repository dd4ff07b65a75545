"""Cost of the unlearn call alone."""
from __future__ import annotations

import logging
import math

from erasure.core.timing import Timing
from erasure.evaluators.base import TASKS, Evaluator, Outcome, Undefined
from erasure.results.targets import informational

log = logging.getLogger("erasure")
_REPORTED: set[str] = set()  # differences already logged by this process


def speedup(method: Timing, gold: Timing) -> tuple[float, str]:
    """(gold's wall seconds / the method's, "") when both were measured comparably (same device
    type, torch thread count and host); (NaN, the reason) otherwise."""
    problem = method.mismatch(gold)
    if problem:
        return float("nan"), problem
    return gold.wall_seconds / max(method.wall_seconds, 1e-9), ""


class RunTime(Evaluator):
    """Wall and CPU seconds of ``unlearn``; ``peak_rss_mb``, its peak resident memory above the
    level at the call's start, and (on CUDA) ``peak_cuda_mb``, its peak allocated device memory
    above the start; and ``speedup_vs_gold`` = gold's training seconds / this method's seconds.

    The speed-up is undefined (NaN, its row saying why; one warning per difference and process)
    unless both times were measured on the same device type (and GPU model), with the same number
    of torch threads, on the same host: gold's time may come from the model cache, written by
    another run (``Timing.origin`` says so).
    """

    uses_gold = True
    tasks = TASKS
    metric_targets = {"wall_seconds": informational("lower"), "cpu_seconds": informational("lower"),
                      "peak_rss_mb": informational("lower"), "peak_cuda_mb": informational("lower"),
                      "speedup_vs_gold": informational("higher")}

    def __init__(self) -> None:
        pass

    def evaluate(self, outcome: Outcome) -> dict[str, float]:
        t = outcome.timing
        metrics = {"wall_seconds": t.wall_seconds, "cpu_seconds": t.cpu_seconds, "peak_rss_mb": t.peak_rss_mb}
        if not math.isnan(t.peak_cuda_mb):
            metrics["peak_cuda_mb"] = t.peak_cuda_mb
        metrics["speedup_vs_gold"], problem = speedup(t, outcome.gold_timing)
        if problem:
            origin = outcome.gold_timing.origin or "unknown"
            reason = f"gold's time ({origin}) and this one were measured differently (method vs gold): {problem}"
            metrics["speedup_vs_gold"] = Undefined(reason)
            if reason not in _REPORTED:
                _REPORTED.add(reason)
                log.warning("speedup_vs_gold left NaN from %s (seed %d) on: %s", outcome.unlearner, outcome.seed, reason)
        return metrics
