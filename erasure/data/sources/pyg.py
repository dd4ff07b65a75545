"""PyTorch Geometric datasets: node classification (Planetoid, KarateClub) and graph classification (TUDataset).

Node classification: the samples are the nodes of one graph (``Dataset.inputs``
is the PyG ``Data``; a batch is a ``NodeBatch``). Forgetting nodes means:
their labels leave the training set *and* every edge incident to them leaves
the graph (the nodes stay, isolated, so indices do not move). The original model
is trained on the full graph; the gold model retrains on the retain nodes over
the edge-pruned graph, and the unlearners and evaluators see that same pruned
graph (see :meth:`erasure.data.partitions.Partitions.before_forget`).

Graph classification: every graph is a sample; forgetting a graph removes it.

Files under ``root`` are data, never code: PyG itself unpickles processed files
with ``torch.load(weights_only=False)`` (and falls back to it) and Planetoid's raw
files with ``pickle``; :func:`no_code_from_pickles` makes both refuse anything but
tensors, PyG's registered data classes and plain numpy/scipy arrays.
"""
from __future__ import annotations

import _compat_pickle
import contextlib
import os
import pickle
import types
from pathlib import Path
from typing import Any, Iterator, Literal

import torch

from erasure.core.errors import ConfigError
from erasure.core.params import PathText
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
                 root: PathText = "data/pyg", name: str | None = None,
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
        try:
            with no_code_from_pickles():
                return self._load()
        except pickle.UnpicklingError as exc:
            raise RuntimeError(f"refusing to unpickle a file under {self.root!r} that holds more than data "
                               f"({' '.join(str(exc).split())[:200]}); delete the dataset's processed/ folder "
                               "to rebuild it, or fetch its raw files again") from exc

    def _load(self) -> Dataset:
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


#: What Planetoid's raw files (pickled numpy arrays, scipy sparse matrices, a defaultdict of lists) may hold.
PLANETOID_GLOBALS = {
    ("builtins", "object"), ("builtins", "list"), ("builtins", "dict"), ("builtins", "set"),
    ("collections", "defaultdict"), ("collections", "OrderedDict"), ("copyreg", "_reconstructor"),
    ("_codecs", "encode"),  # bytes in protocol-2 pickles written by Python 3
    ("numpy", "ndarray"), ("numpy", "dtype"),
    *((f"numpy.{core}.{module}", name) for core in ("core", "_core")
      for module, name in (("multiarray", "_reconstruct"), ("multiarray", "scalar"), ("numeric", "_frombuffer"))),
    *((f"scipy.sparse{module}", f"{kind}_matrix") for kind in ("csr", "csc", "coo", "lil")
      for module in ("", f".{kind}", f"._{kind}")),
}


class DataUnpickler(pickle.Unpickler):
    """An unpickler that rebuilds only the classes in :data:`PLANETOID_GLOBALS` (no callable that runs code)."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _compat_pickle.NAME_MAPPING:  # Python 2 names (the raw files are Python 2 pickles)
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        if (module, name) not in PLANETOID_GLOBALS:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a data file")
        return super().find_class(module, name)


@contextlib.contextmanager
def no_code_from_pickles() -> Iterator[None]:
    """Within the block, every ``torch.load`` is weights-only (torch's ``TORCH_FORCE_WEIGHTS_ONLY_LOAD``,
    which also overrides PyG's explicit ``weights_only=False``; PyG registers its data classes as
    safe globals) and Planetoid's raw-file reader uses :class:`DataUnpickler`."""
    import torch_geometric.io.planetoid as planetoid
    import torch_geometric.typing

    if not torch_geometric.typing.WITH_PT24:
        raise RuntimeError("loading PyG data without running code from its files needs torch >= 2.4")
    previous_env = os.environ.get("TORCH_FORCE_WEIGHTS_ONLY_LOAD")
    previous_pickle = planetoid.pickle
    os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] = "1"
    planetoid.pickle = types.SimpleNamespace(load=lambda f, **kw: DataUnpickler(f, **kw).load(),
                                             UnpicklingError=pickle.UnpicklingError)
    try:
        yield
    finally:
        planetoid.pickle = previous_pickle
        if previous_env is None:
            os.environ.pop("TORCH_FORCE_WEIGHTS_ONLY_LOAD", None)
        else:
            os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] = previous_env
