"""torchvision image datasets (MNIST, FashionMNIST, CIFAR10, CIFAR100, SVHN, ...) through torchvision's loaders.

The official train and test sets are concatenated into one :class:`Dataset`
(train first) and recorded as ``splits["train"]`` / ``splits["test"]``, so the
official split is kept. Sets that fit in ``max_memory_gb`` are decoded once into
one tensor (transforms applied once, by DataLoader workers); larger ones stay on
disk as :class:`LazyInputs` and every batch goes through a ``DataLoader`` with
workers and pinned memory (transforms then run per access). One transform serves
every sample, test and forget sets included, so only deterministic transforms
are accepted.
"""
from __future__ import annotations

import math
from typing import Any, Literal

import torch

from erasure.core.errors import ConfigError
from erasure.core.params import NonNegativeInt, PathText, PositiveFloat
from erasure.data.dataset import Dataset, DataSource, LazyInputs

# The standard CIFAR-100 fine → coarse (superclass) table, fine labels in torchvision's order.
CIFAR100_COARSE = [
    4, 1, 14, 8, 0, 6, 7, 7, 18, 3, 3, 14, 9, 18, 7, 11, 3, 9, 7, 11,
    6, 11, 5, 10, 7, 6, 13, 15, 3, 15, 0, 11, 1, 10, 12, 14, 16, 9, 11, 5,
    5, 19, 8, 8, 15, 13, 14, 17, 18, 10, 16, 4, 17, 4, 2, 0, 17, 4, 18, 17,
    10, 3, 2, 12, 12, 16, 12, 1, 9, 19, 2, 10, 0, 1, 16, 12, 9, 13, 15, 13,
    16, 19, 2, 4, 6, 19, 5, 5, 8, 19, 18, 1, 2, 15, 6, 0, 17, 8, 14, 13,
]


RANDOM_TRANSFORMS = {"ColorJitter", "AutoAugment", "RandAugment", "TrivialAugmentWide", "AugMix", "ElasticTransform"}


def build_transform(specs: list[dict[str, Any]] | None) -> Any:
    """``[{"class": "Normalize", "parameters": {...}}, ...]`` → a ``Compose`` of torchvision transforms.

    Names are looked up in ``torchvision.transforms`` only. Without a ``ToTensor``
    (or ``PILToTensor``), one is put first so samples are float tensors.
    """
    from torchvision import transforms

    specs = list(specs or [])
    steps = []
    for i, spec in enumerate(specs):
        name = spec.get("class") or spec.get("name") if isinstance(spec, dict) else None
        cls = getattr(transforms, name, None) if isinstance(name, str) else None
        if not isinstance(cls, type):
            raise ConfigError(f"{name!r} is not a torchvision.transforms class", f"transform[{i}]")
        try:
            steps.append(cls(**spec.get("parameters", {})))
        except TypeError as exc:
            raise ConfigError(f"cannot build {name}: {exc}", f"transform[{i}].parameters") from exc
    if not any(isinstance(s, (transforms.ToTensor, transforms.PILToTensor)) for s in steps):
        steps.insert(0, transforms.ToTensor())
    return transforms.Compose(steps)


def _materialise(base: Any, num_workers: int) -> torch.Tensor:
    from torch.utils.data import DataLoader

    loader = DataLoader(base, batch_size=1024, num_workers=num_workers)
    return torch.cat([x for x, _ in loader]).float()


def _targets(base: Any) -> torch.Tensor:
    for key in ("targets", "labels"):
        values = getattr(base, key, None)
        if values is not None:
            return torch.as_tensor(values, dtype=torch.long)
    return torch.as_tensor([base[i][1] for i in range(len(base))], dtype=torch.long)


class TorchVisionSource(DataSource):
    """A torchvision dataset class (``dataset``) loaded from ``root``, official train/test split kept.

    ``transform``: named ``torchvision.transforms`` with parameters, e.g.
    ``[{"class": "Normalize", "parameters": {"mean": [0.5], "std": [0.5]}}]``; they apply
    to every sample, so random augmentations are refused.
    ``download``: let torchvision download missing files into ``root``.
    CIFAR100 adds attributes ``fine`` (0–99) and ``coarse`` (the 20 superclasses);
    ``target="coarse"`` trains on the superclasses (CIFAR-20), so ``ClassForget``
    forgets a superclass (full-class) and ``GroupForget(attribute="fine")`` one
    sub-class. Sets larger than ``max_memory_gb`` as float32 stay lazy
    (DataLoader with ``num_workers`` workers and pinned memory).
    """

    def __init__(self, dataset: str, root: PathText = "data", download: bool = True,
                 transform: list[dict[str, Any]] | None = None, target: Literal["fine", "coarse"] = "fine",
                 max_memory_gb: PositiveFloat = 4.0, num_workers: NonNegativeInt = 2):
        self.dataset = dataset
        self.root = root
        self.download = download
        self.transform = transform
        self.target = target
        self.max_memory_gb = max_memory_gb
        self.num_workers = num_workers

    def check(self) -> None:
        if self.target == "coarse" and self.dataset != "CIFAR100":
            raise ConfigError("target 'coarse' exists for CIFAR100 only", "target")
        if self.transform is not None:
            for i, spec in enumerate(self.transform):
                name = spec.get("class") or spec.get("name") if isinstance(spec, dict) else None
                if not isinstance(name, str):
                    raise ConfigError('each transform is {"class": NAME, "parameters": {...}}', f"transform[{i}]")
                if name.startswith("Random") or name in RANDOM_TRANSFORMS:
                    raise ConfigError(f"{name} is a random augmentation: the transforms apply to every sample "
                                      "(test and forget sets included), so only deterministic ones are accepted",
                                      f"transform[{i}]")

    def _open(self, train: bool, transform: Any) -> Any:
        import torchvision.datasets as tvd

        cls = getattr(tvd, self.dataset, None)
        if not isinstance(cls, type):
            raise ConfigError(f"torchvision.datasets has no dataset {self.dataset!r}", "dataset")
        try:
            if self.dataset in ("SVHN", "STL10"):
                return cls(self.root, split="train" if train else "test", download=self.download, transform=transform)
            return cls(self.root, train=train, download=self.download, transform=transform)
        except RuntimeError as exc:
            hint = "" if self.download else " (download is false: put the files in root or set download to true)"
            raise RuntimeError(f"{self.dataset} could not be loaded from {self.root!r}: {exc}{hint}") from exc

    def load(self) -> Dataset:
        from torch.utils.data import ConcatDataset

        transform = build_transform(self.transform)
        parts = [self._open(True, transform), self._open(False, transform)]
        n_train, n_test = len(parts[0]), len(parts[1])
        fine = torch.cat([_targets(p) for p in parts])
        base = ConcatDataset(parts)
        shape = tuple(base[0][0].shape)
        size_gb = (n_train + n_test) * math.prod(shape) * 4 / 1e9
        if size_gb <= self.max_memory_gb:
            inputs: Any = _materialise(base, self.num_workers)
        else:
            inputs = LazyInputs(base, self.num_workers, f"{self.dataset}@{self.root}|{self.transform}")
        attributes, targets = {}, fine
        num_classes = len(getattr(parts[0], "classes", [])) or int(fine.max()) + 1
        if self.dataset == "CIFAR100":
            coarse = torch.as_tensor(CIFAR100_COARSE, dtype=torch.long)[fine]
            attributes = {"fine": fine, "coarse": coarse}
            if self.target == "coarse":
                targets, num_classes = coarse, 20
        splits = {"train": torch.arange(n_train), "test": torch.arange(n_train, n_train + n_test)}
        name = self.dataset + ("-20" if self.target == "coarse" else "")
        return Dataset(inputs, targets, num_classes, attributes, splits, name)
