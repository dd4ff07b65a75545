"""SSD: Selective Synaptic Dampening, and its label-free variant LF-SSD."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from erasure.core.params import PositiveFloat, PositiveInt
from erasure.unlearners._common import diagonal_fisher
from erasure.unlearners.base import Unlearner, UnlearningContext


def dampen(param: Tensor, importance_all: Tensor, importance_forget: Tensor, alpha: float, lam: float) -> Tensor:
    """SSD's update: where I_f > α·I_D, θ ← min(λ·I_D / I_f, 1)·θ; elsewhere θ is unchanged."""
    selected = importance_forget > alpha * importance_all
    factor = (lam * importance_all / importance_forget.clamp_min(torch.finfo(importance_forget.dtype).tiny)).clamp(max=1.0)
    return torch.where(selected, param * factor, param)


def output_norm_loss(logits: Tensor, _targets: Tensor) -> Tensor:
    """LF-SSD's label-free objective: the mean squared L2 norm of the outputs."""
    return logits.pow(2).sum(dim=1).mean()


class SSD(Unlearner):
    """Selective Synaptic Dampening (Foster, Schoepf & Brintrup, "Fast Machine Unlearning Without
    Retraining Through Selective Synaptic Dampening", AAAI 2024).

    Diagonal importances I_D over the whole training set and I_f over D_f are the mean, over
    batches, of the squared gradient of the batch cross-entropy (the paper's ``calc_importance``;
    one forward/backward pass per batch, no per-sample loop). Every parameter with
    I_f > α·I_D is dampened: θ ← min(λ·I_D/I_f, 1)·θ. No gradient step, no retraining.

    ``label_free`` gives LF-SSD (Foster, Schoepf & Brintrup, "Loss-Free Machine Unlearning",
    ICLR 2024 Tiny Papers): importances are the mean absolute gradient of the squared L2 norm
    of the outputs, so no label is used.

    Defaults: α (``alpha``, selection weighting) 10, λ (``dampening``) 1, as in the paper's
    CIFAR experiments; ``batch_size`` None uses the original recipe's.
    """

    def __init__(self, alpha: PositiveFloat = 10.0, dampening: PositiveFloat = 1.0, label_free: bool = False,
                 batch_size: PositiveInt | None = None):
        self.alpha = alpha
        self.dampening = dampening
        self.label_free = label_free
        self.batch_size = batch_size

    def importances(self, model: nn.Module, ctx: UnlearningContext, partition: str) -> dict[str, Tensor]:
        loss = output_norm_loss if self.label_free else None
        batches = ctx.partitions.batches(partition, self.batch_size or ctx.recipe.batch_size)
        return diagonal_fisher(model, batches, loss, absolute=self.label_free)

    def unlearn(self, model: nn.Module, ctx: UnlearningContext) -> nn.Module:
        model.eval()
        importance_all = self.importances(model, ctx, "train")
        importance_forget = self.importances(model, ctx, "forget")
        with torch.no_grad():
            for name, p in model.named_parameters():
                p.copy_(dampen(p, importance_all[name], importance_forget[name], self.alpha, self.dampening))
        return model
