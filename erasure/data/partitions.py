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

from dataclasses import dataclass, field, replace
from typing import Annotated, Any, Callable, Iterator, Sequence

import numpy as np
import torch
from torch import Tensor

from erasure.core.errors import ConfigError, join_path
from erasure.core.params import NonNegativeInt, OpenFraction, PathText, PositiveInt, Range, check_parameters
from erasure.core.seeding import derive_seed
from erasure.data.dataset import Dataset, moved
from erasure.data.forget import ForgetSpec, OriginalProbe

#: ``original(dataset, train_idx)``: the probe of the original model that a forget spec with
#: ``needs_original`` receives (the runner supplies it; see :class:`~erasure.data.forget.OriginalProbe`).
ProbeFactory = Callable[[Dataset, Tensor], OriginalProbe]


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
            augment = getattr(self.dataset, "augment", None)  # an AugmentedDataset's training view
            for x, positions in self.dataset.inputs.batches(index, batch_size, targets.device, drop_last):
                yield (augment(x) if augment else x), targets[index[positions.to(index.device)]]
            return
        stop = len(index) - (len(index) % batch_size if drop_last else 0)
        for start in range(0, stop, batch_size):
            chunk = index[start : start + batch_size]
            yield self.dataset.take(chunk), self.dataset.targets[chunk]

    def to(self, device: torch.device | str, memo: dict[int, Any] | None = None) -> "Partitions":
        """The partitions on ``device``; with ``memo``, tensors shared with other partitions moved
        with the same memo (other seeds, other deletion requests) are copied once."""
        return Partitions(
            self.dataset.to(device, memo),
            {k: moved(v, device, memo) for k, v in self.indices.items()},
            self.forget_spec,
            {k: v.to(device, memo) if isinstance(v, Dataset) else v for k, v in self.extras.items()},
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


def validation_split(dataset: Dataset, train: Tensor, fraction: float, seed: int) -> tuple[Tensor, Tensor]:
    """(train minus validation, validation): a seeded, stratified share of ``train``."""
    from sklearn.model_selection import train_test_split

    labels = dataset.targets[train].cpu().numpy()
    stratify = labels if labels.ndim == 1 and min(np.unique(labels, return_counts=True)[1]) >= 2 else None
    kept, held = train_test_split(np.arange(len(train)), test_size=fraction, random_state=seed, stratify=stratify)
    pick = lambda positions: train[torch.as_tensor(np.sort(positions), device=train.device)]  # noqa: E731
    return pick(kept), pick(held)


def make_partitions(
    dataset: Dataset, split: Split, forget: ForgetSpec, seed: int, prepare: Callable[[Dataset, Tensor], Dataset] | None = None,
    named: Sequence["PartitionRule"] = (),
) -> Partitions:
    """Split, fit ``prepare`` on train, select the forget set with the seed, derive retain and test
    subsets, then the ``named`` partitions."""
    return make_request_partitions(dataset, split, [forget], seed, prepare, named)[0].evaluation


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
    prepare: Callable[[Dataset, Tensor], Dataset] | None = None, named: Sequence["PartitionRule"] = (),
    holdout: float | None = None, original: ProbeFactory | None = None,
) -> list[Request]:
    """Split, fit ``prepare`` on train, then apply the deletion ``requests`` in order: each selects
    its samples from the training samples not deleted yet, with one generator seeded by ``seed``
    (so the first request selects what a single request would). The ``named`` partitions
    (``data.partitions``) are computed over each request's partitions, the unlearning and the
    evaluation view alike ("request" being the request's own samples in both).

    ``holdout`` (tuning): that share of train becomes the "test" partition (a seeded, stratified
    validation split) and the real test split is dropped, so nothing downstream can read it.

    ``original`` builds the probe of the original model for a forget spec that needs it; a spec's
    ``modify_data`` replaces the data from its request on, and ``extras["modified"]`` then names
    the changes (so that cache keys of models trained on the changed data differ)."""
    train, test = split_train_test(dataset, split, seed)
    if holdout is not None:
        train, test = validation_split(dataset, train, holdout, seed)
    if prepare is not None:
        dataset = prepare(dataset, train)
    rng = np.random.default_rng(seed)
    gone = train[:0]
    gone_test: Tensor | None = None
    modified: list[str] = []
    out = []
    for r, forget in enumerate(requests):
        where = "data.forget" if len(requests) == 1 else f"data.forget[{r}]"
        forget = forget.for_seed(seed)
        available = train[~torch.isin(train, gone)]
        try:
            probe = {}
            if forget.needs_original:
                if original is None:
                    raise ConfigError(f"{type(forget).__name__} chooses its samples with the original model, "
                                      "which only a run provides", "")
                probe = {"original": original(dataset, train)}
            forget_idx = forget.select(dataset, available, rng, **probe).long()
            forget_test = forget.test_indices(dataset, test)
            changed = forget.modify_data(dataset, forget_idx)
        except ConfigError as exc:
            exc.path = join_path(f"{where}.parameters", exc.path) if exc.path else where
            raise
        if forget.removes_samples and len(forget_idx) == 0:
            raise ConfigError(f"the forget set is empty: {forget!r} selects no training sample", where)
        if changed is not dataset:
            dataset = changed
            modified.append(f"{forget!r}@{_digest(forget_idx)}")
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
            extras = {"modified": list(modified)} if modified else {}
            if dataset.kind == "node_graph" and len(gone):
                return add_named(Partitions(dataset.without_edges_of(gone), indices, forget,
                                            {"before_forget": dataset, **extras}), named, seed)
            return add_named(Partitions(dataset, indices, forget, extras), named, seed)

        if len(requests) == 1:
            single = partitions(forget_idx, None if forget_test is None else forget_test.long(), {})
            out.append(Request(single, single))
        else:
            this_request = {REQUEST_PARTITION: forget_idx}
            out.append(Request(partitions(forget_idx, None if forget_test is None else forget_test.long(), this_request),
                               partitions(gone, gone_test, this_request)))
    return out


def _digest(index: Tensor) -> str:
    import hashlib

    return hashlib.sha256(index.detach().cpu().numpy().tobytes()).hexdigest()[:16]


# --------------------------------------------------------------------------- named partitions
#: The partitions every run has; "forget_test" / "retain_test" exist for class and group forgetting only.
BUILTIN_PARTITIONS = ("train", "test", "forget", "retain", "forget_test", "retain_test")
#: With several deletion requests, "request" is the current request's samples (and "forget" all deleted so far).
REQUEST_PARTITION = "request"
COMBINE = ("from", "union", "intersection", "difference")


class Selector:
    """One step of a named partition's ``select`` chain: keeps part of an index set."""

    def check(self) -> None:
        """Cross-field checks; a :class:`ConfigError` path is relative to the selector."""

    def for_seed(self, seed: int) -> "Selector":
        return self

    def select(self, dataset: Dataset, index: Tensor, rng: np.random.Generator) -> Tensor:
        raise NotImplementedError

    def as_config(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in vars(self).items() if v is not None}


@dataclass
class Sample(Selector):
    """A seeded random ``fraction`` of the set, or ``count`` samples (all of them where the set is
    smaller); ``stratified``: each class keeps its share (scikit-learn's stratified split)."""

    fraction: Annotated[float, Range(0, 1, low_inclusive=False)] | None = None
    count: PositiveInt | None = None
    stratified: bool = False

    def check(self) -> None:
        if (self.fraction is None) == (self.count is None):
            raise ConfigError("give exactly one of 'fraction' or 'count'", "fraction")

    def select(self, dataset: Dataset, index: Tensor, rng: np.random.Generator) -> Tensor:
        n = len(index)
        k = min(self.count, n) if self.count is not None else int(round(self.fraction * n))
        if k == n or k == 0:
            return index[:k]
        if not self.stratified:
            chosen = np.sort(rng.choice(n, size=k, replace=False))
        else:
            from sklearn.model_selection import train_test_split

            try:
                _, chosen = train_test_split(np.arange(n), test_size=k, stratify=dataset.targets[index].cpu().numpy(),
                                             random_state=int(rng.integers(2**31 - 1)))
            except ValueError as exc:  # a class with a single sample, or fewer samples than classes
                raise ConfigError(f"cannot draw a stratified sample of {k} from {n} samples: {exc}", "stratified") from exc
            chosen = np.sort(chosen)
        return index[torch.as_tensor(chosen, dtype=torch.long, device=index.device)]


@dataclass
class First(Selector):
    """The first ``first`` samples of the set (the lowest dataset indices; all where it is smaller)."""

    first: PositiveInt

    def select(self, dataset: Dataset, index: Tensor, rng: np.random.Generator) -> Tensor:
        return index[: self.first]


@dataclass
class Classes(Selector):
    """The samples whose label is one of ``classes`` (multi-label data: that carry one of them)."""

    classes: list[NonNegativeInt]

    def check(self) -> None:
        if not self.classes:
            raise ConfigError("expected at least one class, got []", "classes")

    def select(self, dataset: Dataset, index: Tensor, rng: np.random.Generator) -> Tensor:
        beyond = [c for c in self.classes if c >= dataset.num_classes]
        if beyond:
            raise ConfigError(f"class {beyond[0]} is not a class of {dataset.name} ({dataset.num_classes} classes)", "classes")
        targets = dataset.targets[index]
        if targets.dim() == 2:  # multi-label: the samples carrying any of the labels
            return index[targets[:, self.classes].bool().any(1)]
        return index[torch.isin(targets, torch.as_tensor(self.classes, device=index.device))]


@dataclass
class Attribute(Selector):
    """The samples whose per-sample ``attribute`` takes one of ``values``, or lies in
    ``range`` [low, high] (both ends included)."""

    attribute: str
    values: list[float] | None = None
    range: tuple[float, float] | None = None

    def check(self) -> None:
        if (self.values is None) == (self.range is None):
            raise ConfigError("give exactly one of 'values' or 'range'", "values")
        if self.range is not None and self.range[0] > self.range[1]:
            raise ConfigError(f"expected [low, high] with low <= high, got {list(self.range)}", "range")

    def select(self, dataset: Dataset, index: Tensor, rng: np.random.Generator) -> Tensor:
        if self.attribute not in dataset.attributes:
            known = ", ".join(sorted(dataset.attributes)) or "none"
            raise ConfigError(f"{dataset.name} has no attribute {self.attribute!r} (attributes: {known})", "attribute")
        values = dataset.attributes[self.attribute][index]
        if self.range is not None:
            keep = (values >= self.range[0]) & (values <= self.range[1])
        else:
            keep = torch.isin(values.double(), torch.as_tensor(self.values, dtype=torch.float64, device=values.device))
        return index[keep]


@dataclass
class Indices(Selector):
    """The samples whose dataset index is listed in ``indices`` or in the file ``path`` (``.npy``,
    or ``.json`` with the list under ``key``, by default the partition's own name, so a run's
    ``indices/seed{seed}.json`` gives a named partition back; ``{seed}`` is the experiment seed)."""

    indices: list[NonNegativeInt] | None = None
    path: PathText | None = None
    key: str | None = None

    def check(self) -> None:
        if (self.indices is None) == (self.path is None):
            raise ConfigError("give exactly one of 'indices' or 'path'", "indices")

    def for_seed(self, seed: int) -> "Indices":
        return self if self.path is None else replace(self, path=self.path.replace("{seed}", str(seed)))

    def select(self, dataset: Dataset, index: Tensor, rng: np.random.Generator) -> Tensor:
        from erasure.data.forget import read_indices

        listed = self.indices if self.path is None else read_indices(self.path, self.key)
        beyond = [i for i in listed if i >= len(dataset)]
        if beyond:
            raise ConfigError(f"index {beyond[0]} is beyond the {len(dataset)} samples of {dataset.name}",
                              "path" if self.path else "indices")
        return index[torch.isin(index, torch.as_tensor(listed, dtype=torch.long, device=index.device))]


#: A selector's kind, told by the key that only it has.
SELECTORS: dict[str, type[Selector]] = {"fraction": Sample, "count": Sample, "first": First, "classes": Classes,
                                         "attribute": Attribute, "indices": Indices, "path": Indices}


@dataclass
class PartitionRule:
    """One entry of ``data.partitions``: the set ``combine`` makes of ``operands`` ("from" one
    partition, or their "union", "intersection" or "difference": the first minus the others),
    narrowed by each selector of ``select`` in turn."""

    name: str
    combine: str
    operands: list[str]
    select: list[Selector]

    def as_config(self) -> dict[str, Any]:
        return {self.combine: self.operands[0] if self.combine == "from" else list(self.operands),
                "select": [s.as_config() for s in self.select]}

    def operand_path(self, i: int) -> str:
        """The JSON path of operand ``i``: ``data.partitions.<name>.from`` or ``...union[i]``."""
        return f"data.partitions.{self.name}.{self.combine if self.combine == 'from' else f'{self.combine}[{i}]'}"

    def apply(self, dataset: Dataset, indices: dict[str, Tensor], seed: int) -> Tensor:
        """This partition's indices (sorted) given the partitions defined so far, drawn with a
        generator seeded by (``seed``, its name) alone."""
        sets = []
        for i, name in enumerate(self.operands):
            if name not in indices:
                raise ConfigError(f"partition {name!r} does not exist in this run (forget_test and retain_test "
                                  "exist for class and group forgetting only)", self.operand_path(i))
            sets.append(indices[name])
        index = sets[0]
        if self.combine == "union":
            index = torch.unique(torch.cat(sets))
        elif self.combine == "intersection":
            for other in sets[1:]:
                index = index[torch.isin(index, other)]
        elif self.combine == "difference":
            index = index[~torch.isin(index, torch.cat(sets[1:]))] if len(sets) > 1 else index
        rng = np.random.default_rng(derive_seed(seed, "partition", self.name))
        for i, selector in enumerate(self.select):
            try:
                index = selector.for_seed(seed).select(dataset, index, rng)
            except ConfigError as exc:
                where = f"data.partitions.{self.name}.select[{i}]"
                exc.path = join_path(where, exc.path) if exc.path else where
                raise
        return index


def parse_selector(spec: Any, path: str, name: str) -> Selector:
    """A selector object (``{"fraction": 0.1, "stratified": true}``, ``{"classes": [3]}``, ...),
    checked like a component's parameters."""
    if not isinstance(spec, dict):
        raise ConfigError(f"expected a selector object such as {{\"fraction\": 0.1}}, got {spec!r}"[:200], path)
    kinds = list(dict.fromkeys(SELECTORS[k] for k in spec if k in SELECTORS))
    if len(kinds) != 1:
        given = [k for k in spec if k in SELECTORS]
        if given:
            raise ConfigError(f"one selector per item, got {' and '.join(repr(k) for k in given)} (list them in turn: "
                              "they apply in order)", path)
        raise ConfigError(f"expected one of the selector keys {', '.join(SELECTORS)}, got {sorted(spec)}", path)
    cls = kinds[0]
    check_parameters(cls, spec, path)
    selector = cls(**{k: tuple(v) if k == "range" else v for k, v in spec.items()})
    if isinstance(selector, Indices) and selector.path is not None and selector.key is None:
        selector.key = name
    try:
        selector.check()
    except ConfigError as exc:
        exc.path = join_path(path, exc.path)
        raise
    return selector


def parse_partitions(spec: Any, builtin: list[str]) -> list[PartitionRule]:
    """The rules of ``data.partitions``, checked (names, references, cycles, selectors) and ordered
    so that each comes after the partitions it reads."""
    path = "data.partitions"
    if not isinstance(spec, dict):
        raise ConfigError(f"expected an object of named partitions, got {type(spec).__name__}", path)
    rules: dict[str, PartitionRule] = {}
    for name, entry in spec.items():
        where = join_path(path, name)
        if name in builtin or name == REQUEST_PARTITION:
            raise ConfigError(f"{name!r} is a built-in partition; give yours another name", where)
        if not name.isidentifier():
            raise ConfigError(f"expected a partition name of letters, digits and underscores, got {name!r}", where)
        if not isinstance(entry, dict):
            raise ConfigError(f'expected an object such as {{"from": "retain", "select": [...]}}, got {entry!r}'[:200], where)
        unknown = [k for k in entry if k not in (*COMBINE, "select")]
        if unknown:
            raise ConfigError(f"unknown key {unknown[0]!r} (expected one of {', '.join(COMBINE)}, and 'select')",
                              join_path(where, unknown[0]))
        combine = [k for k in COMBINE if k in entry]
        if len(combine) != 1:
            raise ConfigError(f"give exactly one of {', '.join(repr(k) for k in COMBINE)}", where)
        operands = entry[combine[0]]
        operands = [operands] if combine[0] == "from" else operands
        if not isinstance(operands, list) or not operands or not all(isinstance(o, str) for o in operands):
            raise ConfigError("expected a partition name" if combine[0] == "from" else "expected a list of partition names",
                              join_path(where, combine[0]))
        select = entry.get("select", [])
        if not isinstance(select, list):
            raise ConfigError("expected a list of selectors", join_path(where, "select"))
        rules[name] = PartitionRule(name, combine[0], operands,
                                    [parse_selector(s, join_path(where, f"select[{i}]"), name) for i, s in enumerate(select)])
    defined = [*builtin, *rules]
    for rule in rules.values():
        for i, operand in enumerate(rule.operands):
            if operand not in defined:
                raise ConfigError(f"no partition {operand!r} (defined partitions: {', '.join(defined)})", rule.operand_path(i))
    return _dependency_order(rules, path)


def _dependency_order(rules: dict[str, PartitionRule], path: str) -> list[PartitionRule]:
    """The rules with each after those it reads (in file order otherwise); a cycle is a config error naming it."""
    ordered: list[PartitionRule] = []
    waiting = dict(rules)
    while waiting:
        ready = [r for r in waiting.values() if not any(o in waiting for o in r.operands)]
        if not ready:
            chain = [next(iter(waiting))]
            while chain.count(chain[-1]) < 2:
                chain.append(next(o for o in waiting[chain[-1]].operands if o in waiting))
            cycle = chain[chain.index(chain[-1]):]
            raise ConfigError(f"named partitions refer to each other in a cycle: {' -> '.join(cycle)}",
                              join_path(path, cycle[0]))
        for rule in ready:
            ordered.append(waiting.pop(rule.name))
    return ordered


def add_named(partitions: Partitions, rules: Sequence[PartitionRule], seed: int) -> Partitions:
    """``partitions`` with the named ones of ``rules`` added (the same object, its indices extended)."""
    for rule in rules:
        partitions.indices[rule.name] = rule.apply(partitions.dataset, partitions.indices, seed)
    return partitions
