"""Adaptive SSD: Selective Synaptic Dampening with α chosen from the data (no selection parameter to tune)."""
from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch
from torch import Tensor, nn

from erasure.core.params import LogUniform, PositiveFloat, PositiveInt
from erasure.unlearners._common import diagonal_fisher, per_sample_fisher
from erasure.unlearners.base import Unlearner, UnlearningContext
from erasure.unlearners.ssd import dampen

AdaptiveImportance = Literal["storage_order_batches", "per_sample"]


def adaptive_percentile(forget_size: int, total_size: int) -> float:
    """The percentile of the importance ratios taken as α: 100 − ln(1 + 100·|D_f|/|D|)."""
    return 100.0 - math.log(1.0 + 100.0 * forget_size / total_size)


def adaptive_alpha(importance_all: dict[str, Tensor], importance_forget: dict[str, Tensor], percentile: float) -> float:
    """That percentile (numpy's linear interpolation) of I_f / I_D over every parameter of the
    model, ratios that are NaN (0/0) or infinite (I_D = 0) left out, as the reference code."""
    ratios = []
    for name, forget in importance_forget.items():
        ratio = (forget / importance_all[name]).flatten()
        ratios.append(ratio[torch.isfinite(ratio)].detach().cpu().numpy())
    return float(np.nanpercentile(np.concatenate(ratios), percentile))


class AdaptiveSSD(Unlearner):
    """Adaptive Selective Synaptic Dampening (Schoepf, Foster & Brintrup, "Parameter-tuning-free
    data entry error unlearning with adaptive selective synaptic dampening", arXiv 2402.10098;
    reference code if-loops/adaptive-selective-synaptic-dampening, error_unlearning.ipynb:
    ``ssd``, ``ParameterPerturber.calc_importance`` and ``modify_weight`` with alpha "Adaptive").

    SSD's dampening θ ← min(λ·I_D/I_f, 1)·θ where I_f > α·I_D (:func:`~erasure.unlearners.ssd.dampen`),
    with α no longer a parameter: it is the p-th percentile of the ratios I_f/I_D over all
    weights, p = 100 − ln(1 + 100·|D_f|/|D|) (:func:`adaptive_percentile`), so about
    ln(1 + 100·|D_f|/|D|) per cent of the weights are dampened.

    As the reference code, I_D is estimated on the retain set (the paper writes the full
    training data; ``importance_all="train"``) and the importances are the mean over unshuffled
    batches (``batch_size``, the code's 1,024) of the squared batch-mean CE gradient, each set
    in its storage order (``importance="storage_order_batches"``); ``"per_sample"`` is the
    mean of per-sample squared gradients, independent of storage order and batch size.
    λ (``dampening``) 1, as the code's runs; no gradient step.
    """

    #: tuned by the equal-budget protocol (erasure.tuning); the range contains the default
    search_space = {"dampening": LogUniform(0.1, 10.0)}

    def __init__(self, dampening: PositiveFloat = 1.0, importance: AdaptiveImportance = "storage_order_batches",
                 importance_all: Literal["retain", "train"] = "retain", batch_size: PositiveInt = 1024):
        self.dampening = dampening
        self.importance = importance
        self.importance_all = importance_all
        self.batch_size = batch_size

    def importances(self, model: nn.Module, ctx: UnlearningContext) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """(I_D, I_f) with the model in eval mode."""
        parts = ctx.partitions
        forget = parts["forget"]
        full = parts["retain"] if self.importance_all == "retain" else torch.sort(torch.cat([parts["retain"], forget])).values
        if self.importance == "per_sample":
            return (per_sample_fisher(model, parts, full, self.batch_size),
                    per_sample_fisher(model, parts, forget, self.batch_size))
        return (diagonal_fisher(model, parts.batches(full, self.batch_size, False)),
                diagonal_fisher(model, parts.batches(forget, self.batch_size, False)))

    def unlearn(self, model: nn.Module, ctx: UnlearningContext) -> nn.Module:
        model.eval()
        importance_all, importance_forget = self.importances(model, ctx)
        parts = ctx.partitions
        percentile = adaptive_percentile(parts.size("forget"), parts.size("forget") + parts.size("retain"))
        alpha = adaptive_alpha(importance_all, importance_forget, percentile)
        ctx.log(None, {"adaptive_alpha": alpha})
        with torch.no_grad():
            for name, p in model.named_parameters():
                p.copy_(dampen(p, importance_all[name], importance_forget[name], alpha, self.dampening))
        return model
