"""Writers of tiny datasets in each library's own on-disk format (for tests; no download)."""
from __future__ import annotations

import pickle
import struct
from pathlib import Path

import numpy as np


def write_mnist(root: Path, n_train: int = 40, n_test: int = 20, seed: int = 0) -> None:
    """MNIST idx files (uncompressed) as torchvision expects them in ``root/MNIST/raw``."""
    rng = np.random.default_rng(seed)
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = (np.arange(n) % 10).astype(np.uint8)
        images = (rng.random((n, 28, 28)) * 60).astype(np.uint8)
        images[np.arange(n), 2 + labels * 2, 2 + labels * 2] = 255  # a class-dependent bright pixel
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(struct.pack(">IIII", 0x803, n, 28, 28) + images.tobytes())
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(struct.pack(">II", 0x801, n) + labels.tobytes())


def write_cifar(root: Path, hundred: bool = False, n_train: int = 50, n_test: int = 20, seed: int = 0) -> dict:
    """CIFAR-10 or CIFAR-100 python pickled batches; returns the labels written."""
    rng = np.random.default_rng(seed)
    classes = 100 if hundred else 10
    folder = root / ("cifar-100-python" if hundred else "cifar-10-batches-py")
    folder.mkdir(parents=True, exist_ok=True)
    key = "fine_labels" if hundred else "labels"
    written = {}
    names = ["train", "test"] if hundred else ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch"]
    sizes = [n_train, n_test] if hundred else [n_train // 5] * 5 + [n_test]
    for name, n in zip(names, sizes):
        labels = rng.integers(0, classes, n)
        data = rng.integers(0, 255, (n, 3 * 32 * 32), dtype=np.uint8)
        with open(folder / name, "wb") as f:
            pickle.dump({"data": data, key: labels.tolist()}, f)
        written[name] = labels
    meta = {"fine_label_names": [f"c{i}" for i in range(100)]} if hundred else {"label_names": [f"c{i}" for i in range(10)]}
    with open(folder / ("meta" if hundred else "batches.meta"), "wb") as f:
        pickle.dump(meta, f)
    return written


def write_tudataset(root: Path, name: str = "TOY", n_graphs: int = 12, seed: int = 0) -> None:
    """TUDataset raw text files (``root/NAME/raw/NAME_*.txt``): rings (class 0) and stars (class 1)."""
    rng = np.random.default_rng(seed)
    raw = root / name / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    edges, indicator, graph_labels, node_labels = [], [], [], []
    node = 1
    for g in range(n_graphs):
        label = g % 2
        size = int(rng.integers(4, 8))
        ids = list(range(node, node + size))
        pairs = [(ids[i], ids[(i + 1) % size]) for i in range(size)] if label == 0 else [(ids[0], j) for j in ids[1:]]
        for a, b in pairs:
            edges += [(a, b), (b, a)]
        indicator += [g + 1] * size
        node_labels += [0] * size if label == 0 else [1] + [0] * (size - 1)
        graph_labels.append(label)
        node += size
    (raw / f"{name}_A.txt").write_text("".join(f"{a}, {b}\n" for a, b in edges))
    (raw / f"{name}_graph_indicator.txt").write_text("".join(f"{i}\n" for i in indicator))
    (raw / f"{name}_graph_labels.txt").write_text("".join(f"{y}\n" for y in graph_labels))
    (raw / f"{name}_node_labels.txt").write_text("".join(f"{y}\n" for y in node_labels))


def write_planetoid(root: Path, name: str = "Cora", n_train: int = 14, n_all: int = 520, n_test: int = 20,
                    classes: int = 7, dim: int = 8, seed: int = 0) -> None:
    """Planetoid raw files (``ind.<name>.{x,tx,allx,y,ty,ally,graph,test.index}``): a ring of ``n_all + n_test`` nodes.

    PyG needs ``n_all >= n_train + 500`` (its public split's 500 validation nodes).
    """
    rng = np.random.default_rng(seed)
    raw = root / name / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    n = n_all + n_test
    labels = np.arange(n) % classes
    onehot = np.eye(classes, dtype=np.float32)[labels]
    features = (rng.random((n, dim)) < 0.3).astype(np.float32)
    features[np.arange(n), labels % dim] = 1.0
    graph = {i: [(i - 1) % n, (i + 1) % n] for i in range(n)}
    parts = {"x": features[:n_train], "allx": features[:n_all], "tx": features[n_all:],
             "y": onehot[:n_train], "ally": onehot[:n_all], "ty": onehot[n_all:], "graph": graph}
    prefix = name.lower()
    for key, value in parts.items():
        with open(raw / f"ind.{prefix}.{key}", "wb") as f:
            pickle.dump(value, f)
    (raw / f"ind.{prefix}.test.index").write_text("".join(f"{i}\n" for i in range(n_all, n)))
