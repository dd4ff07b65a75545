"""Certified removal (Guo et al., "Certified Data Removal from Machine Learning Models", ICML
2020; reference code facebookresearch/certified-removal, test_removal.py): Newton-step removal
from an L2-regularised one-vs-rest linear head trained with loss perturbation
(:class:`~erasure.models.schemes.linear_head.CertifiedTraining`). The data-dependent bounds on
the remaining gradient accumulate over requests; with perturbation std σ the model is
(ε, δ)-certified for ε = sqrt(2·ln(1.5/δ))·bound/σ, and a request that would take ε past the
budget is refused (retrain from scratch instead, Guo et al.'s Algorithm).
"""
from __future__ import annotations

from typing import Any, Literal

import torch
from torch import nn

from erasure.core.params import OpenFraction, PositiveFloat, PositiveInt
from erasure.models.schemes.linear_head import (CertifiedTraining, LinearHeadModel, epsilon_of, feature_matrix,
                                                newton_removal, signs)
from erasure.unlearners.base import Unlearner, UnlearningContext


class BudgetSpent(RuntimeError):
    """A removal request refused: it would spend more than the (ε, δ) budget."""


def remove(model: LinearHeadModel, X_removed: torch.Tensor, Y_removed: torch.Tensor, X_rest: torch.Tensor,
           Y_rest: torch.Tensor, lam: float, per: str) -> tuple[torch.Tensor, float]:
    """The head after removing the samples (one Newton step per sample in order, each class in
    turn, as test_removal.py; or one step for them all with ``per`` "request") and the bound spent."""
    w, spent = model.weight.detach().clone(), 0.0
    groups = [slice(i, i + 1) for i in range(len(X_removed))] if per == "sample" else [slice(0, len(X_removed))]
    for n, group in enumerate(groups):
        later = slice(group.stop, None)  # samples of this request not removed yet still count as training data
        X = torch.cat([X_removed[later], X_rest])
        Y = torch.cat([Y_removed[later], Y_rest])
        for k in range(w.shape[1]):
            w[:, k], bound = newton_removal(w[:, k], X_removed[group], Y_removed[group, k], X, Y[:, k], lam)
            spent += bound
    return w, spent


class CertifiedRemoval(Unlearner):
    """Newton-step removal with an (ε, δ) account (see the module docstring). ``lam``, ``std``,
    ``features`` and ``steps`` are the :class:`CertifiedTraining` scheme's; ``per`` "sample"
    removes one sample at a time (the reference) and "request" takes one Newton step for the whole
    request. Logs ``epsilon``, ``delta`` and ``gradient_residual_bound`` (accumulated)."""

    #: the contract's tiny world: a few samples, a budget that a removal there fits in
    contract_config = {"parameters": {"lam": 0.01, "epsilon": 1e6, "steps": 5},
                       "forget": {"class": "RandomForget", "parameters": {"count": 3}}}

    def __init__(self, epsilon: PositiveFloat = 1.0, delta: OpenFraction = 1e-4, per: Literal["sample", "request"] = "sample",
                 lam: PositiveFloat = 1e-6, std: PositiveFloat = 10.0,
                 features: Literal["penultimate", "input"] = "penultimate", steps: PositiveInt = 100):
        self.epsilon = epsilon
        self.delta = delta
        self.per = per
        self.lam = lam
        self.std = std
        self.features = features
        self.steps = steps

    def training_scheme(self) -> dict[str, Any]:
        return {"class": "CertifiedTraining",
                "parameters": {"lam": self.lam, "std": self.std, "features": self.features, "steps": self.steps}}

    def unlearn(self, model: nn.Module, ctx: UnlearningContext) -> nn.Module:
        if not isinstance(model, LinearHeadModel):
            raise TypeError(f"CertifiedRemoval needs an original trained under {CertifiedTraining.__name__}, "
                            f"got {type(model).__name__}")
        parts, classes = ctx.partitions, model.weight.shape[1]
        forget, retain = parts["forget"], parts["retain"]
        w, spent = remove(model, feature_matrix(model, parts, forget), signs(parts.dataset.targets[forget], classes),
                          feature_matrix(model, parts, retain), signs(parts.dataset.targets[retain], classes),
                          self.lam, self.per)
        bound = float(model.bound) + spent
        epsilon = epsilon_of(bound, self.std, self.delta)
        if epsilon > self.epsilon:
            raise BudgetSpent(f"request refused: removing its {len(forget)} samples would spend ε = {epsilon:.4g} "
                              f"> the budget {self.epsilon:g} (δ {self.delta:g}); retrain from scratch")
        with torch.no_grad():
            model.weight.copy_(w)
            model.bound.fill_(bound)
            model.removed += len(forget)
        ctx.extras["retrain_fraction"] = 0.0
        ctx.log(None, {"epsilon": epsilon, "delta": self.delta, "gradient_residual_bound": bound})
        return model
