"""Small models for tabular and image tensors: :class:`MLP` and :class:`CNN`."""
from __future__ import annotations

import math

from torch import Tensor, nn

from erasure.core.params import NonNegativeFloat, PositiveInt
from erasure.models.base import Model


class MLP(Model):
    """Fully connected ReLU network on flattened inputs: ``in → hidden[0] → … → num_classes``."""

    def __init__(
        self,
        input_shape: tuple[int, ...],
        num_classes: PositiveInt,
        hidden: list[PositiveInt] = [128, 64],  # noqa: B006 (read-only default, stored as given)
        dropout: NonNegativeFloat = 0.0,
    ):
        super().__init__()
        self.input_shape = input_shape
        self.num_classes = num_classes
        self.hidden = hidden
        self.dropout = dropout
        layers: list[nn.Module] = [nn.Flatten()]
        width = math.prod(input_shape)
        for size in hidden:
            layers += [nn.Linear(width, size), nn.ReLU()]
            if dropout:
                layers.append(nn.Dropout(dropout))
            width = size
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, num_classes)

    def features(self, x: Tensor) -> Tensor:
        return self.body(x)


class CNN(Model):
    """Conv(3×3)–ReLU–MaxPool blocks, then a hidden linear layer: for small images ``(C, H, W)``."""

    def __init__(
        self,
        input_shape: tuple[int, ...],
        num_classes: PositiveInt,
        channels: list[PositiveInt] = [32, 64],  # noqa: B006
        hidden: PositiveInt = 128,
        dropout: NonNegativeFloat = 0.0,
    ):
        super().__init__()
        self.input_shape = input_shape
        self.num_classes = num_classes
        self.channels = channels
        self.hidden = hidden
        self.dropout = dropout
        if len(input_shape) == 2:
            input_shape = (1, *input_shape)
        if len(input_shape) != 3:
            raise ValueError(f"CNN needs image inputs (C, H, W), got shape {tuple(input_shape)}")
        c, h, w = input_shape
        blocks: list[nn.Module] = []
        for out in channels:
            blocks += [nn.Conv2d(c, out, 3, padding=1), nn.ReLU()]
            if min(h, w) >= 2:
                blocks.append(nn.MaxPool2d(2))
                h, w = h // 2, w // 2
            c = out
        blocks += [nn.Flatten(), nn.Linear(c * h * w, hidden), nn.ReLU()]
        if dropout:
            blocks.append(nn.Dropout(dropout))
        self.body = nn.Sequential(*blocks)
        self.head = nn.Linear(hidden, num_classes)
        self._image_shape = tuple(input_shape)

    def features(self, x: Tensor) -> Tensor:
        if x.dim() == 3:
            x = x.unsqueeze(1)
        return self.body(x)
