"""torchvision image datasets (MNIST, FashionMNIST, CIFAR10, CIFAR100, SVHN, ...) through torchvision's loaders.

The official train and test sets are concatenated into one :class:`Dataset`
(train first) and recorded as ``splits["train"]`` / ``splits["test"]``, so the
official split is kept. Sets that fit in ``max_memory_gb`` are decoded once into
one tensor (transforms applied once, by DataLoader workers); larger ones stay on
disk as :class:`LazyInputs` and every batch goes through a ``DataLoader`` with
workers and pinned memory (transforms then run per access). One transform serves
every sample, test and forget sets included, so only deterministic transforms
are accepted; random ones belong to ``training.augment`` (:mod:`erasure.data.augment`).
"""
from __future__ import annotations

import math
from typing import Any

import torch

from erasure.core.errors import ConfigError, closest
from erasure.core.params import NonNegativeInt, PathText, PositiveFloat
from erasure.data.dataset import Dataset, DataSource, LazyInputs

# Classes of the datasets whose label set is fixed (checked by --validate without loading).
KNOWN_CLASSES = {"MNIST": 10, "FashionMNIST": 10, "KMNIST": 10, "CIFAR10": 10, "SVHN": 10, "STL10": 10}

# The standard CIFAR-100 fine → coarse (superclass) table, fine labels in torchvision's order.
CIFAR100_COARSE = [
    4, 1, 14, 8, 0, 6, 7, 7, 18, 3, 3, 14, 9, 18, 7, 11, 3, 9, 7, 11,
    6, 11, 5, 10, 7, 6, 13, 15, 3, 15, 0, 11, 1, 10, 12, 14, 16, 9, 11, 5,
    5, 19, 8, 8, 15, 13, 14, 17, 18, 10, 16, 4, 17, 4, 2, 0, 17, 4, 18, 17,
    10, 3, 2, 12, 12, 16, 12, 1, 9, 19, 2, 10, 0, 1, 16, 12, 9, 13, 15, 13,
    16, 19, 2, 4, 6, 19, 5, 5, 8, 19, 18, 1, 2, 15, 6, 0, 17, 8, 14, 13,
]


# CelebA's 40 binary attributes, as named in list_attr_celeba.txt.
CELEBA_ATTRIBUTES = (
    "5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald", "Bangs", "Big_Lips", "Big_Nose",
    "Black_Hair", "Blond_Hair", "Blurry", "Brown_Hair", "Bushy_Eyebrows", "Chubby", "Double_Chin", "Eyeglasses",
    "Goatee", "Gray_Hair", "Heavy_Makeup", "High_Cheekbones", "Male", "Mouth_Slightly_Open", "Mustache", "Narrow_Eyes",
    "No_Beard", "Oval_Face", "Pale_Skin", "Pointy_Nose", "Receding_Hairline", "Rosy_Cheeks", "Sideburns", "Smiling",
    "Straight_Hair", "Wavy_Hair", "Wearing_Earrings", "Wearing_Hat", "Wearing_Lipstick", "Wearing_Necklace",
    "Wearing_Necktie", "Young",
)
SPLIT_ARGUMENT = ("SVHN", "STL10", "CelebA")  # datasets opened with split="train"/"test" rather than train=True/False

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


def check_transform(specs: list[dict[str, Any]] | None) -> None:
    """Refuse malformed specs and random augmentations (one transform serves every sample, test and forget sets included)."""
    for i, spec in enumerate(specs or []):
        name = spec.get("class") or spec.get("name") if isinstance(spec, dict) else None
        if not isinstance(name, str):
            raise ConfigError('each transform is {"class": NAME, "parameters": {...}}', f"transform[{i}]")
        if name.startswith("Random") or name in RANDOM_TRANSFORMS:
            raise ConfigError(f"{name} is a random augmentation: the source's transforms apply once to every "
                              "sample (test and forget sets included), so only deterministic ones are accepted "
                              f"here; train-time augmentation belongs to the recipe: "
                              f'"training": {{"augment": [{{"class": "{name}", "parameters": {{...}}}}]}}',
                              f"transform[{i}]")


def image_inputs(base: Any, description: str, max_memory_gb: float, num_workers: int) -> Any:
    """The images of a map-style dataset (item ``i`` = ``(image, label)`` or an image) as one tensor
    when they fit in ``max_memory_gb`` as float32 (decoded once by DataLoader workers), else :class:`LazyInputs`."""
    from torch.utils.data import DataLoader

    first = base[0]
    shape = tuple((first[0] if isinstance(first, (tuple, list)) else first).shape)
    if len(base) * math.prod(shape) * 4 / 1e9 > max_memory_gb:
        return LazyInputs(base, num_workers, description)
    try:
        batches = [x[0] if isinstance(x, (tuple, list)) else x
                   for x in DataLoader(base, batch_size=1024, num_workers=num_workers)]
    except RuntimeError as exc:
        if "stack expects each tensor to be equal size" not in str(exc):
            raise
        raise RuntimeError(f"{description}: the images differ in size ({exc}); add a Resize transform, "
                           'e.g. {"class": "Resize", "parameters": {"size": [64, 64]}}') from exc
    return torch.cat(batches).float()


def _targets(base: Any) -> torch.Tensor:
    for key in ("targets", "labels"):
        values = getattr(base, key, None)
        if values is not None:
            return torch.as_tensor(values, dtype=torch.long)
    return torch.as_tensor([base[i][1] for i in range(len(base))], dtype=torch.long)


def celeba_labels(parts: list[Any], target: str) -> tuple[dict[str, torch.Tensor], torch.Tensor, int]:
    """(attributes, targets, number of classes) of torchvision ``CelebA`` splits, read from its label files.

    Attributes: ``identity`` (CelebA's person numbers, as in ``identity_CelebA.txt``) and the 40
    binary attributes (0/1) under their file names. ``target`` is ``identity`` (persons coded
    0..K-1 in increasing number) or an attribute name (two classes).
    """
    names = [n for n in parts[0].attr_names if n]
    attr = torch.cat([p.attr for p in parts]).long()
    attributes = {name: attr[:, i] for i, name in enumerate(names)}
    attributes["identity"] = torch.cat([p.identity[:, 0] for p in parts]).long()
    if target == "identity":
        persons, codes = torch.unique(attributes["identity"], return_inverse=True)
        return attributes, codes, len(persons)
    if target not in attributes:
        raise ConfigError(f"CelebA has no attribute {target!r} (attributes: {', '.join(names)})", "target")
    return attributes, attributes[target], 2


class TorchVisionSource(DataSource):
    """A torchvision dataset class (``dataset``) loaded from ``root``, official train/test split kept.

    ``transform``: named ``torchvision.transforms`` with parameters, e.g.
    ``[{"class": "Normalize", "parameters": {"mean": [0.5], "std": [0.5]}}]``; they apply
    to every sample, so random augmentations are refused here (train-time augmentation is the
    recipe's ``training.augment``, applied per training batch).
    ``download``: let torchvision download missing files into ``root``.
    CIFAR100 adds attributes ``fine`` (0–99) and ``coarse`` (the 20 superclasses);
    ``target="coarse"`` trains on the superclasses (CIFAR-20), so ``ClassForget``
    forgets a superclass (full-class) and ``GroupForget(attribute="fine")`` one
    sub-class. CelebA (its ``train`` and ``test`` partitions; ``valid`` is left out) adds
    attributes ``identity`` (the person's number) and its 40 binary attributes (``Smiling``,
    ``Male``...), so ``GroupForget(attribute="identity", values=[...])`` forgets persons;
    ``target`` is then ``identity`` or one attribute name. Sets larger than ``max_memory_gb``
    as float32 stay lazy (DataLoader with ``num_workers`` workers and pinned memory).
    https://pytorch.org/vision/stable/datasets.html
    """

    def __init__(self, dataset: str, root: PathText = "data", download: bool = True,
                 transform: list[dict[str, Any]] | None = None, target: str = "fine",
                 max_memory_gb: PositiveFloat = 4.0, num_workers: NonNegativeInt = 2):
        self.dataset = dataset
        self.root = root
        self.download = download
        self.transform = transform
        self.target = target
        self.max_memory_gb = max_memory_gb
        self.num_workers = num_workers

    def check(self) -> None:
        if self.dataset == "CelebA":
            if self.target != "identity" and self.target not in CELEBA_ATTRIBUTES:
                close = closest(self.target, CELEBA_ATTRIBUTES, n=3)
                hint = f" (did you mean {' or '.join(close)}?)" if close else ", e.g. 'Smiling' or 'Male'"
                raise ConfigError(f"CelebA's target is 'identity' or one of its 40 attributes{hint}; got {self.target!r}",
                                  "target")
        elif self.target == "coarse" and self.dataset != "CIFAR100":
            raise ConfigError("target 'coarse' exists for CIFAR100 only", "target")
        elif self.target not in ("fine", "coarse"):
            raise ConfigError(f"target is 'fine' (the dataset's labels) or, for CIFAR100, 'coarse'; got {self.target!r} "
                              "('identity' and attribute names are for CelebA)", "target")
        check_transform(self.transform)

    def _open(self, train: bool, transform: Any) -> Any:
        import torchvision.datasets as tvd

        cls = getattr(tvd, self.dataset, None)
        if not isinstance(cls, type):
            raise ConfigError(f"torchvision.datasets has no dataset {self.dataset!r}", "dataset")
        which = {"split": "train" if train else "test"} if self.dataset in SPLIT_ARGUMENT else {"train": train}
        if self.dataset == "CelebA":
            which["target_type"] = "identity"  # labels come from its files (celeba_labels), not per image
        try:
            return cls(self.root, download=self.download, transform=transform, **which)
        except RuntimeError as exc:
            hint = "" if self.download else " (download is false: put the files in root or set download to true)"
            raise RuntimeError(f"{self.dataset} could not be loaded from {self.root!r}: {exc}{hint}") from exc

    def known_num_classes(self) -> int | None:
        if self.dataset == "CIFAR100":
            return 20 if self.target == "coarse" else 100
        return KNOWN_CLASSES.get(self.dataset) if self.target == "fine" else None

    def load(self) -> Dataset:
        from torch.utils.data import ConcatDataset

        transform = build_transform(self.transform)
        parts = [self._open(True, transform), self._open(False, transform)]
        n_train, n_test = len(parts[0]), len(parts[1])
        inputs = image_inputs(ConcatDataset(parts), f"{self.dataset}@{self.root}|{self.transform}",
                              self.max_memory_gb, self.num_workers)
        splits = {"train": torch.arange(n_train), "test": torch.arange(n_train, n_train + n_test)}
        if self.dataset == "CelebA":
            attributes, targets, num_classes = celeba_labels(parts, self.target)
            return Dataset(inputs, targets, num_classes, attributes, splits, f"CelebA-{self.target}")
        fine = torch.cat([_targets(p) for p in parts])
        attributes, targets = {}, fine
        num_classes = len(getattr(parts[0], "classes", [])) or int(fine.max()) + 1
        if self.dataset == "CIFAR100":
            coarse = torch.as_tensor(CIFAR100_COARSE, dtype=torch.long)[fine]
            attributes = {"fine": fine, "coarse": coarse}
            if self.target == "coarse":
                targets, num_classes = coarse, 20
        name = self.dataset + ("-20" if self.target == "coarse" else "")
        return Dataset(inputs, targets, num_classes, attributes, splits, name)
