"""Backdoor success: does the unlearned model still obey the trigger of a ``BackdoorForget``
(kairanzhao/RUM main_backdoor.py's ``attack_acc``)?"""
from __future__ import annotations

import torch

from erasure.data.backdoor import BackdoorForget
from erasure.evaluators.base import Evaluator, Outcome, Undefined
from erasure.models.training import evaluating
from erasure.results.targets import as_gold


def attack_success(model: torch.nn.Module, batches, spec: BackdoorForget) -> float:
    """Share of the inputs of ``batches`` ((x, y) pairs) that ``model`` assigns to ``spec.target``
    once they carry the trigger (every input, as the reference's poisoned test set)."""
    hits, total = 0, 0
    with evaluating(model):
        for x, _ in batches:
            hits += int((model(spec.trigger(x)).argmax(1) == spec.target).sum())
            total += len(x)
    return hits / total if total else float("nan")


class BackdoorSuccess(Evaluator):
    """``attack_success``: the share of triggered test inputs classified as the backdoor's target
    (data.forget must be a ``BackdoorForget``). Target: gold's (a model that never saw the trigger
    still puts some inputs in the target class, the target class's own among them)."""

    metric_targets = {"attack_success": as_gold()}
    contract_config = {"forget": {"class": "BackdoorForget", "parameters": {"fraction": 0.1, "trigger_size": 2}}}

    def __init__(self) -> None:
        pass

    def evaluate(self, outcome: Outcome) -> dict[str, float]:
        spec = outcome.partitions.forget_spec
        if not isinstance(spec, BackdoorForget):
            return {"attack_success": Undefined(f"data.forget is {type(spec).__name__}, not BackdoorForget")}
        parts = outcome.partitions
        return {"attack_success": attack_success(outcome.model, parts.batches("test", 1024), spec)}
