"""Graph neural networks (PyTorch Geometric) for node and graph classification.

Inputs are a :class:`~erasure.data.dataset.NodeBatch` (the whole graph and the
nodes to classify: every node is embedded by message passing over the graph,
the batch's nodes are returned) or a PyG ``Batch`` of graphs (node embeddings
are pooled per graph).
"""
from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from erasure.core.params import NonNegativeFloat, PositiveInt
from erasure.models.base import Model


class _GraphModel(Model):
    pool = "mean"

    def _convolve(self, x: Tensor, edge_index: Tensor) -> Tensor:
        for conv in self.convs:
            x = F.dropout(F.relu(conv(x, edge_index)), self.dropout, self.training)
        return x

    def features(self, batch: Any) -> Tensor:
        if hasattr(batch, "index") and hasattr(batch, "graph"):  # NodeBatch
            g = batch.graph
            return self._convolve(g.x.float(), g.edge_index)[batch.index]
        from torch_geometric.nn import global_add_pool, global_mean_pool

        h = self._convolve(batch.x.float(), batch.edge_index)
        return (global_add_pool if self.pool == "add" else global_mean_pool)(h, batch.batch)


class GCN(_GraphModel):
    """Graph convolutional network (Kipf & Welling, ICLR 2017): ``GCNConv``–ReLU–dropout layers.

    Defaults are the paper's Cora setting: one hidden layer of 16 units, dropout 0.5
    (train with Adam, lr 0.01, weight decay 5e-4). Graph classification pools by mean.
    """

    def __init__(self, input_shape: tuple[int, ...], num_classes: PositiveInt,
                 hidden: list[PositiveInt] = [16], dropout: NonNegativeFloat = 0.5):  # noqa: B006
        super().__init__()
        self.input_shape = input_shape
        self.num_classes = num_classes
        self.hidden = hidden
        self.dropout = dropout
        from torch_geometric.nn import GCNConv

        sizes = [input_shape[0], *hidden]
        self.convs = nn.ModuleList(GCNConv(a, b) for a, b in zip(sizes, sizes[1:]))
        self.head = nn.Linear(sizes[-1], num_classes)


class GIN(_GraphModel):
    """Graph isomorphism network (Xu et al., ICLR 2019): ``GINConv`` with 2-layer MLPs, sum pooling.

    The paper uses 5 layers of 32 or 64 units, sum pooling and dropout 0.5; the default
    here is ``layers=3`` of 64 units (small benchmarks), dropout 0.5.
    """

    pool = "add"

    def __init__(self, input_shape: tuple[int, ...], num_classes: PositiveInt, hidden: PositiveInt = 64,
                 layers: PositiveInt = 3, dropout: NonNegativeFloat = 0.5):
        super().__init__()
        self.input_shape = input_shape
        self.num_classes = num_classes
        self.hidden = hidden
        self.layers = layers
        self.dropout = dropout
        from torch_geometric.nn import GINConv

        sizes = [input_shape[0]] + [hidden] * layers
        self.convs = nn.ModuleList(
            GINConv(nn.Sequential(nn.Linear(a, b), nn.BatchNorm1d(b), nn.ReLU(), nn.Linear(b, b)), train_eps=True)
            for a, b in zip(sizes, sizes[1:])
        )
        self.head = nn.Linear(hidden, num_classes)
