"""Train-time augmentation (``training.augment``): torchvision ``transforms.v2`` applied per batch.

A list of transform specs, e.g. the standard CIFAR recipe
``[{"class": "RandomCrop", "parameters": {"size": 32, "padding": 4}}, {"class": "RandomHorizontalFlip"}]``,
built through the factory (only ``transforms.v2.Transform`` subclasses) and applied, in order,
to the inputs of each training batch (never the targets), on the device the batch lives on.
Every random draw comes from the generator it is given (the job's), so a job gives the same
values under any executor and on any rerun.

* ``RandomCrop`` (constant, edge or reflect padding), ``RandomHorizontalFlip`` and
  ``RandomVerticalFlip`` run batched, as in the fast CIFAR trainers (KellerJordan/cifar10-airbench):
  one padded copy of the batch, per-sample offsets and flip decisions drawn from the generator,
  one gather. They draw what torchvision draws (offsets uniform over the valid range, a flip with
  probability ``p``), from our generator instead of the global one.
* Every other transform runs once per sample (its own random parameters per image, as a
  ``DataLoader`` applies it), under the global RNG forked and seeded from the generator.

Transforms see the values the data holds: with a normalising source transform, a constant
crop padding ``fill`` of 0 pads with the mean colour, and photometric transforms
(``ColorJitter``, ``RandAugment``) that expect values in [0, 1] need data kept in [0, 1].
Evaluation, forget-set scoring and membership attacks never see augmented inputs: they batch the
partitions directly; only training loops (the trainer, and a training unlearner with its
``augment`` option on) go through :func:`augmented`.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from erasure.core.factory import instantiate
from erasure.data.dataset import Dataset

#: torchvision's padding modes for tensors -> torch.nn.functional.pad's (``symmetric`` has none: per sample).
PAD_MODES = {"edge": "replicate", "reflect": "reflect"}


class Augmentation:
    """The transforms of ``specs`` (already validated ``{"class", "parameters"}`` dicts), applied
    to image batches ``(N, C, H, W)`` with :meth:`__call__`."""

    def __init__(self, specs: list[dict[str, Any]]):
        self.specs = specs
        self.steps = [instantiate(spec, "transform") for spec in specs]

    def __bool__(self) -> bool:
        return bool(self.steps)

    def __call__(self, x: Any, generator: torch.Generator) -> Tensor:
        if not isinstance(x, Tensor) or x.dim() != 4 or not x.is_floating_point():
            what = f"a tensor of shape {tuple(x.shape)} ({x.dtype})" if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"training.augment transforms images: it needs float batches (N, C, H, W), got {what}")
        for step in self.steps:
            x = apply(step, x, generator)
        return x


def apply(transform: Any, x: Tensor, generator: torch.Generator) -> Tensor:
    """One transform on a batch: batched where :func:`batched` knows it, else per sample."""
    out = batched(transform, x, generator)
    return out if out is not None else per_sample(transform, x, generator)


def batched(transform: Any, x: Tensor, generator: torch.Generator) -> Tensor | None:
    """Crop-with-padding and flips as batched tensor ops; None for transforms this does not cover."""
    from torchvision.transforms import v2

    kind = type(transform)
    if kind in (v2.RandomHorizontalFlip, v2.RandomVerticalFlip):
        flip = (torch.rand(len(x), generator=generator) < transform.p).to(x.device)
        dim = -1 if kind is v2.RandomHorizontalFlip else -2
        return torch.where(flip.view(-1, 1, 1, 1), x.flip(dim), x)
    if kind is v2.RandomCrop and (transform.padding_mode == "constant" or transform.padding_mode in PAD_MODES):
        left, top, right, bottom = transform.padding or [0, 0, 0, 0]
        height, width = transform.size
        if x.shape[-2] + top + bottom < height or x.shape[-1] + left + right < width:
            return None  # pad_if_needed (or an error): torchvision's own code path
        return random_crop(x, (height, width), (left, top, right, bottom), transform.fill, transform.padding_mode, generator)
    return None


def random_crop(x: Tensor, size: tuple[int, int], padding: tuple[int, int, int, int], fill: Any, mode: str,
                generator: torch.Generator) -> Tensor:
    """A random ``size`` window of each padded image (``padding`` = left, top, right, bottom), the
    top-left corner of each drawn uniformly from the valid range, all in one gather."""
    n, c, h, w = x.shape
    left, top, right, bottom = padding
    if mode == "constant":
        value = fill.get(Tensor, fill.get(torch.Tensor, 0)) if isinstance(fill, dict) else fill
        value = torch.as_tensor(0 if value is None else value, dtype=x.dtype, device=x.device)
        padded = value.reshape(1, -1, 1, 1).expand(n, c, h + top + bottom, w + left + right).clone()
        padded[:, :, top : top + h, left : left + w] = x
    else:
        padded = F.pad(x, (left, right, top, bottom), mode=PAD_MODES[mode])
    height, width = size
    rows = torch.randint(0, padded.shape[-2] - height + 1, (n, 1), generator=generator)
    cols = torch.randint(0, padded.shape[-1] - width + 1, (n, 1), generator=generator)
    rows = (rows + torch.arange(height)).to(x.device)
    cols = (cols + torch.arange(width)).to(x.device)
    samples = torch.arange(n, device=x.device).view(n, 1, 1, 1)
    channels = torch.arange(c, device=x.device).view(1, c, 1, 1)
    return padded[samples, channels, rows.view(n, 1, height, 1), cols.view(n, 1, 1, width)]


def per_sample(transform: Any, x: Tensor, generator: torch.Generator) -> Tensor:
    """``transform`` on each image of the batch, with the global RNG forked and seeded from ``generator``."""
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    with torch.random.fork_rng(devices=[x.device] if x.device.type == "cuda" else []):
        torch.manual_seed(seed)
        return torch.stack([transform(image) for image in x])


class AugmentedDataset(Dataset):
    """A view of a :class:`Dataset` whose :meth:`take` (a training batch) is augmented; same tensors,
    no copy. Built by :func:`augmented` only."""

    augmentation: Augmentation
    generator: torch.Generator

    def take(self, index: Tensor) -> Any:
        return self.augment(super().take(index))

    def augment(self, x: Any) -> Any:
        return self.augmentation(x, self.generator)


def augmented(dataset: Dataset, augmentation: Augmentation, generator: torch.Generator) -> Dataset:
    """``dataset`` seen through ``augmentation`` with ``generator``'s draws (the same object when
    there is nothing to apply or it is augmented already). O(1): the tensors are shared."""
    if not augmentation or isinstance(dataset, AugmentedDataset):
        return dataset
    view = AugmentedDataset.__new__(AugmentedDataset)
    view.__dict__.update(dataset.__dict__)
    view.augmentation, view.generator = augmentation, generator
    return view


def original(dataset: Dataset) -> Dataset:
    """The dataset without augmentation (for measurements inside a training loop)."""
    if not isinstance(dataset, AugmentedDataset):
        return dataset
    plain = Dataset.__new__(Dataset)
    plain.__dict__.update({k: v for k, v in dataset.__dict__.items() if k not in ("augmentation", "generator")})
    return plain
