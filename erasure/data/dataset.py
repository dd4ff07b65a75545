"""The :class:`Dataset` every source returns, and the :class:`DataSource` base.

A dataset is N samples addressable by index. ``inputs`` is one of

* a tensor ``(N, ...)``: images ``(N, C, H, W)``, tabular rows ``(N, D)``, or
  token ids ``(N, L)`` (``long``, padded with 0);
* a ``torch_geometric.data.Data`` graph whose nodes are the samples;
* a list of N graphs (graph classification).

:meth:`Dataset.take` turns a tensor of indices into the model's input for those
samples, so training and evaluation loops are the same for every kind.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from erasure.core.registry import Component


@dataclass
class NodeBatch:
    """Model input for node-level graph data: the whole graph and the nodes to classify."""

    graph: Any
    index: Tensor

    def to(self, device: torch.device | str) -> "NodeBatch":
        return NodeBatch(self.graph.to(device), self.index.to(device))


@dataclass
class Dataset:
    """N samples with class labels, optional per-sample attributes and official splits."""

    inputs: Any
    targets: Tensor
    num_classes: int
    attributes: dict[str, Tensor] = field(default_factory=dict)
    splits: dict[str, Tensor] = field(default_factory=dict)
    name: str = "dataset"

    def __post_init__(self) -> None:
        n = len(self.targets)
        if self.kind == "tensor" and len(self.inputs) != n:
            raise ValueError(f"{self.name}: {len(self.inputs)} inputs but {n} targets")
        for key, values in self.attributes.items():
            if len(values) != n:
                raise ValueError(f"{self.name}: attribute {key!r} has {len(values)} values for {n} samples")

    def __len__(self) -> int:
        return len(self.targets)

    @property
    def kind(self) -> str:
        """``tensor``, ``node_graph`` or ``graph_list``."""
        if isinstance(self.inputs, Tensor):
            return "tensor"
        if isinstance(self.inputs, (list, tuple)):
            return "graph_list"
        return "node_graph"

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one sample (features per node for graphs)."""
        if self.kind == "tensor":
            return tuple(self.inputs.shape[1:])
        graph = self.inputs[0] if self.kind == "graph_list" else self.inputs
        return (int(graph.num_node_features),)

    @property
    def device(self) -> torch.device:
        return self.targets.device

    def take(self, index: Tensor) -> Any:
        """Model input for the samples at ``index``."""
        if self.kind == "tensor":
            return self.inputs[index]
        if self.kind == "node_graph":
            return NodeBatch(self.inputs, index)
        from torch_geometric.data import Batch

        return Batch.from_data_list([self.inputs[i] for i in index.tolist()]).to(self.device)

    def to(self, device: torch.device | str) -> "Dataset":
        """A copy whose tensors live on ``device`` (graph lists move per batch)."""
        inputs = self.inputs if self.kind == "graph_list" else self.inputs.to(device)
        return Dataset(
            inputs=inputs,
            targets=self.targets.to(device),
            num_classes=self.num_classes,
            attributes={k: v.to(device) for k, v in self.attributes.items()},
            splits={k: v.to(device) for k, v in self.splits.items()},
            name=self.name,
        )

    def fingerprint(self) -> str:
        """Content hash of inputs, targets, attributes and official splits (for cache keys)."""
        digest = hashlib.sha256()
        digest.update(f"{self.name}|{self.num_classes}|{self.kind}".encode())
        tensors = [self.targets, *self.attributes.values(), *self.splits.values()]
        if self.kind == "tensor":
            tensors.insert(0, self.inputs)
        elif self.kind == "node_graph":
            tensors += [v for v in (self.inputs.x, self.inputs.edge_index) if v is not None]
        else:
            tensors += [g.x for g in self.inputs if g.x is not None] + [g.edge_index for g in self.inputs]
        for t in tensors:
            t = t.detach().cpu().contiguous()
            digest.update(str((t.dtype, tuple(t.shape))).encode())
            digest.update(t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.float().numpy().tobytes())
        for key in sorted(self.attributes):
            digest.update(key.encode())
        return digest.hexdigest()[:16]


class DataSource(Component, kind="data_source"):
    """Loads a :class:`Dataset`. Subclasses implement :meth:`load`."""

    def load(self) -> Dataset:
        raise NotImplementedError

    def prepare(self, dataset: Dataset, train_idx: Tensor) -> Dataset:
        """Preprocessing fitted on the training split only (e.g. standardisation); identity by default."""
        return dataset
