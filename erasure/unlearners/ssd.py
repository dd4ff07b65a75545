"""SSD: Selective Synaptic Dampening, and its label-free variant LF-SSD."""
from __future__ import annotations

import logging
from typing import Literal

import torch
from torch import Tensor, nn

from erasure.core.params import LogUniform, PositiveFloat, PositiveInt
from erasure.unlearners._common import diagonal_fisher, per_sample_fisher
from erasure.unlearners.base import TASKS, Unlearner, UnlearningContext

log = logging.getLogger("erasure.unlearners")

Importance = Literal["per_sample", "class_sorted_batches", "shuffled_batches"]


def dampen(param: Tensor, importance_all: Tensor, importance_forget: Tensor, alpha: float, lam: float) -> Tensor:
    """SSD's update: where I_f > α·I_D, θ ← min(λ·I_D / I_f, 1)·θ; elsewhere θ is unchanged."""
    selected = importance_forget > alpha * importance_all
    factor = (lam * importance_all / importance_forget.clamp_min(torch.finfo(importance_forget.dtype).tiny)).clamp(max=1.0)
    return torch.where(selected, param * factor, param)


def grouped_by_label(targets: Tensor) -> Tensor:
    """The order that groups samples by class (stable: storage order within a class); on
    multi-label targets (N, L), by label set (lexicographic, label 0 first)."""
    if targets.dim() == 1:
        return torch.sort(targets, stable=True).indices
    order = torch.arange(len(targets), device=targets.device)
    for column in reversed(range(targets.shape[1])):
        order = order[torch.sort(targets[order, column], stable=True).indices]
    return order


def output_norm_loss(logits: Tensor, _targets: Tensor) -> Tensor:
    """LF-SSD's label-free objective: the mean squared L2 norm of the outputs."""
    return logits.pow(2).sum(dim=1).mean()


class SSD(Unlearner):
    """Selective Synaptic Dampening (Foster, Schoepf & Brintrup, "Fast Machine Unlearning Without
    Retraining Through Selective Synaptic Dampening", AAAI 2024; reference code
    if-loops/selective-synaptic-dampening, src/ssd.py).

    Diagonal importances I_D over the whole training set and I_f over D_f; every parameter with
    I_f > α·I_D is dampened: θ ← min(λ·I_D/I_f, 1)·θ. No gradient step, no retraining.

    ``importance`` says how the diagonals are estimated:

    - ``"class_sorted_batches"`` (default): the reference code's ``calc_importance`` on its
      full-class and sub-class loaders, the estimator behind the paper's numbers: the mean over
      unshuffled batches of ``batch_size`` (64, the code's) of the squared batch-mean gradient,
      D ordered as D_r grouped by class followed by D_f. Batch means of class-pure batches make
      I_f large against I_D, so α 10 selects weights as in the code.
    - ``"shuffled_batches"``: the same on the reference's random-forgetting loaders: D_r and
      D_f each in a seeded random order, D_r first.
    - ``"per_sample"``: the paper's diagonal Fisher, the mean over samples of the squared
      gradient of each sample's loss (``torch.func``, ``batch_size`` samples at a time). It does
      not depend on how the data source orders its samples or on the batch size. Caveat: since
      D_f ⊂ D, I_D ≥ (|D_f|/|D|)·I_f, so no weight can be selected once α ≥ |D|/|D_f| (forgetting
      one class of ten needs α < 10; the paper's α 10 then equals Identity).

    ``label_free`` gives LF-SSD (Foster, Schoepf & Brintrup, "Loss-Free Machine Unlearning",
    ICLR 2024 Tiny Papers; the reference README's "Implementing LFSSD"): importances are the
    mean absolute gradient of the squared L2 norm of the outputs, so no label is used.

    Defaults: α (``alpha``, selection weighting) 10, λ (``dampening``) 1, as in the paper's
    CIFAR experiments; ``batch_size`` 64 as the reference's loaders (None: the original recipe's).
    """

    tasks = TASKS
    #: tuned by the equal-budget protocol (erasure.tuning); the ranges contain the defaults
    search_space = {"alpha": LogUniform(1.0, 100.0), "dampening": LogUniform(0.1, 10.0)}

    def __init__(self, alpha: PositiveFloat = 10.0, dampening: PositiveFloat = 1.0, label_free: bool = False,
                 importance: Importance = "class_sorted_batches", batch_size: PositiveInt | None = 64):
        self.alpha = alpha
        self.dampening = dampening
        self.label_free = label_free
        self.importance = importance
        self.batch_size = batch_size

    def importances(self, model: nn.Module, ctx: UnlearningContext) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """(I_D, I_f) with the model in eval mode."""
        parts = ctx.partitions
        loss = output_norm_loss if self.label_free else None
        batch_size = self.batch_size or ctx.recipe.batch_size
        forget, retain = parts["forget"], parts["retain"]
        if self.importance == "per_sample":
            if self.alpha * len(forget) >= len(forget) + len(retain):
                log.warning("SSD: alpha %g >= |D|/|D_f| = %.3g, so no weight can have I_f > alpha * I_D",
                            self.alpha, (len(forget) + len(retain)) / len(forget))
            return (per_sample_fisher(model, parts, torch.cat([retain, forget]), batch_size, loss, self.label_free),
                    per_sample_fisher(model, parts, forget, batch_size, loss, self.label_free))
        if self.importance == "class_sorted_batches":
            retain = retain[grouped_by_label(parts.dataset.targets[retain])]
        else:
            retain = retain[torch.randperm(len(retain), generator=ctx.generator).to(retain.device)]
            forget = forget[torch.randperm(len(forget), generator=ctx.generator).to(forget.device)]
        importance_all = diagonal_fisher(model, parts.batches(torch.cat([retain, forget]), batch_size), loss, self.label_free)
        importance_forget = diagonal_fisher(model, parts.batches(forget, batch_size), loss, self.label_free)
        return importance_all, importance_forget

    def unlearn(self, model: nn.Module, ctx: UnlearningContext) -> nn.Module:
        model.eval()
        importance_all, importance_forget = self.importances(model, ctx)
        with torch.no_grad():
            for name, p in model.named_parameters():
                p.copy_(dampen(p, importance_all[name], importance_forget[name], self.alpha, self.dampening))
        return model
