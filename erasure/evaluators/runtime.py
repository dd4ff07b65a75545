"""Cost of the unlearn call alone."""
from __future__ import annotations

import math

from erasure.evaluators.base import Evaluator, Outcome
from erasure.results.targets import informational


class RunTime(Evaluator):
    """Wall and CPU seconds, peak resident memory and (on CUDA) peak device memory of ``unlearn``,
    and ``speedup_vs_gold`` = gold's training seconds / this method's seconds."""

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
        metrics["speedup_vs_gold"] = outcome.gold_timing.wall_seconds / max(t.wall_seconds, 1e-9)
        return metrics
