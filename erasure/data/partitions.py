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
    """How to split a source without an official test split (``data.split`` in a config).

    ``stratified`` keeps the class shares in both parts; multi-label data is always split
    uniformly at random (scikit-learn stratifies one class per sample only).

    ``path`` takes the train and test indices from a file instead (the ``train`` and ``test``
    lists of a run's ``indices/seed{seed}.json``; ``{seed}`` is the experiment seed), so two runs
    or two frameworks split alike.
    """

    test_fraction: OpenFraction = 0.2
    stratified: bool = True
    path: str | None = None


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
    """A split file when given, else official splits when the source has them, else a seeded (stratified) split."""
    if split.path is not None:
        from erasure.data.forget import read_indices

        path = split.path.format(seed=seed)
        try:
            train, test = (torch.as_tensor(sorted(set(read_indices(path, key))), dtype=torch.long) for key in ("train", "test"))
        except ConfigError as exc:
            raise ConfigError(exc.message, "data.split.path") from exc
        if len(train) == 0 or len(test) == 0 or bool(torch.isin(train, test).any()):
            raise ConfigError(f"{path}: train and test must be non-empty and disjoint", "data.split.path")
        if int(max(train.max(), test.max())) >= len(dataset):
            raise ConfigError(f"{path}: an index is beyond the {len(dataset)} samples of {dataset.name}", "data.split.path")
        return train.to(dataset.targets.device), test.to(dataset.targets.device)
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
            stratify=labels if split.stratified and not dataset.multi_label else None,
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
    return make_request_partitions(dataset, split, [forget], seed, prepare)[0].evaluation


@dataclass
class Request:
    """The partitions after one deletion request.

    ``unlearning``: what an unlearner processing this request sees: ``forget`` is this request's
    samples, ``retain`` what is left of train after every request so far. ``evaluation``: what
    evaluators judge: ``forget`` is every sample deleted so far (and ``request`` this request's),
    ``forget_test`` / ``retain_test`` likewise cumulative. With a single request both are one object.
    """

    unlearning: Partitions
    evaluation: Partitions


def make_request_partitions(
    dataset: Dataset, split: Split, requests: list[ForgetSpec], seed: int,
    prepare: Callable[[Dataset, Tensor], Dataset] | None = None,
) -> list[Request]:
    """Split, fit ``prepare`` on train, then apply the deletion ``requests`` in order: each selects
    its samples from the training samples not deleted yet, with one generator seeded by ``seed``
    (so the first request selects what a single request would)."""
    train, test = split_train_test(dataset, split, seed)
    if prepare is not None:
        dataset = prepare(dataset, train)
    rng = np.random.default_rng(seed)
    gone = train[:0]
    gone_test: Tensor | None = None
    out = []
    for r, forget in enumerate(requests):
        where = "data.forget" if len(requests) == 1 else f"data.forget[{r}]"
        forget = forget.for_seed(seed)
        available = train[~torch.isin(train, gone)]
        try:
            forget_idx = forget.select(dataset, available, rng).long()
            forget_test = forget.test_indices(dataset, test)
        except ConfigError as exc:
            exc.path = join_path(f"{where}.parameters", exc.path) if exc.path else where
            raise
        if forget.removes_samples and len(forget_idx) == 0:
            raise ConfigError(f"the forget set is empty: {forget!r} selects no training sample", where)
        gone = torch.sort(torch.cat([gone, forget_idx])).values
        retain = train[~torch.isin(train, gone)]
        if len(retain) == 0:
            raise ConfigError("the forget set covers the whole training set: nothing is left to retain", where)
        if forget_test is not None:
            gone_test = forget_test.long() if gone_test is None else torch.unique(torch.cat([gone_test, forget_test.long()]))

        def partitions(forget_now: Tensor, forget_test_now: Tensor | None, extra: dict[str, Tensor]) -> Partitions:
            indices = {"train": train, "test": test, "forget": forget_now, "retain": retain, **extra}
            if forget_test_now is not None:
                indices["forget_test"] = forget_test_now
                indices["retain_test"] = test[~torch.isin(test, gone_test)]
            if dataset.kind == "node_graph" and len(gone):
                return Partitions(dataset.without_edges_of(gone), indices, forget, {"before_forget": dataset})
            return Partitions(dataset, indices, forget)

        if len(requests) == 1:
            single = partitions(forget_idx, None if forget_test is None else forget_test.long(), {})
            out.append(Request(single, single))
        else:
            out.append(Request(partitions(forget_idx, None if forget_test is None else forget_test.long(), {}),
                               partitions(gone, gone_test, {"request": forget_idx})))
    return out
