"""SalUn: a gradient-saliency mask over the weights, then random-label training of the masked weights only."""
from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from erasure.core.params import (IntRange, LogUniform, MethodOptimizerSpec, OpenFraction, PositiveFloat,
                                 PositiveInt, Uniform)
from erasure.unlearners._common import index_batches
from erasure.unlearners._options import masked_gradients
from erasure.unlearners.base import TrainingUnlearner, UnlearningContext, build_optimizer
from erasure.unlearners.saliency_mask import saliency_mask

SGD_SALUN = {"class": "SGD", "parameters": {"momentum": 0.9, "weight_decay": 5e-4}}
PassOrder = Literal["forget_then_retain", "mixed"]


def uniform_labels(count: int, num_classes: int, generator: torch.Generator, device: torch.device) -> Tensor:
    """Labels drawn uniformly over all classes (about 1/C of them equal the true label), as SalUn's ``RL``."""
    return torch.randint(0, num_classes, (count,), generator=generator).to(device)


def random_label_passes(model: nn.Module, ctx: UnlearningContext, optimizer: torch.optim.Optimizer, epochs: int,
                        batch_size: int, pass_order: PassOrder) -> nn.Module:
    """SalUn's ``RL`` epochs: cross-entropy on D_f relabelled uniformly at random and on D_r.

    ``forget_then_retain`` (its CIFAR-10 / SVHN branch): a pass over D_f with fresh labels per
    batch, then a pass over D_r. ``mixed`` (its CIFAR-100 / TinyImageNet branch): D_f relabelled
    once per epoch, shuffled together with D_r.
    """
    parts = ctx.partitions
    targets = parts.dataset.targets
    forget, retain = parts["forget"], parts["retain"]

    def step(x: object, y: Tensor) -> None:
        optimizer.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()

    model.train()
    for _ in range(epochs):
        if pass_order == "forget_then_retain":
            for chunk in index_batches(forget, batch_size, ctx.generator):
                step(parts.dataset.take(chunk), uniform_labels(len(chunk), ctx.num_classes, ctx.generator, targets.device))
            for chunk in index_batches(retain, batch_size, ctx.generator):
                step(parts.dataset.take(chunk), targets[chunk])
        else:
            labels = targets.clone()
            labels[forget] = uniform_labels(len(forget), ctx.num_classes, ctx.generator, targets.device)
            for chunk in index_batches(torch.cat([forget, retain]), batch_size, ctx.generator):
                step(parts.dataset.take(chunk), labels[chunk])
        ctx.end_epoch(model)
    return model.eval()


class SalUn(TrainingUnlearner):
    """Saliency unlearning (Fan et al., "SalUn: Empowering Machine Unlearning via Gradient-based Weight
    Saliency in Both Image Classification and Generation", ICLR 2024; reference code
    OPTML-Group/Unlearn-Saliency, Classification/generate_mask.py and unlearn/RL.py).

    1. Mask: g = |∇θ (−CE on D_f)|; keep the top ``ratio`` of all weights (global threshold).
    2. Random labels: D_f relabelled uniformly over *all* classes (so about 1/C keep their
       true label, as the reference does), trained together with D_r; gradients outside the
       mask are zeroed and the unmasked weights restored after every step, so only the salient
       weights move (weight decay and momentum included). ``pass_order``: ``forget_then_retain``
       (the reference's CIFAR-10 / SVHN branch: each epoch a D_f pass with fresh labels per
       batch, then a D_r pass) or ``mixed`` (its CIFAR-100 branch: D_f relabelled once per epoch
       and shuffled together with D_r).

    Defaults (CIFAR-10 in the reference's README and arg_parser.py): ratio 0.5, 10 epochs,
    SGD (momentum 0.9, weight decay 5e-4) at lr 0.013, ``forget_then_retain``. ``batch_size``
    None uses the original recipe's (the reference's is 256). Training batches (and the mask's
    forget batches) go through the recipe's ``training.augment``, as in the reference (``augment``
    false turns that off).
    """

    #: the reference unlearns on the training set's loader, with its crop-and-flip transforms
    #: (main_random.py / main_forget.py copy it; dataset_convert_to_test only before evaluation)
    augments = True
    #: tuned by the equal-budget protocol (erasure.tuning); the ranges contain the defaults
    search_space = {"ratio": Uniform(0.1, 0.9), "epochs": IntRange(1, 10), "lr": LogUniform(1e-4, 1e-1)}

    def __init__(self, ratio: OpenFraction = 0.5, epochs: PositiveInt = 10, lr: PositiveFloat = 0.013,
                 pass_order: PassOrder = "forget_then_retain",
                 batch_size: PositiveInt | None = None, optimizer: MethodOptimizerSpec | None = None):
        self.ratio = ratio
        self.epochs = epochs
        self.lr = lr
        self.pass_order = pass_order
        self.batch_size = batch_size
        self.optimizer = optimizer

    def unlearn(self, model: nn.Module, ctx: UnlearningContext) -> nn.Module:
        batch_size = self.batch_size or ctx.recipe.batch_size
        masks = saliency_mask(model, ctx, self.ratio, batch_size)
        optimizer = build_optimizer(self.optimizer, SGD_SALUN, model.parameters(), self.lr)
        with masked_gradients(model, masks):
            return random_label_passes(model, ctx, optimizer, self.epochs, batch_size, self.pass_order)
