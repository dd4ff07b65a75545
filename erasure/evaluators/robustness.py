"""Robustness: does the forgetting survive int8 post-training quantization and Gaussian weight noise?

Zhang et al. ("Catastrophic failure of LLM unlearning via quantization", ICLR 2025,
zzwjames/FailureLLMUnlearning) show that quantizing an unlearned model can bring the forgotten
knowledge back: a method that moves the weights only a little from the original lands, once
rounded to the int8 grid, next to the original again. Weight noise is the same probe without a grid.
"""
from __future__ import annotations

import copy
from typing import Literal

import torch
from torch import nn

from erasure.core.params import NonNegativeFloat, PartitionName, PositiveInt
from erasure.core.seeding import derive_seed
from erasure.evaluators.accuracy import REPORTED, task_accuracy
from erasure.evaluators.base import TASKS, Evaluator, Outcome, Undefined
from erasure.models.training import predict_logits
from erasure.results.targets import as_gold, ideal

QUANTIZED = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def fake_quantize_(model: nn.Module, bits: int = 8) -> nn.Module:
    """Round the weight of every Linear and Conv layer, in place, to a symmetric per-tensor grid
    of ``bits`` bits (round to nearest: scale = max|w| / (2^(bits−1) − 1), w ← round(w / scale)·scale,
    clamped to ±(2^(bits−1) − 1) steps); biases, normalisations and activations stay in float
    (weight-only post-training quantization, the round-to-nearest baseline of Zhang et al.)."""
    levels = 2 ** (bits - 1) - 1
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, QUANTIZED):
                w = module.weight
                scale = w.abs().max() / levels
                if scale > 0:
                    w.copy_(torch.clamp(torch.round(w / scale), -levels, levels) * scale)
    return model


def dynamic_quantize(model: nn.Module) -> nn.Module:
    """torch's dynamic int8 quantization (``torch.ao.quantization.quantize_dynamic``) of the Linear
    layers of a CPU copy: int8 weights (per tensor) and activations quantized per batch at run
    time; convolutions stay in float (dynamic quantization covers Linear layers only)."""
    from torch.ao.quantization import quantize_dynamic

    return quantize_dynamic(copy.deepcopy(model).cpu().eval(), {nn.Linear}, dtype=torch.qint8)


def add_weight_noise_(model: nn.Module, scale: float, generator: torch.Generator) -> nn.Module:
    """Add N(0, (scale · rms(θ))²) to every floating-point parameter tensor θ, in place."""
    with torch.no_grad():
        for p in model.parameters():
            if p.is_floating_point() and p.numel():
                rms = p.double().pow(2).mean().sqrt().float()
                noise = torch.randn(p.shape, generator=generator, dtype=torch.float32)
                p.add_((noise * scale * rms).to(p.device, p.dtype))
    return model


class Robustness(Evaluator):
    """``quantized_accuracy_<p>``: accuracy after int8 post-training quantization of the weights,
    and ``noisy_accuracy_<p>``: the mean accuracy over ``noise_draws`` draws of Gaussian weight
    noise (standard deviation ``noise_scale`` × each tensor's RMS), on forget, retain, test and,
    for class or group forgetting, forget_test / retain_test (or the named ``partitions``).

    ``quantization``: "fake" (default) rounds the weights of every Linear and Conv layer to a
    symmetric per-tensor int8 grid and runs the model in float, on any device and any model;
    "dynamic" runs torch's dynamic int8 quantization of the Linear layers on the CPU (int8
    weights and activations; convolutions left in float). A forget accuracy that climbs back
    above gold's after quantization or noise shows forgetting that sits in small weight changes.
    """

    tasks = TASKS
    metric_targets = {"quantized_accuracy_retain": ideal(1), "quantized_accuracy_retain_test": ideal(1),
                      "quantized_accuracy_*": as_gold(), "noisy_accuracy_retain": ideal(1),
                      "noisy_accuracy_retain_test": ideal(1), "noisy_accuracy_*": as_gold()}

    def __init__(self, quantization: Literal["fake", "dynamic"] = "fake", bits: PositiveInt = 8,
                 noise_scale: NonNegativeFloat = 0.05, noise_draws: PositiveInt = 3,
                 partitions: list[PartitionName] | None = None) -> None:
        self.quantization = quantization
        self.bits = bits
        self.noise_scale = noise_scale
        self.noise_draws = noise_draws
        self.partitions = partitions

    def _accuracies(self, model: nn.Module, outcome: Outcome, names: list[str]) -> dict[str, float]:
        parts = outcome.partitions
        return {p: task_accuracy(predict_logits(model, parts, p), parts.targets(p)) for p in names}

    def _quantized(self, outcome: Outcome, names: list[str]) -> dict[str, float]:
        if self.quantization == "fake":
            return self._accuracies(fake_quantize_(copy.deepcopy(outcome.model), self.bits), outcome, names)
        if outcome.device.type != "cpu":
            return {p: Undefined("dynamic int8 quantization runs on the CPU only; use quantization \"fake\"")
                    for p in names}
        return self._accuracies(dynamic_quantize(outcome.model), outcome, names)

    def evaluate(self, outcome: Outcome) -> dict[str, float]:
        names = [p for p in (REPORTED if self.partitions is None else self.partitions)
                 if p in outcome.partitions and outcome.partitions.size(p) > 0]
        out = {f"quantized_accuracy_{p}": v for p, v in self._quantized(outcome, names).items()}
        draws = []
        for i in range(self.noise_draws):
            generator = torch.Generator().manual_seed(derive_seed(outcome.seed, "weight noise", str(i)))
            noisy = add_weight_noise_(copy.deepcopy(outcome.model), self.noise_scale, generator)
            draws.append(self._accuracies(noisy, outcome, names))
        out.update({f"noisy_accuracy_{p}": sum(d[p] for d in draws) / len(draws) for p in names})
        return out
