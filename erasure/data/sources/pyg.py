"""PyTorch Geometric datasets: node classification (Planetoid, KarateClub) and graph classification (TUDataset).

Node classification: the samples are the nodes of one graph (``Dataset.inputs``
is the PyG ``Data``; a batch is a ``NodeBatch``). Forgetting nodes means:
their labels leave the training set *and* every edge incident to them leaves
the graph (the nodes stay, isolated, so indices do not move). The original model
is trained on the full graph; the gold model retrains on the retain nodes over
the edge-pruned graph, and the unlearners and evaluators see that same pruned
graph (see :meth:`erasure.data.partitions.Partitions.before_forget`).

Graph classification: every graph is a sample; forgetting a graph removes it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch

from erasure.core.errors import ConfigError
from erasure.data.dataset import Dataset, DataSource

PLANETOID = ("Cora", "CiteSeer", "PubMed")


class PyGSource(DataSource):
    """``dataset``: Cora, CiteSeer, PubMed (Planetoid, ``split`` public/full/random), KarateClub, or TUDataset (``name``).

    Planetoid keeps its official train/test masks as the train/test split
    (validation nodes are in neither). KarateClub and TUDataset have no test
    split: ``data.split`` applies. TUDataset graphs without node features get a
    constant feature. ``download`` false refuses to fetch missing files.
    """

    def __init__(self, dataset: Literal["Cora", "CiteSeer", "PubMed", "KarateClub", "TUDataset"] = "Cora",
                 root: str = "data/pyg", name: str | None = None,
                 split: Literal["public", "full", "random"] = "public", download: bool = True):
        self.dataset = dataset
        self.root = root
        self.name = name
        self.split = split
        self.download = download

    def check(self) -> None:
        if (self.dataset == "TUDataset") != (self.name is not None):
            raise ConfigError("'name' (e.g. MUTAG) is required for TUDataset and only for it", "name")

    def _require_files(self, folder: Path, what: str) -> None:
        if not self.download and not (folder.is_dir() and any(folder.iterdir())):
            raise RuntimeError(f"{what}: no files in {folder} and download is false; set download to true or copy them there")

    def load(self) -> Dataset:
        import torch_geometric.datasets as pyg

        if self.dataset == "KarateClub":
            graph = pyg.KarateClub()[0]
            return Dataset(graph, graph.y.long(), int(graph.y.max()) + 1, name="KarateClub")
        if self.dataset in PLANETOID:
            self._require_files(Path(self.root) / self.dataset / "raw", self.dataset)
            data = pyg.Planetoid(self.root, self.dataset, split=self.split)
            graph = data[0]
            splits = {"train": graph.train_mask.nonzero().flatten(), "test": graph.test_mask.nonzero().flatten()}
            return Dataset(graph, graph.y.long(), data.num_classes, splits=splits, name=self.dataset)
        self._require_files(Path(self.root) / self.name / "raw", f"TUDataset {self.name}")
        data = pyg.TUDataset(self.root, self.name)
        graphs = [data[i] for i in range(len(data))]
        if graphs[0].x is None:
            for g in graphs:
                g.x = torch.ones(g.num_nodes, 1)
        targets = torch.cat([g.y.view(-1) for g in graphs]).long()
        return Dataset(graphs, targets, int(targets.max()) + 1, name=self.name)
