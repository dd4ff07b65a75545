"""Forget specifications: which training samples (or which feature) to unlearn.

``select`` returns indices into the dataset, a subset of the training indices,
drawn with the experiment seed's generator. A spec that raises
:class:`~erasure.core.errors.ConfigError` gives a path relative to its
``parameters``; the runner prefixes ``data.forget.parameters``.

Two hooks serve the hard forget sets (:mod:`erasure.data.memorization`, ``worst_case``, ``subpopulation``,
``backdoor``):

* a spec with ``needs_original = True`` chooses by the original model (its losses, its
  features, its training run); ``select`` then also receives ``original``, an
  :class:`OriginalProbe` that the runner builds (the data layer never trains a model);
* ``modify_data`` returns the data with the forget set altered (a backdoor trigger and label);
  the original trains on what it returns, gold on its retain set.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from erasure.core.errors import ConfigError
from erasure.core.params import NonNegativeInt, OpenFraction, PositiveInt, Range
from erasure.core.paths import NotRegularFile, check_path_text, read_regular
from erasure.core.registry import Component
from erasure.data.dataset import Dataset

from typing import Annotated, ClassVar, Protocol

PartialFraction = Annotated[float, Range(0, 1, low_inclusive=False)]


class OriginalProbe(Protocol):
    """What a forget spec with ``needs_original`` may ask of the original model: the model of the
    seed trained on the training split with the config's recipe (the runner's cached original).
    Every method takes dataset indices (a subset of the training split for the history)."""

    def logits(self, index: Tensor) -> Tensor:
        """The original's logits ``(len(index), C)``."""

    def features(self, index: Tensor) -> Tensor:
        """The original's penultimate features ``(len(index), D)`` (models with ``features``)."""

    def training_history(self, index: Tensor) -> dict[str, Tensor]:
        """Per epoch of the original's training run, the true-class softmax confidence
        (``"confidence"``) and the correctness (``"correct"``) of each sample: ``(epochs, len(index))``."""


class ForgetSpec(Component, kind="forget"):
    """Chooses the forget set. ``removes_samples`` is False for feature unlearning.

    ``needs_original``: ``select`` reads the original model and takes an ``original``
    (:class:`OriginalProbe`) keyword. ``modify_data`` may alter the forget samples (see the module)."""

    removes_samples = True
    needs_original: ClassVar[bool] = False

    def select(self, dataset: Dataset, train_idx: Tensor, rng: np.random.Generator) -> Tensor:
        raise NotImplementedError

    def modify_data(self, dataset: Dataset, forget_idx: Tensor) -> Dataset:
        """The data that the original, gold and the unlearners train on once ``forget_idx`` is
        chosen; the same object (no change) by default."""
        return dataset

    def test_indices(self, dataset: Dataset, test_idx: Tensor) -> Tensor | None:
        """Test samples that belong to what is forgotten (forgotten classes or groups), or None."""
        return None

    def for_seed(self, seed: int) -> "ForgetSpec":
        """This spec for one experiment seed (e.g. a file name with ``{seed}`` filled in); itself by default."""
        return self

    def check_num_classes(self, num_classes: int) -> None:
        """Refuse, before any data is loaded, what cannot fit a source of ``num_classes`` classes."""


def _values_in(values: Tensor, allowed: list[int]) -> Tensor:
    return torch.isin(values, torch.as_tensor(allowed, device=values.device))


def _subsample(index: Tensor, fraction: float, rng: np.random.Generator) -> Tensor:
    if fraction >= 1.0:
        return index
    keep = int(round(fraction * len(index)))
    chosen = rng.choice(len(index), size=keep, replace=False)
    return index[torch.as_tensor(np.sort(chosen), device=index.device)]


class ClassForget(ForgetSpec):
    """Forget every training sample of ``classes`` (or a random ``fraction`` of each).

    On multi-label data a class is a label: the samples that carry any of ``classes`` are
    forgotten, and ``forget_test`` / ``retain_test`` are the test samples with / without one.
    """

    def __init__(self, classes: list[NonNegativeInt], fraction: PartialFraction = 1.0):
        self.classes = classes
        self.fraction = fraction

    def check(self) -> None:
        if not self.classes:
            raise ConfigError("expected at least one class to forget, got []", "classes")

    def check_num_classes(self, num_classes: int) -> None:
        outside = [c for c in self.classes if c >= num_classes]
        if outside:
            raise ConfigError(f"class {outside[0]} does not exist: the data has {num_classes} classes "
                              f"(0 to {num_classes - 1})", "classes")

    def select(self, dataset: Dataset, train_idx: Tensor, rng: np.random.Generator) -> Tensor:
        if dataset.multi_label:
            present = set(torch.nonzero(dataset.targets[train_idx].any(0)).flatten().tolist())
        else:
            present = set(torch.unique(dataset.targets[train_idx]).tolist())
        missing = [c for c in self.classes if c not in present]
        if missing:
            what, plural = ("label", "labels") if dataset.multi_label else ("class", "classes")
            raise ConfigError(
                f"{what} {missing[0]} is not in the training data of {dataset.name} ({plural} present: {sorted(present)})",
                "classes",
            )
        chosen = []
        for c in sorted(set(self.classes)):
            members = train_idx[_has_class(dataset.targets[train_idx], [c])]
            chosen.append(_subsample(members, self.fraction, rng))
        return torch.unique(torch.cat(chosen))  # sorted; a sample with several forgotten labels counts once

    def test_indices(self, dataset: Dataset, test_idx: Tensor) -> Tensor:
        return test_idx[_has_class(dataset.targets[test_idx], self.classes)]


def _has_class(targets: Tensor, classes: list[int]) -> Tensor:
    """Which samples belong to one of ``classes``: their class is one, or (multi-label) they carry one."""
    if targets.dim() == 2:
        return targets[:, classes].bool().any(1)
    return _values_in(targets, classes)


class SizedForget(ForgetSpec, register=False):
    """Base of the specs that forget a ``fraction`` or a ``count`` of the training set (exactly one)."""

    fraction: float | None
    count: int | None

    def check(self) -> None:
        if (self.fraction is None) == (self.count is None):
            raise ConfigError("give exactly one of 'fraction' or 'count'", "fraction")

    def count_of(self, n: int) -> int:
        """How many of ``n`` training samples to forget (a config error if none would be left)."""
        count = self.count if self.count is not None else int(round(self.fraction * n))
        if count >= n:
            raise ConfigError(f"count {count} leaves no retain data (the training set has {n} samples)", "count")
        return count


class RandomForget(SizedForget):
    """Forget a uniformly random ``fraction`` or ``count`` of the training set, optionally per class."""

    def __init__(self, fraction: OpenFraction | None = None, count: PositiveInt | None = None, stratified: bool = False):
        self.fraction = fraction
        self.count = count
        self.stratified = stratified

    def select(self, dataset: Dataset, train_idx: Tensor, rng: np.random.Generator) -> Tensor:
        n = len(train_idx)
        count = self.count_of(n)
        if self.stratified and dataset.multi_label:
            raise ConfigError(f"stratified sampling needs one class per sample, but {dataset.name} is multi-label; "
                              "set \"stratified\": false", "stratified")
        if not self.stratified:
            chosen = np.sort(rng.choice(n, size=count, replace=False))
            return train_idx[torch.as_tensor(chosen, device=train_idx.device)]
        from sklearn.model_selection import train_test_split

        labels = dataset.targets[train_idx].cpu().numpy()
        positions = np.arange(n)
        _, chosen = train_test_split(
            positions, test_size=count, stratify=labels, random_state=int(rng.integers(2**31 - 1))
        )
        return train_idx[torch.as_tensor(np.sort(chosen), device=train_idx.device)]


#: Larger index files are refused (a million indices as JSON take about 8 MB).
MAX_INDEX_FILE_BYTES = 256 << 20
#: Indices are int64 tensors.
MAX_INDEX = 2 ** 63 - 1


def read_indices(path: str, key: str) -> list[int]:
    """Sample indices from a file: ``.npy`` (a 1-D integer array, read without pickle) or ``.json``
    (a list, or an object whose ``key`` holds one, like the ``indices/seed<N>.json`` a run writes).
    The file must be a regular file (never a FIFO or a device) of at most ``MAX_INDEX_FILE_BYTES``."""
    import io
    import json
    from pathlib import Path

    file, data = Path(path), None
    try:
        raw = read_regular(file, MAX_INDEX_FILE_BYTES)
        if file.suffix == ".npy":
            values = np.load(io.BytesIO(raw), allow_pickle=False)
            if values.ndim != 1 or not np.issubdtype(values.dtype, np.integer):
                raise ConfigError(f"{file} holds a {values.dtype} array of shape {values.shape}; expected 1-D integers", "path")
            values = values.tolist()
        else:
            data = json.loads(raw.decode("utf-8-sig"))
            values = data.get(key) if isinstance(data, dict) else data
    except NotRegularFile as exc:
        raise ConfigError(f"cannot read indices: {exc}", "path") from exc
    except OSError as exc:
        raise ConfigError(f"cannot read indices from {file}: {exc.strerror or exc}", "path") from exc
    except (ValueError, EOFError, RecursionError) as exc:  # UnicodeDecodeError and JSONDecodeError too
        raise ConfigError(f"{file} is not valid JSON or .npy: {exc}", "path") from exc
    if not isinstance(values, list) or not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= MAX_INDEX
                                               for v in values):
        where = f"its key {key!r}" if isinstance(data, dict) else "it"
        raise ConfigError(f"{file}: expected {where} to be a list of non-negative integer indices "
                          f"(each below 2**63)", "path")
    return values


class IndexForget(ForgetSpec):
    """Forget the samples at these dataset indices (each must lie in the training split): listed
    in ``indices``, or read from ``path`` (``.npy``, or ``.json`` with the list under ``key``;
    ``{seed}`` in the path is the experiment seed). A run writes ``indices/seed<N>.json`` beside
    its results, so another run, or another framework, forgets exactly the same samples."""

    def __init__(self, indices: list[NonNegativeInt] | None = None, path: str | None = None, key: str = "forget"):
        self.indices = indices
        self.path = path
        self.key = key

    def check(self) -> None:
        if (self.indices is None) == (self.path is None):
            raise ConfigError("give exactly one of 'indices' or 'path'", "indices")
        if self.path is not None:
            check_path_text(self.path, "path")
        if self.indices is not None and any(i > MAX_INDEX for i in self.indices):
            raise ConfigError("expected indices below 2**63", "indices")

    def for_seed(self, seed: int) -> "IndexForget":
        """The spec with ``{seed}`` in its path replaced (other braces are plain characters)."""
        if self.path is None or "{seed}" not in self.path:
            return self
        return IndexForget(path=self.path.replace("{seed}", str(seed)), key=self.key)

    def select(self, dataset: Dataset, train_idx: Tensor, rng: np.random.Generator) -> Tensor:
        indices = self.indices if self.path is None else read_indices(self.path, self.key)
        wanted = torch.as_tensor(sorted(set(indices)), dtype=torch.long, device=train_idx.device)
        outside = wanted[~torch.isin(wanted, train_idx)]
        if len(outside):
            raise ConfigError(
                f"index {int(outside[0])} is not in the training split "
                f"({len(train_idx)} training samples of {len(dataset)})",
                "path" if self.path else "indices",
            )
        return wanted


class GroupForget(ForgetSpec):
    """Forget the training samples whose per-sample ``attribute`` takes one of ``values``."""

    def __init__(self, attribute: str, values: list[int]):
        self.attribute = attribute
        self.values = values

    def _attribute(self, dataset: Dataset) -> Tensor:
        if self.attribute not in dataset.attributes:
            known = ", ".join(sorted(dataset.attributes)) or "none"
            raise ConfigError(f"{dataset.name} has no attribute {self.attribute!r} (attributes: {known})", "attribute")
        return dataset.attributes[self.attribute]

    def select(self, dataset: Dataset, train_idx: Tensor, rng: np.random.Generator) -> Tensor:
        values = self._attribute(dataset)
        present = set(torch.unique(values[train_idx]).tolist())
        missing = [v for v in self.values if v not in present]
        if missing:
            raise ConfigError(
                f"value {missing[0]} of attribute {self.attribute!r} does not occur in the training data "
                f"(values present: {sorted(present)[:20]})",
                "values",
            )
        return train_idx[_values_in(values[train_idx], self.values)]

    def test_indices(self, dataset: Dataset, test_idx: Tensor) -> Tensor:
        return test_idx[_values_in(self._attribute(dataset)[test_idx], self.values)]


class FeatureForget(ForgetSpec):
    """Remove the information of a per-sample ``attribute`` from the data; no sample is removed."""

    removes_samples = False

    def __init__(self, attribute: str):
        self.attribute = attribute

    def select(self, dataset: Dataset, train_idx: Tensor, rng: np.random.Generator) -> Tensor:
        if self.attribute not in dataset.attributes:
            known = ", ".join(sorted(dataset.attributes)) or "none"
            raise ConfigError(f"{dataset.name} has no attribute {self.attribute!r} (attributes: {known})", "attribute")
        return train_idx[:0]
