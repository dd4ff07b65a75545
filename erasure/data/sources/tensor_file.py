"""Data already prepared as tensors: one ``.pt``, ``.safetensors`` or ``.npz`` file of named arrays."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from erasure.core.errors import ConfigError
from erasure.core.params import PathText, PositiveInt
from erasure.core.paths import check_regular_file
from erasure.data.dataset import Dataset, DataSource, check_num_classes

SUFFIXES = (".pt", ".pth", ".safetensors", ".npz")


def read_tensors(path: str) -> dict[str, Tensor]:
    """The named arrays of ``path``, read without unpickling anything: a torch file with
    ``weights_only=True`` (a dict of tensors), a safetensors file, or a numpy ``.npz`` with
    ``allow_pickle=False``."""
    suffix = Path(path).suffix.lower()
    try:
        if suffix == ".safetensors":
            from safetensors.torch import load_file

            tensors: Any = load_file(path)
        elif suffix == ".npz":
            import numpy as np

            with np.load(path, allow_pickle=False) as arrays:
                tensors = {k: torch.from_numpy(arrays[k].copy()) for k in arrays.files}
        else:
            tensors = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise RuntimeError(f"cannot read {path}: {type(exc).__name__}: {exc}") from exc
    if not isinstance(tensors, dict) or not all(isinstance(v, Tensor) for v in tensors.values()):
        raise RuntimeError(f"{path} holds no mapping of names to tensors (save a dict such as {{'x': ..., 'y': ...}})")
    return tensors


class TensorFileSource(DataSource):
    """Samples stored as named tensors in one file: ``{"x": inputs (N, ...), "y": labels (N,)}``.

    The file is ``.pt``/``.pth`` (``torch.save`` of a dict of tensors, read with
    ``weights_only=True``), ``.safetensors`` or ``.npz`` (read with ``allow_pickle=False``): nothing
    in it is executed. ``inputs`` and ``targets`` name the arrays of inputs (floats, or token ids
    as integers) and labels (class indices ``(N,)``, or a 0/1 matrix ``(N, L)`` for multi-label
    data); ``num_classes`` defaults to the largest label + 1. ``attributes`` name per-sample
    arrays (for ``GroupForget``/``FeatureForget``); ``test`` names a boolean array that marks the
    official test samples (without it ``data.split`` applies). The counterpart of ERASURE's
    ``TorchFileDataSource``, which unpickles a whole dataset object instead.
    """

    def __init__(self, path: PathText, inputs: str = "x", targets: str = "y",
                 attributes: list[str] = [],  # noqa: B006 (read-only default, stored as given)
                 test: str | None = None, num_classes: PositiveInt | None = None):
        self.path = path
        self.inputs = inputs
        self.targets = targets
        self.attributes = attributes
        self.test = test
        self.num_classes = num_classes

    def check(self) -> None:
        if not self.path.lower().endswith(SUFFIXES):
            raise ConfigError(f"{self.path!r} is not one of {', '.join(SUFFIXES)}", "path")
        names = [self.inputs, self.targets, *self.attributes] + ([self.test] if self.test else [])
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ConfigError(f"{', '.join(map(repr, repeated))} named for two roles", "attributes")

    def load(self) -> Dataset:
        check_regular_file(self.path, "path", "tensor file")  # never a FIFO or a device
        tensors = read_tensors(self.path)
        for key in ("inputs", "targets", "attributes", "test"):
            wanted = getattr(self, key)
            for name in wanted if isinstance(wanted, list) else [wanted] if wanted else []:
                if name not in tensors:
                    raise ConfigError(f"{self.path} has no array {name!r} (arrays: {', '.join(sorted(tensors))})", key)
        inputs = tensors[self.inputs]
        inputs = inputs.float() if inputs.is_floating_point() or inputs.dtype == torch.bool else inputs.long()
        targets = tensors[self.targets]
        if targets.dim() == 2:
            num_classes = self.num_classes or targets.shape[1]
        else:
            fractional = targets.is_floating_point() and not bool((targets == targets.round()).all())
            if targets.dim() != 1 or fractional:
                raise ConfigError(f"{self.path}: {self.targets!r} must be class indices (N,) or a 0/1 matrix (N, L), "
                                  f"got {str(targets.dtype).removeprefix('torch.')} {tuple(targets.shape)}", "targets")
            targets = targets.long()
            if len(targets) and int(targets.min()) < 0:
                raise ConfigError(f"{self.path}: {self.targets!r} has negative labels", "targets")
            num_classes = self.num_classes or int(targets.max()) + 1
            check_num_classes(num_classes, "targets", f"{self.path}: {self.targets!r}")
            if int(targets.max()) >= num_classes:
                raise ConfigError(f"{self.path}: label {int(targets.max())} but num_classes is {num_classes}", "num_classes")
        attributes = {name: tensors[name].flatten() if tensors[name].dim() == 2 and tensors[name].shape[1] == 1
                      else tensors[name] for name in self.attributes}
        splits = {}
        if self.test is not None:
            marks = tensors[self.test].flatten().bool()
            if len(marks) != len(targets):
                raise ConfigError(f"{self.path}: {self.test!r} has {len(marks)} values for {len(targets)} samples", "test")
            if bool(marks.all()) or not bool(marks.any()):
                raise ConfigError(f"{self.path}: {self.test!r} must mark some but not all of the {len(targets)} samples "
                                  "as test samples", "test")
            splits = {"train": (~marks).nonzero().flatten(), "test": marks.nonzero().flatten()}
        try:
            return Dataset(inputs, targets, num_classes, attributes, splits, name=Path(self.path).stem)
        except ValueError as exc:  # lengths or a label matrix that do not fit
            raise ConfigError(f"{self.path}: {exc}", "path") from exc
