"""Train/test split, forget selection and batching by index slicing.

:class:`Partitions` holds index tensors into one :class:`Dataset`:
``train``, ``test``, ``forget``, ``retain`` (= train − forget) and, for class
and group forgetting, ``forget_test`` / ``retain_test``. Data that fits lives
on the device and a batch is one fancy-index, with no per-sample Python; lazy
image sets are batched by a ``DataLoader`` (see :class:`~erasure.data.dataset.LazyInputs`).

Node graphs: forgetting nodes removes their edges. ``Partitions.dataset`` is the
graph after the request (edges incident to a forget node removed, the nodes
kept isolated) that gold, unlearners and evaluators use; the original model
trains on :meth:`Partitions.before_forget`, the graph as it was.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch import Tensor

from erasure.core.errors import ConfigError, join_path
from erasure.core.params import OpenFraction
from erasure.data.dataset import Dataset
from erasure.data.forget import ForgetSpec


@dataclass
class Split:
    """How to split a source without an official test split (``data.split`` in a config)."""

    test_fraction: OpenFraction = 0.2
    stratified: bool = True


@dataclass
class Partitions:
    """Named index sets over one dataset, and batches over them."""

    dataset: Dataset
    indices: dict[str, Tensor]
    forget_spec: ForgetSpec | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        return list(self.indices)

    def __getitem__(self, name: str) -> Tensor:
        if name not in self.indices:
            raise KeyError(f"no partition {name!r}; partitions: {', '.join(self.indices)}")
        return self.indices[name]

    def __contains__(self, name: str) -> bool:
        return name in self.indices

    def size(self, name: str) -> int:
        return len(self[name])

    def targets(self, name: str) -> Tensor:
        return self.dataset.targets[self[name]]

    def inputs(self, name: str) -> Any:
        return self.dataset.take(self[name])

    def batches(
        self,
        name: str | Tensor,
        batch_size: int,
        shuffle: bool = False,
        generator: torch.Generator | None = None,
        drop_last: bool = False,
    ) -> Iterator[tuple[Any, Tensor]]:
        """Yield ``(inputs, targets)`` batches of a partition (or of an index tensor)."""
        index = self[name] if isinstance(name, str) else name
        if shuffle:
            order = torch.randperm(len(index), generator=generator).to(index.device)
            index = index[order]
        if self.dataset.kind == "lazy":
            targets = self.dataset.targets
            for x, positions in self.dataset.inputs.batches(index, batch_size, targets.device, drop_last):
                yield x, targets[index[positions.to(index.device)]]
            return
        stop = len(index) - (len(index) % batch_size if drop_last else 0)
        for start in range(0, stop, batch_size):
            chunk = index[start : start + batch_size]
            yield self.dataset.take(chunk), self.dataset.targets[chunk]

    def to(self, device: torch.device | str) -> "Partitions":
        return Partitions(
            self.dataset.to(device),
            {k: v.to(device) for k, v in self.indices.items()},
            self.forget_spec,
            {k: v.to(device) if isinstance(v, Dataset) else v for k, v in self.extras.items()},
        )

    def before_forget(self) -> "Partitions":
        """The partitions over the data as it was before the forget request (differs for node graphs only)."""
        return self.with_dataset(self.extras.get("before_forget", self.dataset))

    def with_dataset(self, dataset: Dataset) -> "Partitions":
        """The same index sets over another view of the data (e.g. transformed features)."""
        return Partitions(dataset, dict(self.indices), self.forget_spec, dict(self.extras))


def split_train_test(dataset: Dataset, split: Split, seed: int) -> tuple[Tensor, Tensor]:
    """Official splits when the source has them, otherwise a seeded (stratified) split."""
    if "train" in dataset.splits and "test" in dataset.splits:
        return dataset.splits["train"].long(), dataset.splits["test"].long()
    from sklearn.model_selection import train_test_split

    labels = dataset.targets.cpu().numpy()
    positions = np.arange(len(dataset))
    try:
        train, test = train_test_split(
            positions,
            test_size=split.test_fraction,
            random_state=seed,
            stratify=labels if split.stratified else None,
        )
    except ValueError as exc:  # too few samples (per class, if stratified) for this fraction
        raise ConfigError(f"cannot split {len(positions)} samples with test_fraction {split.test_fraction}"
                          f"{' (stratified)' if split.stratified else ''}: {exc}", "data.split") from exc
    device = dataset.targets.device
    return torch.as_tensor(np.sort(train), device=device), torch.as_tensor(np.sort(test), device=device)


def make_partitions(
    dataset: Dataset, split: Split, forget: ForgetSpec, seed: int, prepare: Callable[[Dataset, Tensor], Dataset] | None = None
) -> Partitions:
    """Split, fit ``prepare`` on train, select the forget set with the seed, derive retain and test subsets."""
    train, test = split_train_test(dataset, split, seed)
    if prepare is not None:
        dataset = prepare(dataset, train)
    rng = np.random.default_rng(seed)
    try:
        forget_idx = forget.select(dataset, train, rng).long()
        forget_test = forget.test_indices(dataset, test)
    except ConfigError as exc:
        exc.path = join_path("data.forget.parameters", exc.path) if exc.path else "data.forget"
        raise
    if forget.removes_samples and len(forget_idx) == 0:
        raise ConfigError(f"the forget set is empty: {forget!r} selects no training sample", "data.forget")
    retain = train[~torch.isin(train, forget_idx)]
    if len(retain) == 0:
        raise ConfigError("the forget set covers the whole training set: nothing is left to retain", "data.forget")
    indices = {"train": train, "test": test, "forget": forget_idx, "retain": retain}
    if forget_test is not None:
        indices["forget_test"] = forget_test.long()
        indices["retain_test"] = test[~torch.isin(test, forget_test)]
    if dataset.kind == "node_graph" and len(forget_idx):
        return Partitions(dataset.without_edges_of(forget_idx), indices, forget, {"before_forget": dataset})
    return Partitions(dataset, indices, forget)
