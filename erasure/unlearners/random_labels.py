"""RandomLabels (SRL / amnesiac unlearning): fine-tune on D_f relabelled at random, together with D_r."""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from erasure.core.params import IntRange, LogUniform, MethodOptimizerSpec, PositiveFloat, PositiveInt
from erasure.unlearners._common import index_batches, random_wrong_labels
from erasure.unlearners.base import TrainingUnlearner, UnlearningContext, build_optimizer
from erasure.unlearners.neggrad import ADAM


def random_label_training(
    model: nn.Module,
    ctx: UnlearningContext,
    optimizer: torch.optim.Optimizer,
    epochs: int,
    batch_size: int,
    after_backward: Callable[[], None] | None = None,
    after_step: Callable[[], None] | None = None,
    redraw: bool = True,
) -> nn.Module:
    """Train on shuffled batches of D_f ∪ D_r where every forget sample gets a random wrong class,
    drawn anew each epoch (``redraw``) or once before the first."""
    parts = ctx.partitions
    index = torch.cat([parts["forget"], parts["retain"]])
    targets = parts.dataset.targets
    model.train()
    for epoch in range(epochs):
        if redraw or epoch == 0:
            labels = targets.clone()
            labels[parts["forget"]] = random_wrong_labels(targets[parts["forget"]], ctx.num_classes, ctx.generator)
        for chunk in index_batches(index, batch_size, ctx.generator):
            optimizer.zero_grad(set_to_none=True)
            nn.functional.cross_entropy(model(parts.dataset.take(chunk)), labels[chunk]).backward()
            if after_backward is not None:
                after_backward()
            optimizer.step()
            if after_step is not None:
                after_step()
        ctx.end_epoch(model)
    return model.eval()


class RandomLabels(TrainingUnlearner):
    """Fine-tune on D_f with random wrong labels together with D_r, in shuffled mixed batches.

    Graves, Nagisetty & Ganesh, "Amnesiac Machine Learning", AAAI 2021. Defaults are the SSD
    repository's ``amnesiac`` baseline (if-loops/selective-synaptic-dampening,
    src/forget_*_strategies.py → src/unlearn.py ``fit_one_unlearning_cycle``): labels drawn
    once, 3 epochs, Adam at lr 1e-4. ``redraw`` draws new labels every epoch (the "SRL"
    of later papers, e.g. ERASURE's SuccessiveRandomLabels). ``batch_size`` None uses the
    original recipe's (the reference's is 128).
    """

    #: tuned by the equal-budget protocol (erasure.tuning); the ranges contain the defaults
    search_space = {"epochs": IntRange(1, 10), "lr": LogUniform(1e-5, 1e-1)}

    def __init__(self, epochs: PositiveInt = 3, lr: PositiveFloat = 1e-4, batch_size: PositiveInt | None = None,
                 optimizer: MethodOptimizerSpec | None = None, redraw: bool = False):
        self.epochs = epochs
        self.lr = lr
        self.batch_size = batch_size
        self.optimizer = optimizer
        self.redraw = redraw

    def unlearn(self, model: nn.Module, ctx: UnlearningContext) -> nn.Module:
        optimizer = build_optimizer(self.optimizer, ADAM, model.parameters(), self.lr)
        return random_label_training(model, ctx, optimizer, self.epochs, self.batch_size or ctx.recipe.batch_size,
                                     redraw=self.redraw)
