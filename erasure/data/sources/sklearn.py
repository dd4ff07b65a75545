"""Small datasets bundled with scikit-learn: they load offline."""
from __future__ import annotations

from typing import Literal

import torch

from erasure.data.dataset import Dataset, DataSource


class SklearnDigits(DataSource):
    """The 1,797 8×8 handwritten digits bundled with scikit-learn, as ``(N, 1, 8, 8)`` in [0, 1]."""

    def __init__(self) -> None:
        pass

    def load(self) -> Dataset:
        from sklearn.datasets import load_digits

        bunch = load_digits()
        images = torch.as_tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0
        targets = torch.as_tensor(bunch.target, dtype=torch.long)
        return Dataset(images, targets, num_classes=10, name="digits")


class SklearnTabular(DataSource):
    """A bundled tabular set (breast_cancer, wine or iris), standardised with train statistics."""

    def __init__(self, name: Literal["breast_cancer", "wine", "iris"] = "iris", standardize: bool = True):
        self.name = name
        self.standardize = standardize

    def load(self) -> Dataset:
        from sklearn import datasets

        bunch = getattr(datasets, f"load_{self.name}")()
        features = torch.as_tensor(bunch.data, dtype=torch.float32)
        targets = torch.as_tensor(bunch.target, dtype=torch.long)
        return Dataset(features, targets, num_classes=int(targets.max()) + 1, name=self.name)

    def prepare(self, dataset: Dataset, train_idx: torch.Tensor) -> Dataset:
        if not self.standardize:
            return dataset
        train = dataset.inputs[train_idx]
        mean, std = train.mean(0), train.std(0).clamp_min(1e-8)
        return Dataset((dataset.inputs - mean) / std, dataset.targets, dataset.num_classes,
                       dataset.attributes, dataset.splits, dataset.name)
