"""SISA (Bourtoule et al., "Machine Unlearning", IEEE S&P 2021; reference code
cleverhans-lab/machine-unlearning): exact unlearning by retraining only the shards that held the
deleted samples, each from its last slice checkpoint before them. The original is a SISA ensemble
(:class:`~erasure.models.schemes.sisa.SISATraining`, trained by the runner under this method's
scheme); the result equals a SISA ensemble trained from scratch without the deleted samples.
"""
from __future__ import annotations

from typing import Any

from torch import nn

from erasure.models.schemes.sisa import SISAParameters, SISATraining, ShardedEnsemble, delete, full_cost
from erasure.unlearners.base import Unlearner, UnlearningContext


class SISA(SISAParameters, Unlearner):
    """Retrain the affected shards from their last clean slice (see the module docstring). The
    parameters are those of the :class:`SISATraining` scheme it needs (the reference's defaults:
    one slice, argmax outputs, uniform vote). Logs ``retrained_shards``; ``retrain_fraction``
    (the ``RetrainFraction`` evaluator) is the sample-gradient count spent over that of training
    the whole ensemble from scratch on what is left."""

    def training_scheme(self) -> dict[str, Any]:
        return {"class": "SISATraining", "parameters": self.get_params()}

    def unlearn(self, model: nn.Module, ctx: UnlearningContext) -> nn.Module:
        if not isinstance(model, ShardedEnsemble):
            raise TypeError(f"SISA needs an original trained under {SISATraining.__name__}, got {type(model).__name__}")
        retrained, spent = delete(model, ctx.partitions["forget"], ctx.partitions, ctx.recipe)
        ctx.extras["retrain_fraction"] = spent / max(1, full_cost(model, ctx.recipe.epochs))
        ctx.log(None, {"retrained_shards": float(len(retrained))})
        return model
