"""EU-k: exact unlearning of the last k layers (re-initialise them, then train them on D_r)."""
from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from erasure.core.params import IntRange, LogUniform, MethodOptimizerSpec, PositiveFloat, PositiveInt
from erasure.models.base import NORMALISATIONS
from erasure.unlearners._common import last_layers
from erasure.unlearners.base import UnlearningContext
from erasure.unlearners.cfk import CFk

Init = Literal["kaiming", "architecture"]


def reinitialise_last_layers(model: nn.Module, ctx: UnlearningContext, k: int, init: Init = "kaiming") -> list[str]:
    """Re-initialise the last ``k`` layers (forward order, each with its normalisations); returns their module names.

    ``"kaiming"`` is ``_reinit`` as ``resetFinalResnet`` applies it in the reference
    (shash42/Evaluating-Inexact-Unlearning, src/models.py and src/methods.py): convolution
    and linear weights ~ ``kaiming_normal_`` (fan-in, gain √2), their biases 0, drawn
    from the last layer backwards; normalisation layers keep their trained weights and
    statistics (they are only made trainable). Other parametrised modules (embeddings,
    graph convolutions) take the architecture's initialisation. ``"architecture"`` gives
    every chosen module, normalisations included, the weights and buffers of a fresh
    ``ctx.new_model()``. Random draws come from the global generator, which the runner seeds.
    """
    chosen = last_layers(model, ctx, k)
    fresh: dict[str, nn.Module] = {}
    with torch.no_grad():
        for name, module in reversed(chosen):
            if init == "kaiming" and isinstance(module, (nn.Linear, nn.modules.conv._ConvNd)):
                nn.init.kaiming_normal_(module.weight)
                if module.bias is not None:
                    module.bias.zero_()
            elif init == "architecture" or not isinstance(module, NORMALISATIONS):
                fresh = fresh or dict(ctx.new_model().named_modules())
                module.load_state_dict(fresh[name].state_dict())
    return [name for name, _ in chosen]


class EUk(CFk):
    """Re-initialise the last ``k`` layers *in forward order* and train only those on D_r, the rest
    frozen (Goel et al., "Towards Adversarial Evaluations for Inexact Machine Unlearning", 2022;
    reference code shash42/Evaluating-Inexact-Unlearning, src/methods.py ``retrain_lastK``).

    A layer is a computation layer with its normalisations, as for :class:`CFk`. ``init``:
    ``"kaiming"`` (default, the reference's ``_reinit``: Kaiming-normal weights, zero biases,
    normalisations kept) or ``"architecture"`` (the model's own initialisation, normalisations
    reset too); see :func:`reinitialise_last_layers`. Training as :class:`CFk` (defaults: k 1,
    the reference's scripts use k 1, 3, 5, 7; 5 epochs, SGD with momentum 0.9 and weight
    decay 5e-4 at lr 0.02; ``batch_size`` None uses the original recipe's).
    """

    #: tuned by the equal-budget protocol (erasure.tuning); the ranges contain the defaults
    search_space = {"k": IntRange(1, 3), "epochs": IntRange(1, 10), "lr": LogUniform(1e-3, 1e-1)}

    def __init__(self, k: PositiveInt = 1, epochs: PositiveInt = 5, lr: PositiveFloat = 0.02,
                 batch_size: PositiveInt | None = None, optimizer: MethodOptimizerSpec | None = None,
                 init: Init = "kaiming"):
        super().__init__(k, epochs, lr, batch_size, optimizer)
        self.init = init

    def trained_layers(self, model: nn.Module, ctx: UnlearningContext) -> list[nn.Module]:
        modules = dict(model.named_modules())
        return [modules[name] for name in reinitialise_last_layers(model, ctx, self.k, self.init)]
