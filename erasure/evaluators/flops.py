"""Flops: the floating-point operations of the unlearn call, counted by torch
(ERASURE's ``TorchFlops``, aiim-research/ERASURE erasure/evaluations/running.py)."""
from __future__ import annotations

from typing import Any, Callable

from erasure.evaluators.base import TASKS, Evaluator, Outcome, Undefined
from erasure.results.targets import informational


def count_flops(fn: Callable[[], Any]) -> tuple[int, Any]:
    """(FLOPs, result) of ``fn()``, counted by ``torch.utils.flop_counter.FlopCounterMode``: matrix
    products, convolutions and attention, forward and backward (a multiply-add is 2 FLOPs);
    element-wise operations, such as optimizer steps and activations, count 0."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        result = fn()
    return counter.get_total_flops(), result


def gold_training_flops(outcome: Outcome, ctx: Any) -> int:
    """FLOPs of training a fresh model on D_r with the original's recipe (what GoldModel costs),
    counted once per seed."""
    key = ("flops", "gold training")
    if key not in outcome.shared_memo:
        outcome.shared_memo[key] = count_flops(lambda: ctx.train(ctx.new_model(), "retain"))[0]
    return outcome.shared_memo[key]


class Flops(Evaluator):
    """``flops``: floating-point operations of ``unlearn``, counted by torch's ``FlopCounterMode``
    while the call is repeated (same original, same seed) after the job, beside RunTime's seconds.

    A method that reuses the seed's gold model (GoldModel) is charged gold's training, as RunTime
    charges its seconds. With ``vs_gold``, ``flops_vs_gold`` = gold's training FLOPs / ``flops``
    (like ``speedup_vs_gold``; costs one training per seed). ERASURE's TorchFlops sums the FLOPs
    that ``torch.profiler`` attaches to its events: the same on an MLP, but without convolution
    backward (benchmarks/flops_vs_profiler.py).
    """

    tasks = TASKS

    @property
    def metric_targets(self) -> dict:  # type: ignore[override]
        return {"flops": informational("lower"), **({"flops_vs_gold": informational("higher")} if self.vs_gold else {})}

    def __init__(self, vs_gold: bool = False):
        self.vs_gold = vs_gold

    def evaluate(self, outcome: Outcome) -> dict[str, float]:
        if outcome.rerun_unlearn is None:
            raise RuntimeError("Flops needs the runner's rerun_unlearn hook")
        flops, (_, ctx) = count_flops(outcome.rerun_unlearn)
        if ctx.timing_override is not None:  # the gold model was reused: charge its training
            flops = gold_training_flops(outcome, ctx)
        out = {"flops": float(flops)}
        if self.vs_gold:
            gold = gold_training_flops(outcome, ctx)
            out["flops_vs_gold"] = gold / flops if flops else Undefined("the unlearn call did no counted operation")
        return out
