"""Î(Ŷ;Z): the soft plug-in mutual information of Xu & Strohmer, and its evaluator.

Xu & Strohmer, "Machine Unlearning via Information Theoretic Regularization"
(arXiv 2502.05684). Z says whether a sample comes from the data to forget. The
pool is Z=0: remain ∪ unlearn, Z=1: remain again (the same samples), so
N = 2·|remain| + |unlearn|. With p_i = softmax(f(x_i)) clamped to [1e-10, 1]:

    P(c,z) = (1/N)·Σ_{i: z_i=z} p_i[c],  π_z = Σ_c P(c,z),  P(c) = Σ_z P(c,z),
    Î = Σ_{z,c} P(c,z)·log(P(c,z) / (P(c)·π_z)).

Î is zero exactly when the mean softmax on the unlearn samples equals that on
the remain samples, and it is differentiable (MIRegularized puts it in its loss).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from erasure.evaluators.base import Evaluator, Outcome
from erasure.results.targets import as_gold

PROBABILITY_FLOOR = 1e-10


def soft_mutual_information(remain_probs: Tensor, unlearn_probs: Tensor) -> Tensor:
    """Soft plug-in Î(Ŷ;Z) from softmax outputs ``(n_remain, C)`` and ``(n_unlearn, C)``; a 0-dim tensor in nats."""
    if remain_probs.dim() != 2 or unlearn_probs.dim() != 2 or remain_probs.shape[1] != unlearn_probs.shape[1]:
        raise ValueError(f"expected (n, C) probabilities with the same C, got {tuple(remain_probs.shape)} "
                         f"and {tuple(unlearn_probs.shape)}")
    p_r = remain_probs.clamp(PROBABILITY_FLOOR, 1.0)
    p_u = unlearn_probs.clamp(PROBABILITY_FLOOR, 1.0)
    n = 2 * len(p_r) + len(p_u)
    sum_r = p_r.sum(0)
    joint = torch.stack([sum_r + p_u.sum(0), sum_r], dim=1) / n  # (C, 2): P(c, z)
    marginal_c = joint.sum(1, keepdim=True)  # P(c)
    marginal_z = joint.sum(0, keepdim=True)  # π_z
    return (joint * torch.log(joint / (marginal_c * marginal_z))).sum()


def soft_mutual_information_from_logits(remain_logits: Tensor, unlearn_logits: Tensor) -> Tensor:
    """:func:`soft_mutual_information` of the softmax of two logit tensors."""
    return soft_mutual_information(remain_logits.float().softmax(1), unlearn_logits.float().softmax(1))


class MutualInformation(Evaluator):
    """``mutual_information``: Î(Ŷ;Z) of the unlearned model on the whole forget (unlearn) and
    retain (remain) sets, in nats; 0 when its mean softmax is the same on both. NaN when the
    forget set is empty (feature unlearning)."""

    metric_targets = {"mutual_information": as_gold(0, math.log(2))}

    def __init__(self) -> None:
        pass

    def evaluate(self, outcome: Outcome) -> dict[str, float]:
        parts = outcome.partitions
        if "forget" not in parts or parts.size("forget") == 0 or parts.size("retain") == 0:
            return {"mutual_information": float("nan")}
        value = soft_mutual_information_from_logits(outcome.logits("unlearned", "retain"), outcome.logits("unlearned", "forget"))
        return {"mutual_information": float(value)}
