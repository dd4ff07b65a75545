"""ResNet-18 with the CIFAR stem (He et al., 2016, "Deep Residual Learning for Image Recognition").

The CIFAR variant used across the unlearning literature (SCRUB, SSD, SalUn, ...):
a 3×3 stride-1 first convolution and no max-pool, so 32×32 inputs keep their
resolution in the first stage; four stages of two BasicBlocks with 64·2^i
channels (``width`` scales them), global average pooling, a linear head.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from erasure.core.params import PositiveInt
from erasure.models.base import Model


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet18(Model):
    """ResNet-18, CIFAR stem; input channels and classes come from the data (``(C, H, W)`` images)."""

    def __init__(self, input_shape: tuple[int, ...], num_classes: PositiveInt, width: PositiveInt = 64):
        super().__init__()
        self.input_shape = input_shape
        self.num_classes = num_classes
        self.width = width
        channels = input_shape[0] if len(input_shape) == 3 else 1
        self.conv1 = nn.Conv2d(channels, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        stages, c_in = [], width
        for i in range(4):
            c_out = width * 2**i
            stages += [BasicBlock(c_in, c_out, 1 if i == 0 else 2), BasicBlock(c_out, c_out, 1)]
            c_in = c_out
        self.layers = nn.Sequential(*stages)
        self.head = nn.Linear(c_in, num_classes)

    def features(self, x: Tensor) -> Tensor:
        if x.dim() == 3:
            x = x.unsqueeze(1)
        out = self.layers(F.relu(self.bn1(self.conv1(x))))
        return F.adaptive_avg_pool2d(out, 1).flatten(1)
