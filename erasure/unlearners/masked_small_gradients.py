"""Masked Small Gradients (MSG): a NeurIPS 2023 unlearning-challenge solution, as DeepUnlearn runs it."""
from __future__ import annotations

import contextlib
from typing import Iterator, Literal

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from erasure.core.params import (IntRange, LogUniform, MethodOptimizerSpec, OpenFraction, PositiveFloat, PositiveInt,
                                 Uniform)
from erasure.unlearners._common import train_on_retain
from erasure.unlearners.base import TrainingUnlearner, UnlearningContext, build_optimizer

#: the gradient scale of the weights that keep their trained values (the solution's ``grad_mask`` 0.1)
KEPT_GRADIENT_SCALE = 0.1
#: the solution's optimizer (``DefaultKGLTop2Config`` / ``DefaultKGLTop5Config``)
SGD_SOLUTION = {"class": "SGD", "parameters": {"momentum": 0.9, "weight_decay": 5e-4}}
LayerTypes = Literal["conv", "conv_and_linear"]


def annealing_factor(epoch: int, epochs: int) -> float:
    """The solution's ``LinearAnnealingLR`` stepped once per epoch (``epoch`` from 0): a linear
    ramp up over the first (epochs+1)//2 epochs, then down, over epochs+1 steps in all."""
    step, warm, total = epoch + 1, (epochs + 1) // 2, epochs + 1
    return step / warm if step <= warm else (total - step) / (total - warm)


def snip_gradients(model: nn.Module, ctx: UnlearningContext, batch_size: int) -> None:
    """Accumulate into ``.grad`` the summed gradients of CE on a random subset of D_r as large as
    D_f and of −CE on D_f (shuffled batches; ``get_grads_for_snip``)."""
    retain, forget = ctx.partitions["retain"], ctx.partitions["forget"]
    subset = retain[torch.randperm(len(retain), generator=ctx.generator)[: len(forget)].to(retain.device)]
    model.zero_grad(set_to_none=True)
    for x, y in ctx.partitions.batches(subset, batch_size, True, ctx.generator):
        F.cross_entropy(model(x), y).backward()
    for x, y in ctx.batches("forget", batch_size):
        (-F.cross_entropy(model(x), y)).backward()


def small_gradient_mask(gradient: Tensor, rate: float) -> Tensor:
    """True at the round(rate·n) weights with the smallest absolute gradient."""
    mask = torch.zeros(gradient.numel(), dtype=torch.bool, device=gradient.device)
    mask[torch.topk(-gradient.abs().flatten(), k=round(rate * gradient.numel())).indices] = True
    return mask.view_as(gradient)


@contextlib.contextmanager
def scaled_gradients(scales: dict[nn.Parameter, Tensor]) -> Iterator[None]:
    """Within the block, each parameter's gradient is multiplied by its scale (the solution's ``Masker``)."""
    handles = [p.register_hook(lambda g, s=s: g * s) for p, s in scales.items()]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


class MaskedSmallGradients(TrainingUnlearner):
    """Masked Small Gradients, "MSG" (DeepUnlearn's name; a top solution of the NeurIPS 2023
    Machine Unlearning challenge; Cadet et al., "Deep Unlearn: Benchmarking Machine Unlearning",
    reference code xcadet/deepunlearn, munl/unlearning/kgltop2.py).

    1. Gradients: the summed gradients of CE over a random subset of D_r of |D_f| samples plus
       those of −CE over D_f (batches of ``batch_size``, model in its given mode, eval here).
    2. Reinitialisation: in every convolution (``layer_types="conv_and_linear"``: also every
       linear layer) the ``init_rate`` share of weights with the smallest absolute gradient is
       redrawn with ``kaiming_normal_`` (fan-out, ReLU); the others keep their values.
    3. Fine-tuning on D_r, train mode, SGD (momentum, weight decay) with the solution's linear
       warm-up-then-decay learning rate per epoch; gradients of the weights that were not
       redrawn are scaled by 0.1 (biases and other layers train freely).

    Defaults are the solution's (``DefaultKGLTop2Config``): init_rate 0.3, 5 epochs, SGD (momentum
    0.9, weight decay 5e-4; ``optimizer`` changes it) at lr 1e-3, batch 64. On a model without convolutions the default
    layer type leaves nothing to reinitialise, so it is fine-tuning with that schedule.
    """

    #: tuned by the equal-budget protocol (erasure.tuning); the ranges contain the defaults
    search_space = {"init_rate": Uniform(0.05, 0.9), "epochs": IntRange(1, 10), "lr": LogUniform(1e-4, 1e-1)}

    def __init__(self, init_rate: OpenFraction = 0.3, epochs: PositiveInt = 5, lr: PositiveFloat = 1e-3,
                 batch_size: PositiveInt = 64, layer_types: LayerTypes = "conv",
                 optimizer: MethodOptimizerSpec | None = None):
        self.init_rate = init_rate
        self.epochs = epochs
        self.lr = lr
        self.batch_size = batch_size
        self.layer_types = layer_types
        self.optimizer = optimizer

    def layers(self, model: nn.Module) -> list[nn.Module]:
        kinds = (nn.Conv2d,) if self.layer_types == "conv" else (nn.Conv2d, nn.Linear)
        return [m for m in model.modules() if isinstance(m, kinds)]

    def unlearn(self, model: nn.Module, ctx: UnlearningContext) -> nn.Module:
        model.eval()
        snip_gradients(model, ctx, self.batch_size)
        scales = {}
        with torch.no_grad():
            for layer in self.layers(model):
                w = layer.weight
                if w.grad is None:  # frozen (e.g. outside ``trainable_layers``)
                    continue
                redraw = small_gradient_mask(w.grad, self.init_rate)
                fresh = nn.init.kaiming_normal_(torch.empty_like(w), mode="fan_out", nonlinearity="relu",
                                                generator=ctx.generator)
                w.copy_(torch.where(redraw, fresh, w))
                scales[w] = torch.where(redraw, 1.0, KEPT_GRADIENT_SCALE).to(w.dtype)
        model.zero_grad(set_to_none=True)
        optimizer = build_optimizer(self.optimizer, SGD_SOLUTION, model.parameters(), self.lr)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda e: annealing_factor(e, self.epochs))
        with scaled_gradients(scales):
            return train_on_retain(model, ctx, optimizer, self.epochs, self.batch_size, scheduler)
