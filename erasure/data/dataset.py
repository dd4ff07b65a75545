"""The :class:`Dataset` every source returns, and the :class:`DataSource` base.

A dataset is N samples addressable by index. ``inputs`` is one of

* a tensor ``(N, ...)``: images ``(N, C, H, W)``, tabular rows ``(N, D)``, or
  token ids ``(N, L)`` (``long``, padded with 0);
* a ``torch_geometric.data.Data`` graph whose nodes are the samples;
* a list of N graphs (graph classification);
* a :class:`LazyInputs` (a map-style ``torch.utils.data.Dataset`` of images too
  large to hold as one tensor), batched through a ``DataLoader`` with workers
  and pinned memory.

:meth:`Dataset.take` turns a tensor of indices into the model's input for those
samples, so training and evaluation loops are the same for every kind.
"""
from __future__ import annotations

import hashlib
import weakref
from dataclasses import dataclass, field, replace
from typing import Any, Iterator

import torch
from torch import Tensor

from erasure.core.errors import ConfigError
from erasure.core.registry import Component

SINGLE_LABEL = "single-label"
MULTI_LABEL = "multi-label"
TASKS = (SINGLE_LABEL, MULTI_LABEL)
#: More classes are refused: a label read from a data file as 10**12 would otherwise size a model's
#: output layer and the list of class names (ImageNet-21k has about 22,000 classes).
MAX_CLASSES = 1 << 20


def check_num_classes(num_classes: int, where: str, source: str) -> None:
    """Refuse an absurd number of classes (a :class:`ConfigError` at ``where``)."""
    if num_classes > MAX_CLASSES:
        raise ConfigError(f"{source}: labels up to {num_classes - 1} would make {num_classes:,} classes, more than "
                          f"{MAX_CLASSES:,}; labels are class indices 0..C-1 (or names, coded in sorted order)", where)


@dataclass
class NodeBatch:
    """Model input for node-level graph data: the whole graph and the nodes to classify."""

    graph: Any
    index: Tensor

    def to(self, device: torch.device | str) -> "NodeBatch":
        return NodeBatch(self.graph.to(device), self.index.to(device))


def moved(value: Any, device: torch.device | str, memo: dict[int, Any] | None = None) -> Any:
    """``value.to(device)``; with ``memo``, once per object while both it and its copy are in use
    (the memo holds weak references, so it keeps neither alive)."""
    if memo is None:
        return value.to(device)
    source, copy = memo.get(id(value), (lambda: None, lambda: None))
    if source() is value and copy() is not None:
        return copy()
    result = value.to(device)
    memo[id(value)] = (weakref.ref(value), weakref.ref(result))
    return result


class LazyInputs:
    """Inputs read on demand from a map-style dataset whose item ``i`` is sample ``i``'s input.

    ``base[i]`` may return the input or an ``(input, label)`` pair (the label is
    ignored: targets live in :class:`Dataset`). Batches go through a
    ``DataLoader`` with ``num_workers`` workers, pinned memory on CUDA and
    non-blocking copies, in the order of the index given.
    """

    def __init__(self, base: Any, num_workers: int = 2, description: str = "") -> None:
        self.base = base
        self.num_workers = num_workers
        self.description = description or type(base).__name__

    def __len__(self) -> int:
        return len(self.base)

    def item(self, i: int) -> Tensor:
        value = self.base[i]
        return value[0] if isinstance(value, (tuple, list)) else value

    def take(self, index: Tensor) -> Tensor:
        return torch.stack([self.item(i) for i in index.tolist()])

    def batches(self, index: Tensor, batch_size: int, device: torch.device, drop_last: bool = False) -> Iterator[tuple[Tensor, Tensor]]:
        """``(inputs on device, positions in index)`` per batch, loaded by DataLoader workers."""
        from torch.utils.data import DataLoader

        positions = torch.arange(len(index))
        chunks = [c for c in positions.split(batch_size) if not (drop_last and len(c) < batch_size)]
        order = index.cpu().tolist()
        loader = DataLoader(
            _Items(self), batch_sampler=[[order[p] for p in c.tolist()] for c in chunks],
            num_workers=self.num_workers, pin_memory=device.type == "cuda",
            persistent_workers=False,
        )
        for chunk, x in zip(chunks, loader):
            yield x.to(device, non_blocking=True), chunk


class _Items(torch.utils.data.Dataset):
    def __init__(self, lazy: LazyInputs) -> None:
        self.lazy = lazy

    def __len__(self) -> int:
        return len(self.lazy)

    def __getitem__(self, i: int) -> Tensor:
        return self.lazy.item(i)


@dataclass
class Dataset:
    """N samples with class labels, optional per-sample attributes and official splits.

    Multi-label data gives ``targets`` as a 0/1 matrix ``(N, L)`` (stored as float32, what
    ``BCEWithLogitsLoss`` takes) with ``num_classes`` = L.
    """

    inputs: Any
    targets: Tensor
    num_classes: int
    attributes: dict[str, Tensor] = field(default_factory=dict)
    splits: dict[str, Tensor] = field(default_factory=dict)
    name: str = "dataset"
    info: dict[str, Any] = field(default_factory=dict)  # facts a model may need, e.g. vocab_size

    def __post_init__(self) -> None:
        if self.targets.dim() == 2:
            self._check_label_matrix()
        n = len(self.targets)
        if self.kind in ("tensor", "lazy") and len(self.inputs) != n:
            raise ValueError(f"{self.name}: {len(self.inputs)} inputs but {n} targets")
        for key, values in self.attributes.items():
            if len(values) != n:
                raise ValueError(f"{self.name}: attribute {key!r} has {len(values)} values for {n} samples")

    def _check_label_matrix(self) -> None:
        labels = self.targets.shape[1]
        if labels != self.num_classes:
            raise ValueError(f"{self.name}: multi-label targets have {labels} columns but num_classes is {self.num_classes}")
        if not bool(((self.targets == 0) | (self.targets == 1)).all()):
            raise ValueError(f"{self.name}: multi-label targets (N, L) must hold only 0 and 1")
        if not self.targets.is_floating_point():
            self.targets = self.targets.float()

    def __len__(self) -> int:
        return len(self.targets)

    @property
    def task(self) -> str:
        """``"single-label"`` (targets are class indices ``(N,)``) or ``"multi-label"`` (0/1 targets ``(N, L)``)."""
        return MULTI_LABEL if self.targets.dim() == 2 else SINGLE_LABEL

    @property
    def multi_label(self) -> bool:
        return self.task == MULTI_LABEL

    @property
    def kind(self) -> str:
        """``tensor``, ``lazy``, ``node_graph`` or ``graph_list``."""
        if isinstance(self.inputs, Tensor):
            return "tensor"
        if isinstance(self.inputs, LazyInputs):
            return "lazy"
        if isinstance(self.inputs, (list, tuple)):
            return "graph_list"
        return "node_graph"

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one sample (features per node for graphs)."""
        if self.kind == "tensor":
            return tuple(self.inputs.shape[1:])
        if self.kind == "lazy":
            return tuple(self.inputs.item(0).shape)
        graph = self.inputs[0] if self.kind == "graph_list" else self.inputs
        return (int(graph.num_node_features),)

    @property
    def device(self) -> torch.device:
        return self.targets.device

    def take(self, index: Tensor) -> Any:
        """Model input for the samples at ``index``."""
        if self.kind == "tensor":
            return self.inputs[index]
        if self.kind == "lazy":
            return self.inputs.take(index).to(self.device)
        if self.kind == "node_graph":
            return NodeBatch(self.inputs, index)
        from torch_geometric.data import Batch

        return Batch.from_data_list([self.inputs[i] for i in index.tolist()]).to(self.device)

    def to(self, device: torch.device | str, memo: dict[int, Any] | None = None) -> "Dataset":
        """A copy whose tensors live on ``device`` (graph lists and lazy inputs move per batch);
        with ``memo``, each tensor is copied once for every dataset moved with the same memo."""
        inputs = self.inputs if self.kind in ("graph_list", "lazy") else moved(self.inputs, device, memo)
        return Dataset(
            inputs=inputs,
            targets=moved(self.targets, device, memo),
            num_classes=self.num_classes,
            attributes={k: moved(v, device, memo) for k, v in self.attributes.items()},
            splits={k: moved(v, device, memo) for k, v in self.splits.items()},
            name=self.name,
            info=dict(self.info),
        )

    def without_edges_of(self, nodes: Tensor) -> "Dataset":
        """For a node graph: the same dataset with every edge incident to ``nodes`` removed.

        The nodes stay (isolated) so indices are unchanged. This is what forgetting
        nodes means here: their labels leave the training set and their edges leave the graph.
        """
        graph = self.inputs.clone()
        edges = graph.edge_index
        gone = torch.isin(edges, nodes.to(edges.device)).any(0)
        graph.edge_index = edges[:, ~gone]
        for key in ("edge_attr", "edge_weight"):
            value = getattr(graph, key, None)
            if value is not None:
                setattr(graph, key, value[~gone])
        return replace(self, inputs=graph)

    def fingerprint(self) -> str:
        """Content hash of inputs, targets, attributes and official splits (for cache keys)."""
        digest = hashlib.sha256()
        digest.update(f"{self.name}|{self.num_classes}|{self.kind}".encode())
        tensors = [self.targets, *self.attributes.values(), *self.splits.values()]
        if self.kind == "tensor":
            tensors.insert(0, self.inputs)
        elif self.kind == "lazy":  # files are not re-read: their description and size stand for them
            digest.update(f"{self.inputs.description}|{len(self.inputs)}".encode())
        elif self.kind == "node_graph":
            tensors += [v for v in (self.inputs.x, self.inputs.edge_index) if v is not None]
        else:
            tensors += [g.x for g in self.inputs if g.x is not None] + [g.edge_index for g in self.inputs]
        for t in tensors:
            t = t.detach().cpu().contiguous()
            digest.update(str((t.dtype, tuple(t.shape))).encode())
            array = t.numpy() if t.dtype != torch.bfloat16 else t.float().numpy()
            digest.update(array.reshape(-1).view("uint8"))  # the tensor's own bytes, not a copy of them
        for key in sorted(self.attributes):
            digest.update(key.encode())
        if self.info:
            digest.update(repr(sorted(self.info.items())).encode())
        return digest.hexdigest()[:16]


class DataSource(Component, kind="data_source"):
    """Loads a :class:`Dataset`. Subclasses implement :meth:`load`. ``task`` is the task of the data
    where it is known before loading (``"single-label"``, ``"multi-label"``), so that validation
    checks the training loss against it; None where only the data tells."""

    task: str | None = None

    def load(self) -> Dataset:
        raise NotImplementedError

    def known_num_classes(self) -> int | None:
        """The number of classes, where the source knows it without loading (so ``--validate`` can
        check a forget set's classes); None where only loading tells."""
        return None

    def prepare(self, dataset: Dataset, train_idx: Tensor) -> Dataset:
        """Preprocessing fitted on the training split only (e.g. standardisation); identity by default."""
        return dataset
