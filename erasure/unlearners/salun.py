"""SalUn: a gradient-saliency mask over the weights, then random-label training of the masked weights only."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from erasure.core.params import OpenFraction, MethodOptimizerSpec, PositiveFloat, PositiveInt
from erasure.unlearners.base import SGD_MOMENTUM, Unlearner, UnlearningContext, build_optimizer
from erasure.unlearners.random_labels import random_label_training


def saliency_mask(model: nn.Module, ctx: UnlearningContext, ratio: float, batch_size: int) -> dict[str, Tensor]:
    """Boolean masks keeping the ``ratio`` share of weights with the largest |∇ forget loss| (one global threshold).

    The forget loss is −CE summed over the batches of D_f, as in SalUn's ``generate_mask.py``.
    """
    params = dict(model.named_parameters())
    grads = {n: torch.zeros_like(p) for n, p in params.items()}
    model.eval()
    for x, y in ctx.partitions.batches("forget", batch_size):
        model.zero_grad(set_to_none=True)
        (-nn.functional.cross_entropy(model(x), y)).backward()
        for n, p in params.items():
            if p.grad is not None:
                grads[n] += p.grad
    model.zero_grad(set_to_none=True)
    scores = torch.cat([g.abs().flatten() for g in grads.values()])
    keep = int(round(ratio * scores.numel()))
    if keep == 0:
        return {n: torch.zeros_like(g, dtype=torch.bool) for n, g in grads.items()}
    chosen = torch.zeros_like(scores, dtype=torch.bool)
    chosen[torch.topk(scores, keep).indices] = True
    masks, start = {}, 0
    for n, g in grads.items():
        masks[n] = chosen[start : start + g.numel()].view_as(g)
        start += g.numel()
    return masks


class SalUn(Unlearner):
    """Saliency unlearning (Fan et al., "SalUn: Empowering Machine Unlearning via Gradient-based Weight
    Saliency in Both Image Classification and Generation", ICLR 2024).

    1. Mask: g = |∇θ (−CE on D_f)|; keep the top ``ratio`` of all weights (global threshold).
    2. RandomLabels on D_f ∪ D_r where gradients outside the mask are zeroed, so only the
       salient weights move. The mask is enforced after every step as well, so weight decay
       or any other optimizer setting cannot move an unmasked weight.

    Defaults (CIFAR-10 class-wise forgetting in the paper's code): ratio 0.5, 10 epochs,
    SGD (momentum 0.9) at lr 0.013. The paper also uses weight decay 5e-4; it is left out of
    the default optimizer because it would shrink unmasked weights (pass it in ``optimizer``
    to decay the masked weights). ``batch_size`` None uses the original recipe's.
    """

    def __init__(self, ratio: OpenFraction = 0.5, epochs: PositiveInt = 10, lr: PositiveFloat = 0.013,
                 batch_size: PositiveInt | None = None, optimizer: MethodOptimizerSpec | None = None):
        self.ratio = ratio
        self.epochs = epochs
        self.lr = lr
        self.batch_size = batch_size
        self.optimizer = optimizer

    def unlearn(self, model: nn.Module, ctx: UnlearningContext) -> nn.Module:
        batch_size = self.batch_size or ctx.recipe.batch_size
        masks = saliency_mask(model, ctx, self.ratio, batch_size)
        params = dict(model.named_parameters())
        frozen = {n: p.detach().clone() for n, p in params.items()}

        def mask_gradients() -> None:
            for n, p in params.items():
                if p.grad is not None:
                    p.grad.mul_(masks[n])

        def restore_unmasked() -> None:
            with torch.no_grad():
                for n, p in params.items():
                    p.copy_(torch.where(masks[n], p, frozen[n]))

        optimizer = build_optimizer(self.optimizer, SGD_MOMENTUM, model.parameters(), self.lr)
        return random_label_training(model, ctx, optimizer, self.epochs, batch_size, mask_gradients, restore_unmasked)
