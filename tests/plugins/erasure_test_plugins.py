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


class KillAlways(Unlearner, register=False):
    """Kills its own process (SIGKILL) every time: a worker that always dies on this job."""

    def __init__(self) -> None:
        pass

    def unlearn(self, model: nn.Module, ctx: UnlearningContext) -> nn.Module:
        os.kill(os.getpid(), signal.SIGKILL)
        return model


class Raises(Unlearner, register=False):
    """Raises ``SystemExit`` or ``KeyboardInterrupt`` from inside ``unlearn``."""

    def __init__(self, kind: str = "SystemExit"):
        self.kind = kind

    def unlearn(self, model: nn.Module, ctx: UnlearningContext) -> nn.Module:
        raise SystemExit(3) if self.kind == "SystemExit" else KeyboardInterrupt()


class ChangesSharedData(Unlearner, register=False):
    """Writes into the data it was given: ``what`` is "targets" (its own copy) or "inputs" (shared);
    ``how``: "in_place" (a torch in-place op), "data" (through ``.data``, which autograd's version
    counter does not see) or "numpy" (through the array that ``.numpy()`` shares)."""

    def __init__(self, what: str = "inputs", how: str = "in_place"):
        self.what = what
        self.how = how

    def unlearn(self, model: nn.Module, ctx: UnlearningContext) -> nn.Module:
        tensor = getattr(ctx.partitions.dataset, self.what)
        if self.how == "in_place":
            tensor.zero_()
        elif self.how == "data":
            tensor.data.mul_(0.5)
        else:
            array = tensor.numpy()
            array -= array.mean(0)
        return model


class NaNWeights(Unlearner, register=False):
    """Leaves a NaN in the first parameter (a diverged method)."""

    def __init__(self) -> None:
        pass

    def unlearn(self, model: nn.Module, ctx: UnlearningContext) -> nn.Module:
        with torch.no_grad():
            next(model.parameters()).view(-1)[0] = float("nan")
        return model


class ProcessFacts(Evaluator, register=False):
    """torch's thread count inside the job, and a per-example artifact."""

    def __init__(self) -> None:
        pass

    def evaluate(self, outcome: Outcome) -> dict[str, float]:
        outcome.artifacts["forget_targets"] = outcome.targets("forget").cpu().numpy()
        return {"torch_threads": float(torch.get_num_threads())}


class ReadsGold(Evaluator, register=False):
    """Reads the gold model without declaring ``uses_gold`` (gold is then trained on first use)."""

    def __init__(self) -> None:
        pass

    def evaluate(self, outcome: Outcome) -> dict[str, float]:
        return {"gold_parameters": float(sum(p.numel() for p in outcome.gold.parameters()))}


class UndefinedValues(Evaluator, register=False):
    """One NaN with a reason and one without."""

    def __init__(self) -> None:
        pass

    def evaluate(self, outcome: Outcome) -> dict[str, float]:
        from erasure.evaluators.base import Undefined

        return {"explained": Undefined("no samples to score"), "unexplained": float("nan"), "fine": 1.0}


class WeightNorm(Evaluator, register=False):
    """Sum of squared parameters of the unlearned model."""

    def __init__(self) -> None:
        pass

    def evaluate(self, outcome: Outcome) -> dict[str, float]:
        return {"weight_norm": float(sum(p.detach().pow(2).sum() for p in outcome.model.parameters()))}


class ChangesTheRecipe(Unlearner, register=False):
    """Edits the training recipe it was handed (its own copy)."""

    def __init__(self) -> None:
        pass

    def unlearn(self, model: nn.Module, ctx: UnlearningContext) -> nn.Module:
        ctx.recipe.epochs = 999
        ctx.recipe.optimizer["parameters"]["lr"] = 123.0
        return model


class ChangesGold(Unlearner, register=False):
    """Writes into the gold model (shared by the seed's jobs)."""

    def __init__(self) -> None:
        pass

    def unlearn(self, model: nn.Module, ctx: UnlearningContext) -> nn.Module:
        with torch.no_grad():
            next(ctx.gold_provider()[0].parameters()).add_(1.0)
        return model


class ChangesItsParameters(Unlearner, register=False):
    """Changes its own parameter while unlearning (a buggy component)."""

    def __init__(self, steps: int = 1):
        self.steps = steps

    def unlearn(self, model: nn.Module, ctx: UnlearningContext) -> nn.Module:
        self.steps += 1
        return model


class ChangesTheOriginal(Evaluator, register=False):
    """Writes into the original model it was handed, when judging the unlearner labelled ``label``."""

    def __init__(self, label: str = "A") -> None:
        self.label = label

    def evaluate(self, outcome: Outcome) -> dict[str, float]:
        if outcome.unlearner == self.label:
            with torch.no_grad():
                next(outcome.original.parameters()).mul_(0.0)
        return {"x": 1.0}


class RecipeSeen(Evaluator, register=False):
    """The epochs and learning rate of the recipe a job's context holds."""

    def __init__(self) -> None:
        pass

    def evaluate(self, outcome: Outcome) -> dict[str, float]:
        recipe = outcome.context.recipe
        return {"recipe_epochs": float(recipe.epochs), "recipe_lr": float(recipe.optimizer["parameters"]["lr"])}
