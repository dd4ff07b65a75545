"""EU-k: exact unlearning of the last k layers (re-initialise them, then train them on D_r)."""
from __future__ import annotations

import torch
from torch import nn

from erasure.unlearners._common import last_layers
from erasure.unlearners.base import UnlearningContext
from erasure.unlearners.cfk import CFk


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


class EUk(CFk):
    """Re-initialise the last ``k`` parametrised layers *in forward order* and train only those on D_r,
    the rest frozen (Goel et al., "Towards Adversarial Evaluations for Inexact Machine Unlearning", 2022).

    Same parameters and training as :class:`CFk` (defaults: k 1, the paper sweeps k 1..3;
    5 epochs, SGD (momentum 0.9) at lr 0.02; ``batch_size`` None uses the original recipe's);
    only the starting point of the k layers differs.
    """

    def trained_layers(self, model: nn.Module, ctx: UnlearningContext) -> list[nn.Module]:
        modules = dict(model.named_modules())
        return [modules[name] for name in reinitialise_last_layers(model, ctx, self.k)]
