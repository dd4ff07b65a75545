"""Convolution Transpose (CT): a NeurIPS 2023 unlearning-challenge solution, as DeepUnlearn runs it."""
from __future__ import annotations

import torch
from torch import nn

from erasure.core.params import IntRange, LogUniform, MethodOptimizerSpec, PositiveFloat, PositiveInt
from erasure.unlearners._common import train_on_retain
from erasure.unlearners.masked_small_gradients import SGD_SOLUTION
from erasure.unlearners.base import TrainingUnlearner, UnlearningContext, build_optimizer


def transpose_kernels(model: nn.Module) -> int:
    """Swap the two spatial axes of every 2-d convolution's kernel (``weight.swapaxes(2, 3)``);
    returns how many were transposed. Non-square kernels are refused."""
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        for conv in convs:
            if conv.weight.shape[2] != conv.weight.shape[3]:
                raise ValueError(f"ConvolutionTranspose needs square kernels, got {tuple(conv.weight.shape[2:])}")
            conv.weight.copy_(conv.weight.transpose(2, 3).clone())
    return len(convs)


class ConvolutionTranspose(TrainingUnlearner):
    """Convolution Transpose, "CT" (DeepUnlearn's name; a top solution of the NeurIPS 2023
    Machine Unlearning challenge; Cadet et al., "Deep Unlearn: Benchmarking Machine Unlearning",
    reference code xcadet/deepunlearn, munl/unlearning/kgltop5.py).

    Every convolution kernel is transposed (its two spatial axes swapped: ``rotate_weight``),
    which breaks the learnt filters while keeping their statistics, and the model is then
    fine-tuned on D_r in train mode: CE, SGD (momentum, weight decay), cosine annealing of the
    learning rate stepped once per epoch (T_max = epochs).

    Defaults are the solution's (``DefaultKGLTop5Config``): 3 epochs, SGD (momentum 0.9, weight
    decay 5e-4; ``optimizer`` changes it) at lr 1e-3, batch 64. A model without 2-d convolutions is only fine-tuned.
    """

    #: tuned by the equal-budget protocol (erasure.tuning); the ranges contain the defaults
    search_space = {"epochs": IntRange(1, 10), "lr": LogUniform(1e-4, 1e-1)}

    def __init__(self, epochs: PositiveInt = 3, lr: PositiveFloat = 1e-3, batch_size: PositiveInt = 64,
                 optimizer: MethodOptimizerSpec | None = None):
        self.epochs = epochs
        self.lr = lr
        self.batch_size = batch_size
        self.optimizer = optimizer

    def unlearn(self, model: nn.Module, ctx: UnlearningContext) -> nn.Module:
        transpose_kernels(model)
        optimizer = build_optimizer(self.optimizer, SGD_SOLUTION, model.parameters(), self.lr)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=self.epochs)
        return train_on_retain(model, ctx, optimizer, self.epochs, self.batch_size, scheduler)
