"""NPO: Negative Preference Optimization as a classification loss (cross-entropy as the negative log-likelihood)."""
from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from erasure.core.params import (IntRange, LogUniform, MethodOptimizerSpec, NonNegativeFloat, PositiveFloat,
                                 PositiveInt)
from erasure.unlearners.base import TrainingUnlearner, UnlearningContext, build_optimizer

#: The reference's Hugging Face trainer: AdamW with weight decay 0.01 (TOFU config/forget.yaml).
ADAMW = {"class": "AdamW", "parameters": {"weight_decay": 0.01}}
RetainLoss = Literal["none", "grad_diff", "kl"]


def npo_loss(logits: Tensor, reference_logits: Tensor, targets: Tensor, beta: float) -> Tensor:
    """−(2/β)·mean_i log σ(β·(CE_θ(x_i, y_i) − CE_ref(x_i, y_i))): the NPO loss with each sample's
    cross-entropy as its negative log-likelihood (licong-lin/negative-preference-optimization,
    TOFU/dataloader.py, loss ``npo``)."""
    log_ratio = F.cross_entropy(logits, targets, reduction="none") - F.cross_entropy(reference_logits, targets, reduction="none")
    return -F.logsigmoid(beta * log_ratio).mean() * 2 / beta


def retain_term(kind: RetainLoss, logits: Tensor, reference_logits: Tensor | None, targets: Tensor) -> Tensor:
    """The retain part: ``grad_diff`` CE on the retain batch, ``kl`` KL(reference ‖ model) over its
    softmax outputs (``reduction="batchmean"``, as the reference's ``npo_KL``)."""
    if kind == "grad_diff":
        return F.cross_entropy(logits, targets)
    return F.kl_div(F.log_softmax(logits, 1), F.log_softmax(reference_logits, 1), reduction="batchmean", log_target=True)


class NPO(TrainingUnlearner):
    """Negative Preference Optimization (Zhang, Lin, Bai & Mei, "Negative Preference Optimization:
    From Catastrophic Collapse to Effective Unlearning", arXiv 2404.05868; reference code
    licong-lin/negative-preference-optimization, TOFU/dataloader.py, ``compute_loss``).

    Per step: a forget batch and a batch of as many retain samples drawn at random (the
    reference's forget dataset pairs each forget item with a random retain item), loss
    ``forget_weight``·NPO(forget batch) + ``retain_weight``·retain term, where NPO is
    :func:`npo_loss` against the reference model (the original, frozen) and the retain term is
    ``"grad_diff"`` (CE, the code's ``npo_grad_diff``), ``"kl"`` (``npo_KL``) or ``"none"`` (``npo``).
    An epoch is one pass over D_f; the model trains in train mode.

    Defaults are the reference's TOFU run (config/forget.yaml): ``npo_grad_diff``, β 0.1,
    both weights 1, 10 epochs, AdamW (weight decay 0.01) at lr 1e-5; ``batch_size`` None uses the
    original recipe's. lr 1e-5 was set for a 7B language model; small classifiers need more.
    """

    #: tuned by the equal-budget protocol (erasure.tuning); the ranges contain the defaults
    search_space = {"beta": LogUniform(0.05, 5.0), "epochs": IntRange(1, 10), "lr": LogUniform(1e-5, 1e-2)}

    def __init__(self, beta: PositiveFloat = 0.1, retain_loss: RetainLoss = "grad_diff", forget_weight: NonNegativeFloat = 1.0,
                 retain_weight: NonNegativeFloat = 1.0, epochs: PositiveInt = 10, lr: PositiveFloat = 1e-5,
                 batch_size: PositiveInt | None = None, optimizer: MethodOptimizerSpec | None = None):
        self.beta = beta
        self.retain_loss = retain_loss
        self.forget_weight = forget_weight
        self.retain_weight = retain_weight
        self.epochs = epochs
        self.lr = lr
        self.batch_size = batch_size
        self.optimizer = optimizer

    def forget_loss(self, logits: Tensor, reference_logits: Tensor | None, targets: Tensor) -> Tensor:
        return npo_loss(logits, reference_logits, targets, self.beta)

    def needs_reference(self) -> bool:
        return True

    def unlearn(self, model: nn.Module, ctx: UnlearningContext) -> nn.Module:
        reference = ctx.frozen_copy(model) if self.needs_reference() or self.retain_loss == "kl" else None
        optimizer = build_optimizer(self.optimizer, ADAMW, model.parameters(), self.lr)
        retain = ctx.partitions["retain"]
        model.train()
        for _ in range(self.epochs):
            for xf, yf in ctx.batches("forget", self.batch_size):
                optimizer.zero_grad(set_to_none=True)
                with torch.no_grad():
                    ref_f = reference(xf) if self.needs_reference() else None
                loss = self.forget_weight * self.forget_loss(model(xf), ref_f, yf)
                if self.retain_loss != "none":
                    pick = retain[torch.randint(len(retain), (len(yf),), generator=ctx.generator).to(retain.device)]
                    xr, yr = next(iter(ctx.partitions.batches(pick, len(pick), False)))
                    with torch.no_grad():
                        ref_r = reference(xr) if self.retain_loss == "kl" else None
                    loss = loss + self.retain_weight * retain_term(self.retain_loss, model(xr), ref_r, yr)
                loss.backward()
                optimizer.step()
            ctx.end_epoch(model)
        return model.eval()
