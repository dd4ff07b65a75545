"""Cost of the unlearn call alone."""
from __future__ import annotations

import math

from erasure.evaluators.base import Evaluator, Outcome


class RunTime(Evaluator):
    """Wall and CPU seconds, peak resident memory and (on CUDA) peak device memory of ``unlearn``,
    and ``speedup_vs_gold`` = gold's training seconds / this method's seconds."""

    def __init__(self) -> None:
        pass

    def evaluate(self, outcome: Outcome) -> dict[str, float]:
        t = outcome.timing
        metrics = {"wall_seconds": t.wall_seconds, "cpu_seconds": t.cpu_seconds, "peak_rss_mb": t.peak_rss_mb}
        if not math.isnan(t.peak_cuda_mb):
            metrics["peak_cuda_mb"] = t.peak_cuda_mb
        metrics["speedup_vs_gold"] = outcome.gold_timing.wall_seconds / max(t.wall_seconds, 1e-9)
        return metrics
