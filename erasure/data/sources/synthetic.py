"""Gaussian classes, generated from their own seed, optionally with a sensitive attribute."""
from __future__ import annotations

import math

import torch

from erasure.core.params import Fraction, NonNegativeFloat, PositiveInt, Range
from erasure.data.dataset import SINGLE_LABEL, Dataset, DataSource

from typing import Annotated


def correlated_attribute(features: torch.Tensor, bit: torch.Tensor, correlation: float, shift: float,
                         generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """A binary attribute z per row that equals ``bit`` with probability ``correlation``, and the
    features shifted by ``shift`` along a fixed random direction where z is 1."""
    agree = torch.rand(len(features), generator=generator) < correlation
    z = torch.where(agree, bit, 1 - bit)
    direction = torch.randn(features.shape[1], generator=generator)
    return features + shift * z[:, None].float() * direction / direction.norm(), z


class Synthetic(DataSource):
    """``num_classes`` isotropic Gaussian blobs in ``n_features`` dimensions.

    With ``attribute`` set, each sample also gets a binary attribute ``z`` that
    equals ``y mod 2`` with probability ``attribute_correlation`` and shifts the
    features by ``attribute_shift`` along a fixed direction, so ``z`` is
    correlated with both the label and the features (for feature unlearning).
    With ``image_shape`` (e.g. ``[3, 32, 32]``) the samples are images of that shape, with
    ``n_features`` ignored: CIFAR-shaped data for convolutional models without a download.
    The data depends on ``seed`` only, not on the experiment seed.
    """

    task = SINGLE_LABEL

    def __init__(
        self,
        n_samples: Annotated[int, Range(10)] = 1000,
        n_features: PositiveInt = 16,
        num_classes: Annotated[int, Range(2)] = 4,
        class_sep: NonNegativeFloat = 2.0,
        attribute: str | None = None,
        attribute_correlation: Fraction = 0.8,
        attribute_shift: float = 2.0,
        seed: int = 0,
        image_shape: list[PositiveInt] | None = None,
    ):
        self.n_samples = n_samples
        self.n_features = n_features
        self.num_classes = num_classes
        self.class_sep = class_sep
        self.attribute = attribute
        self.attribute_correlation = attribute_correlation
        self.attribute_shift = attribute_shift
        self.seed = seed
        self.image_shape = image_shape

    def load(self) -> Dataset:
        g = torch.Generator().manual_seed(self.seed)
        width = math.prod(self.image_shape) if self.image_shape else self.n_features
        means = torch.randn(self.num_classes, width, generator=g) * self.class_sep
        targets = torch.arange(self.n_samples) % self.num_classes
        targets = targets[torch.randperm(self.n_samples, generator=g)]
        features = means[targets] + torch.randn(self.n_samples, width, generator=g)
        attributes = {}
        if self.attribute:
            features, attributes[self.attribute] = correlated_attribute(
                features, targets % 2, self.attribute_correlation, self.attribute_shift, g)
        if self.image_shape:
            features = features.reshape(self.n_samples, *self.image_shape)
        return Dataset(features, targets, self.num_classes, attributes, name="synthetic")
