"""Amnesiac unlearning (Graves et al., "Amnesiac Machine Learning", AAAI 2021; reference code
lmgraves/AmnesiacML, "Amnesiac Unlearning - MNIST.ipynb"): the original logged the parameter
update of every batch that held a deletion candidate
(:class:`~erasure.models.schemes.update_log.UpdateLogTraining`); unlearning subtracts the updates
of the batches that held the deleted samples, then optionally repairs with a few epochs on the
retain set. (The relabelling variant of the same paper is ``RandomLabels``.)
"""
from __future__ import annotations

import dataclasses
from typing import Any, Literal

from torch import nn

from erasure.core.params import IntRange, NonNegativeInt, PositiveFloat
from erasure.models.schemes.update_log import LoggedModel, UpdateLogTraining, undo
from erasure.unlearners.base import Unlearner, UnlearningContext


class Amnesiac(Unlearner):
    """Subtract the logged updates of the batches that held the request's samples (the reference's
    ``const`` 1), then ``repair_epochs`` epochs of the original recipe on retain (0, the reference
    notebook's, by default). ``log`` and ``max_log_mb`` are the :class:`UpdateLogTraining`
    scheme's. Logs ``undone_updates``; its ``retrain_fraction`` is repair epochs / recipe epochs."""

    #: the repair is the only post-hoc setting (``log`` and ``max_log_mb`` shape the original's training)
    search_space = {"repair_epochs": IntRange(0, 5)}

    def __init__(self, repair_epochs: NonNegativeInt = 0, log: Literal["candidates", "all"] = "candidates",
                 max_log_mb: PositiveFloat = 1024.0):
        self.repair_epochs = repair_epochs
        self.log = log
        self.max_log_mb = max_log_mb

    def training_scheme(self) -> dict[str, Any]:
        return {"class": "UpdateLogTraining", "parameters": {"log": self.log, "max_log_mb": self.max_log_mb}}

    def unlearn(self, model: nn.Module, ctx: UnlearningContext) -> nn.Module:
        if not isinstance(model, LoggedModel):
            raise TypeError(f"Amnesiac needs an original trained under {UpdateLogTraining.__name__}, "
                            f"got {type(model).__name__}")
        hit = undo(model, ctx.partitions["forget"])
        if self.repair_epochs:
            ctx.train(model.model, "retain", dataclasses.replace(ctx.recipe, epochs=self.repair_epochs))
        ctx.extras["retrain_fraction"] = self.repair_epochs / ctx.recipe.epochs
        ctx.log(None, {"undone_updates": float(hit.sum())})
        return model
