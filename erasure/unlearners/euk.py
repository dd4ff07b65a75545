"""EU-k: exact unlearning of the last k layers (re-initialise them, then train them on D_r)."""
from __future__ import annotations

import torch
from torch import nn

from erasure.core.params import OptimizerSpec, PositiveFloat, PositiveInt
from erasure.unlearners._common import finetune_layers, last_layers
from erasure.unlearners.base import SGD_MOMENTUM, Unlearner, UnlearningContext, build_optimizer, check_optimizer_spec


def reinitialise_last_layers(model: nn.Module, ctx: UnlearningContext, k: int) -> list[str]:
    """Give the last ``k`` layers (forward order) the weights of a fresh initialisation; returns their names.

    The fresh weights come from ``ctx.new_model()``, i.e. the architecture's own initialisation.
    """
    chosen = last_layers(model, ctx, k)
    fresh = dict(ctx.new_model().named_modules())
    with torch.no_grad():
        for name, module in chosen:
            module.load_state_dict(fresh[name].state_dict())
    return [name for name, _ in chosen]


class EUk(Unlearner):
    """Re-initialise the last ``k`` parametrised layers *in forward order* and train only those on D_r,
    the rest frozen (Goel et al., "Towards Adversarial Evaluations for Inexact Machine Unlearning", 2022).

    Defaults: k 1 (the paper sweeps k 1..3), 5 epochs, SGD (momentum 0.9) at lr 0.02;
    ``batch_size`` None uses the original recipe's.
    """

    def __init__(self, k: PositiveInt = 1, epochs: PositiveInt = 5, lr: PositiveFloat = 0.02,
                 batch_size: PositiveInt | None = None, optimizer: OptimizerSpec | None = None):
        self.k = k
        self.epochs = epochs
        self.lr = lr
        self.batch_size = batch_size
        self.optimizer = optimizer

    def check(self) -> None:
        check_optimizer_spec(self.optimizer)

    def unlearn(self, model: nn.Module, ctx: UnlearningContext) -> nn.Module:
        names = reinitialise_last_layers(model, ctx, self.k)
        modules = dict(model.named_modules())
        return finetune_layers(model, ctx, [modules[n] for n in names], self.epochs,
                               lambda params: build_optimizer(self.optimizer, SGD_MOMENTUM, params, self.lr),
                               self.batch_size or ctx.recipe.batch_size)
