"""A fast-training CIFAR network in the style of airbench (Jordan, "94% on CIFAR-10 in 3.29 seconds
on a single GPU", arXiv 2404.00498; reference code KellerJordan/cifar10-airbench, airbench94.py).

For reference models that must be trained many times (GoldModel per forget set, ULiRA and
ForgettingQuality replicas, oracle ensembles): a 2×2 stem convolution (no padding), three
blocks of [3×3 conv → 2×2 max-pool → batch norm → GELU → 3×3 conv → batch norm → GELU] with
``widths`` channels, a global max-pool and a bias-free linear head whose logits are scaled
by ``logit_scale``. Batch norms learn only their shift (their scale is frozen at 1), as
airbench's do. Not reproduced here (they belong to airbench's training script, not the
network): the data-dependent whitening initialisation of the stem, the lookahead/EMA of the
weights, the stem bias freeze after 3 epochs and test-time flips; see the recipe in
configs/examples/cifar10_fast_gold.jsonc and docs/data_and_models.md for what they cost.
"""
from __future__ import annotations

from torch import Tensor, nn

from erasure.core.params import PositiveFloat, PositiveInt
from erasure.models.base import Model


def batch_norm(channels: int, momentum: float) -> nn.BatchNorm2d:
    norm = nn.BatchNorm2d(channels, momentum=momentum, eps=1e-12)
    norm.weight.requires_grad_(False)  # airbench trains the shift only
    return norm


class ConvGroup(nn.Sequential):
    """conv → max-pool (when the map is at least 2×2) → BN → GELU → conv → BN → GELU."""

    def __init__(self, c_in: int, c_out: int, pool: bool, momentum: float):
        layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)]
        if pool:
            layers.append(nn.MaxPool2d(2))
        layers += [batch_norm(c_out, momentum), nn.GELU(),
                   nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), batch_norm(c_out, momentum), nn.GELU()]
        super().__init__(*layers)


class FastResNet(Model):
    """airbench94's network (widths 64/256/256, stem 24×2 channels, logits × 1/9) for ``(C, H, W)``
    images; ``widths`` and ``stem`` scale it (the contract test uses a tiny one)."""

    def __init__(self, input_shape: tuple[int, ...], num_classes: PositiveInt,
                 widths: list[PositiveInt] = [64, 256, 256],  # noqa: B006 (read-only default, stored as given)
                 stem: PositiveInt = 48, logit_scale: PositiveFloat = 1 / 9, bn_momentum: PositiveFloat = 0.4):
        super().__init__()
        self.input_shape = input_shape
        self.num_classes = num_classes
        self.widths = widths
        self.stem = stem
        self.logit_scale = logit_scale
        self.bn_momentum = bn_momentum
        if len(input_shape) not in (2, 3):
            raise ValueError(f"FastResNet needs image inputs (C, H, W), got shape {tuple(input_shape)}")
        channels, height, width = input_shape if len(input_shape) == 3 else (1, *input_shape)
        size = min(height, width) - 1  # the 2x2 stem has no padding
        groups: list[nn.Module] = [nn.Conv2d(channels, stem, 2), nn.GELU()]
        c_in = stem
        for c_out in widths:
            groups.append(ConvGroup(c_in, c_out, size >= 2, bn_momentum))
            size, c_in = (size // 2 if size >= 2 else size), c_out
        self.body = nn.Sequential(*groups, nn.AdaptiveMaxPool2d(1), nn.Flatten())
        self.head = nn.Linear(c_in, num_classes, bias=False)

    def features(self, x: Tensor) -> Tensor:
        if x.dim() == 3:
            x = x.unsqueeze(1)
        return self.body(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x)) * self.logit_scale
