"""GoldDistance: how far the unlearned model is from the gold (retrained) model."""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from erasure.evaluators.base import Evaluator, Outcome
from erasure.results.targets import ideal

PARTITIONS = ("forget", "retain", "test")


def kl_divergence(p_logits: Tensor, q_logits: Tensor) -> Tensor:
    """KL(p ‖ q) in nats per row, between the softmaxes of two logit matrices."""
    logp, logq = torch.log_softmax(p_logits.float(), 1), torch.log_softmax(q_logits.float(), 1)
    return (logp.exp() * (logp - logq)).sum(1)


def js_divergence(p_logits: Tensor, q_logits: Tensor) -> Tensor:
    """Jensen-Shannon divergence in nats per row (bounded by ln 2)."""
    p, q = torch.softmax(p_logits.float(), 1), torch.softmax(q_logits.float(), 1)
    logm = torch.log((p + q) / 2).clamp_min(-1e30)
    def kl(a: Tensor) -> Tensor:
        return torch.where(a > 0, a * (torch.log(a.clamp_min(1e-45)) - logm), torch.zeros_like(a)).sum(1)
    return 0.5 * kl(p) + 0.5 * kl(q)


def activation_distance(p_logits: Tensor, q_logits: Tensor) -> Tensor:
    """L2 distance between the output probability vectors, per row (Chundawat et al. 2023)."""
    return (torch.softmax(p_logits.float(), 1) - torch.softmax(q_logits.float(), 1)).norm(dim=1)


def parameter_distance(a: nn.Module, b: nn.Module) -> float:
    """L2 norm of the difference of all parameters (NaN when the architectures differ)."""
    pa, pb = list(a.parameters()), list(b.parameters())
    if len(pa) != len(pb) or any(x.shape != y.shape for x, y in zip(pa, pb)):
        return float("nan")
    with torch.no_grad():
        return float(torch.sqrt(sum(((x.float() - y.float().to(x.device)) ** 2).sum() for x, y in zip(pa, pb))))


class GoldDistance(Evaluator):
    """Per partition p in forget, retain, test: ``gold_kl_<p>`` = mean KL(unlearned ‖ gold),
    ``gold_js_<p>`` = mean Jensen-Shannon divergence (nats), ``gold_activation_distance_<p>`` =
    mean L2 distance between output probabilities (Chundawat et al. 2023); and
    ``gold_parameter_l2`` = ‖θ_unlearned − θ_gold‖₂. All 0 for GoldModel itself."""

    uses_gold = True
    metric_targets = {"gold_kl_*": ideal(0, 0, None), "gold_js_*": ideal(0, 0, math.log(2)),
                      "gold_activation_distance_*": ideal(0, 0, math.sqrt(2)), "gold_parameter_l2": ideal(0, 0, None)}

    def __init__(self) -> None:
        pass

    def evaluate(self, outcome: Outcome) -> dict[str, float]:
        out: dict[str, float] = {}
        for p in PARTITIONS:
            if outcome.partitions.size(p) == 0:
                continue
            u, g = outcome.logits("unlearned", p), outcome.logits("gold", p)
            out[f"gold_kl_{p}"] = float(kl_divergence(u, g).mean())
            out[f"gold_js_{p}"] = float(js_divergence(u, g).mean())
            out[f"gold_activation_distance_{p}"] = float(activation_distance(u, g).mean())
        out["gold_parameter_l2"] = parameter_distance(outcome.model, outcome.gold)
        return out
