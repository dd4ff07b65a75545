"""RandomLabels (SRL / amnesiac unlearning): fine-tune on D_f relabelled at random, together with D_r."""
from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from erasure.core.params import IntRange, LogUniform, MethodOptimizerSpec, PositiveFloat, PositiveInt
from erasure.unlearners._common import index_batches, random_wrong_labels
from erasure.unlearners.base import TrainingUnlearner, UnlearningContext, build_optimizer
from erasure.unlearners.neggrad import ADAM

PassOrder = Literal["mixed", "forget_then_retain"]


def random_label_training(
    model: nn.Module,
    ctx: UnlearningContext,
    optimizer: torch.optim.Optimizer,
    epochs: int,
    batch_size: int,
    redraw: bool = True,
    pass_order: PassOrder = "mixed",
) -> nn.Module:
    """Cross-entropy on D_f, every forget sample given a random wrong class (drawn anew each epoch
    with ``redraw``, else once before the first), and on D_r: in shuffled batches of D_f ∪ D_r
    (``mixed``), or a pass over D_f then a pass over D_r each epoch (``forget_then_retain``)."""
    parts = ctx.partitions
    forget, retain = parts["forget"], parts["retain"]
    targets = parts.dataset.targets

    def step(chunk: torch.Tensor) -> None:
        optimizer.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(parts.dataset.take(chunk)), labels[chunk]).backward()
        optimizer.step()

    model.train()
    for epoch in range(epochs):
        if redraw or epoch == 0:
            labels = targets.clone()
            labels[forget] = random_wrong_labels(targets[forget], ctx.num_classes, ctx.generator)
        passes = [torch.cat([forget, retain])] if pass_order == "mixed" else [forget, retain]
        for index in passes:
            for chunk in index_batches(index, batch_size, ctx.generator):
                step(chunk)
        ctx.end_epoch(model)
    return model.eval()


class RandomLabels(TrainingUnlearner):
    """Fine-tune on D_f with random wrong labels together with D_r, in shuffled mixed batches.

    Graves, Nagisetty & Ganesh, "Amnesiac Machine Learning", AAAI 2021. Defaults are the SSD
    repository's ``amnesiac`` baseline (if-loops/selective-synaptic-dampening,
    src/forget_*_strategies.py → src/unlearn.py ``fit_one_unlearning_cycle``): labels drawn
    once, 3 epochs, Adam at lr 1e-4, shuffled batches of D_f ∪ D_r. ``redraw`` draws new labels
    every epoch; with ``pass_order="forget_then_retain"`` each epoch is a pass over D_f then a pass
    over D_r: both together are ERASURE's SuccessiveRandomLabels (aiim-research/ERASURE,
    erasure/unlearners/SuccessiveRandomLabels.py, whose earlier version mixed the two sets).
    ``batch_size`` None uses the original recipe's (the reference's is 128).
    """

    #: tuned by the equal-budget protocol (erasure.tuning); the ranges contain the defaults
    search_space = {"epochs": IntRange(1, 10), "lr": LogUniform(1e-5, 1e-1)}

    def __init__(self, epochs: PositiveInt = 3, lr: PositiveFloat = 1e-4, batch_size: PositiveInt | None = None,
                 optimizer: MethodOptimizerSpec | None = None, redraw: bool = False, pass_order: PassOrder = "mixed"):
        self.epochs = epochs
        self.lr = lr
        self.batch_size = batch_size
        self.optimizer = optimizer
        self.redraw = redraw
        self.pass_order = pass_order

    def unlearn(self, model: nn.Module, ctx: UnlearningContext) -> nn.Module:
        optimizer = build_optimizer(self.optimizer, ADAM, model.parameters(), self.lr)
        return random_label_training(model, ctx, optimizer, self.epochs, self.batch_size or ctx.recipe.batch_size,
                                     redraw=self.redraw, pass_order=self.pass_order)
