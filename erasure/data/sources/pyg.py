"""PyTorch Geometric datasets: any ``torch_geometric.datasets`` class, node or graph classification.

Node classification (a dataset of one graph: Planetoid, KarateClub, ``FakeDataset(task="node")``):
the samples are the nodes of the graph (``Dataset.inputs`` is the PyG ``Data``; a batch is a
``NodeBatch``). Forgetting nodes means: their labels leave the training set *and* every edge
incident to them leaves the graph (the nodes stay, isolated, so indices do not move). The
original model is trained on the full graph; the gold model retrains on the retain nodes over
the edge-pruned graph, and the unlearners and evaluators see that same pruned graph (see
:meth:`erasure.data.partitions.Partitions.before_forget`).

Graph classification (several graphs: TUDataset, MoleculeNet, ``FakeDataset``): every graph is
a sample; forgetting a graph removes it.

Files under ``root`` are data, never code: PyG itself unpickles processed files
with ``torch.load(weights_only=False)`` (and falls back to it) and Planetoid's raw
files with ``pickle``; :func:`no_code_from_pickles` makes both refuse anything but
tensors, PyG's registered data classes and plain numpy/scipy arrays.
"""
from __future__ import annotations

import _compat_pickle
import contextlib
import inspect
import os
import pickle
import random
import types
from typing import Any, Iterator, Literal

import numpy as np
import torch

from erasure.core.errors import ConfigError, closest, join_path
from erasure.core.params import PathText, check_parameters
from erasure.data.dataset import Dataset, DataSource

PLANETOID = ("Cora", "CiteSeer", "PubMed")
#: Constructor arguments that take functions, which a config cannot give.
TAKES_A_FUNCTION = ("transform", "pre_transform", "pre_filter", "from_smiles")


def dataset_class(name: str) -> type:
    """The ``torch_geometric.datasets`` class called ``name`` (a ``torch_geometric.data.Dataset``).

    Any other name is a :class:`ConfigError` at ``dataset`` that lists the closest class names.
    See https://pytorch-geometric.readthedocs.io/en/latest/modules/datasets.html.
    """
    import torch_geometric.datasets as pyg
    from torch_geometric.data import Dataset as PyGDataset

    classes = {n: c for n, c in vars(pyg).items()
               if isinstance(c, type) and issubclass(c, PyGDataset) and not n.startswith("_")}
    if name in classes:
        return classes[name]
    close = closest(name, [*classes, *PLANETOID], n=3, cutoff=0.5)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    raise ConfigError(f"{name!r} is not a torch_geometric.datasets class{hint} "
                      f"(e.g. {', '.join([*PLANETOID, 'KarateClub', 'TUDataset', 'MoleculeNet', 'FakeDataset'])})",
                      "dataset")


@contextlib.contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Python, NumPy and torch (CPU) draws seeded with ``seed`` inside the block; their states restored after."""
    python_state, numpy_state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        random.seed(seed)
        np.random.seed(seed)
        torch.default_generator.manual_seed(seed)
        try:
            yield
        finally:
            random.setstate(python_state)
            np.random.set_state(numpy_state)


def _refusing_download(cls: type, what: str) -> type:
    """``cls`` whose ``download`` raises (PyG calls it only when raw files are missing); ``cls`` itself
    when it downloads nothing (KarateClub, FakeDataset)."""
    from torch_geometric.data import Dataset as PyGDataset

    if cls.download is PyGDataset.download:
        return cls

    def download(self: Any) -> None:
        raise RuntimeError(f"{what}: no files in {self.raw_dir} and download is false; "
                           "set download to true or copy them there")

    return type(cls.__name__, (cls,), {"download": download, "__module__": cls.__module__})


class PyGSource(DataSource):
    """A ``torch_geometric.datasets`` class by name (``dataset``), its own arguments in ``parameters``.

    ``dataset`` is ``Cora``, ``CiteSeer`` or ``PubMed`` (Planetoid, ``split`` public/full/random)
    or any class of ``torch_geometric.datasets``: ``KarateClub``, ``TUDataset`` (``name`` MUTAG,
    PROTEINS...), ``MoleculeNet`` (``name`` BACE, BBBP, HIV; needs RDKit), ``FakeDataset``
    (``parameters`` ``{"num_graphs": 200}``, ``{"task": "node"}``)...; ``name`` is the class's
    ``name`` argument, ``parameters`` its other arguments (not ``root`` nor functions), checked
    against its signature. A dataset of one graph is node classification, of several graphs
    graph classification. Planetoid keeps its official train/test masks as the split (validation
    nodes are in neither); any node graph with ``train_mask`` and ``test_mask`` does the same;
    others have no test split: ``data.split`` applies. Graphs without node features get a
    constant feature; graphs without nodes are dropped. Classes that generate data at random are
    seeded with 0, so every load gives the same data. ``download`` false refuses to fetch
    missing files. https://pytorch-geometric.readthedocs.io/en/latest/modules/datasets.html
    """

    def __init__(self, dataset: str = "Cora", root: PathText = "data/pyg", name: str | None = None,
                 split: Literal["public", "full", "random"] = "public", download: bool = True,
                 parameters: dict[str, Any] = {}):  # noqa: B006 (read-only default, stored as given)
        self.dataset = dataset
        self.root = root
        self.name = name
        self.split = split
        self.download = download
        self.parameters = parameters

    def check(self) -> None:
        cls = dataset_class(self._class_name())
        accepted = inspect.signature(cls.__init__).parameters
        for key in self.parameters:
            if key in ("root", "name") or (key == "split" and cls.__name__ == "Planetoid"):
                raise ConfigError(f"set {key!r} with PyGSource's own parameter, not inside 'parameters'",
                                  join_path("parameters", key))
            if key in TAKES_A_FUNCTION:
                raise ConfigError(f"{key!r} takes a function, which a config cannot give", join_path("parameters", key))
        if "name" in accepted and accepted["name"].default is inspect.Parameter.empty and self._name() is None:
            raise ConfigError(f"'name' is required for {cls.__name__} (e.g. MUTAG for TUDataset, BACE for MoleculeNet)",
                              "name")
        if self.name is not None and "name" not in accepted:
            raise ConfigError(f"{cls.__name__} takes no 'name'", "name")
        check_parameters(cls, self._arguments(cls), "parameters", provided={"root"})

    def _class_name(self) -> str:
        return "Planetoid" if self.dataset in PLANETOID else self.dataset

    def _name(self) -> str | None:
        return self.dataset if self.dataset in PLANETOID else self.name

    def _arguments(self, cls: type) -> dict[str, Any]:
        """The class's keyword arguments, ``root`` aside."""
        arguments = dict(self.parameters)
        if self._name() is not None:
            arguments["name"] = self._name()
        if cls.__name__ == "Planetoid":
            arguments["split"] = self.split
        return arguments

    def _open(self) -> Any:
        """An instance of the dataset class, seeded, with downloads refused unless ``download``."""
        cls = dataset_class(self._class_name())
        if not self.download:
            cls = _refusing_download(cls, self.dataset if self.name is None else f"{self.dataset} {self.name}")
        arguments = self._arguments(cls)
        if "root" in inspect.signature(cls.__init__).parameters:
            arguments["root"] = self.root
        with _seeded(0):
            return cls(**arguments)

    def load(self) -> Dataset:
        try:
            with no_code_from_pickles():
                return self._load()
        except pickle.UnpicklingError as exc:
            raise RuntimeError(f"refusing to unpickle a file under {self.root!r} that holds more than data "
                               f"({' '.join(str(exc).split())[:200]}); delete the dataset's processed/ folder "
                               "to rebuild it, or fetch its raw files again") from exc

    def _load(self) -> Dataset:
        data = self._open()
        label = self._name() or self.dataset
        graphs = [data[i] for i in range(len(data))]
        if len(graphs) == 1 and getattr(graphs[0], "y", None) is not None and graphs[0].y.numel() == graphs[0].num_nodes:
            graph = graphs[0]
            splits = {}
            masks = [getattr(graph, key, None) for key in ("train_mask", "test_mask")]
            if all(m is not None and m.dim() == 1 for m in masks):  # (several splits as columns: not official)
                splits = {"train": graph.train_mask.nonzero().flatten(), "test": graph.test_mask.nonzero().flatten()}
            targets = graph.y.view(-1).long()
            return Dataset(graph, targets, int(targets.max()) + 1, splits=splits, name=label)
        graphs = [g for g in graphs if g.num_nodes]
        if not graphs:
            raise RuntimeError(f"{label}: no graph has nodes")
        odd = next((g for g in graphs if getattr(g, "y", None) is None or g.y.numel() != 1), None)
        if odd is not None:
            shape = "no y" if getattr(odd, "y", None) is None else f"y of shape {tuple(odd.y.shape)}"
            raise RuntimeError(f"{label}: labels must be one class per node of a single graph (node classification) "
                               f"or one per graph (graph classification); a graph has {shape} (multi-label and "
                               "multi-task targets are not single-label classes)")
        for g in graphs:
            if g.x is None:
                g.x = torch.ones(g.num_nodes, 1)
        targets = torch.cat([g.y.view(-1) for g in graphs])
        if targets.is_floating_point() and torch.isnan(targets).any():
            raise RuntimeError(f"{label}: {int(torch.isnan(targets).sum())} graphs have no label (NaN)")
        targets = targets.long()
        return Dataset(graphs, targets, int(targets.max()) + 1, name=label)


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
