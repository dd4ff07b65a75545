"""A contributor's module, as a user would write it: components named in a config under "imports"."""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import torch
from torch import nn

from erasure.core.params import Fraction
from erasure.evaluators.base import Evaluator, Outcome
from erasure.unlearners.base import Unlearner, UnlearningContext


class ShrinkWeights(Unlearner):
    """Multiplies every weight by ``factor``: a trivially checkable contributed unlearner."""

    contract_config = {"parameters": {"factor": 0.5}}

    def __init__(self, factor: Fraction = 0.5):
        self.factor = factor

    def unlearn(self, model: nn.Module, ctx: UnlearningContext) -> nn.Module:
        with torch.no_grad():
            for p in model.parameters():
                p.mul_(self.factor)
        return model


class ExplodingUnlearner(Unlearner, register=False):
    """Always fails: for error-row tests (named by dotted path, not registered)."""

    def __init__(self) -> None:
        pass

    def unlearn(self, model: nn.Module, ctx: UnlearningContext) -> nn.Module:
        raise RuntimeError("boom")


class KillOnce(Unlearner, register=False):
    """Kills its own process (SIGKILL) the first time, when ``marker`` does not exist yet."""

    def __init__(self, marker: str):
        self.marker = marker

    def unlearn(self, model: nn.Module, ctx: UnlearningContext) -> nn.Module:
        if not Path(self.marker).exists():
            Path(self.marker).write_text("killed")
            os.kill(os.getpid(), signal.SIGKILL)
        return model


class WaitForFile(Unlearner, register=False):
    """Writes ``started`` and waits (up to ``timeout`` seconds) until ``release`` exists: holds a run open."""

    def __init__(self, started: str, release: str, timeout: float = 60.0):
        self.started = started
        self.release = release
        self.timeout = timeout

    def unlearn(self, model: nn.Module, ctx: UnlearningContext) -> nn.Module:
        Path(self.started).write_text("waiting")
        deadline = time.monotonic() + self.timeout
        while not Path(self.release).exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        return model


class ParameterCount(Evaluator, register=False):
    """Number of parameters of the unlearned model."""

    def __init__(self) -> None:
        pass

    def evaluate(self, outcome: Outcome) -> dict[str, float]:
        return {"parameter_count": float(sum(p.numel() for p in outcome.model.parameters()))}
