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


def write_moleculenet(root: Path, name: str = "BBBP", labels: list[list[float]] | None = None, empty: tuple[int, ...] = (5,),
                      seed: int = 0) -> list[list[float]]:
    """MoleculeNet as PyG leaves it after processing (``root/<name>/processed/data.pt``, written by
    ``InMemoryDataset.save``, beside its raw CSV), so loading needs neither RDKit nor a download:
    chains of atoms with 9 integer features, labels of shape (1, tasks) as floats, and graphs
    without atoms at ``empty`` (a SMILES RDKit could not parse). Returns the labels written."""
    import torch
    from torch_geometric.data import Data, InMemoryDataset
    from torch_geometric.datasets import MoleculeNet

    labels = labels if labels is not None else [[float(i % 2)] for i in range(12)]
    folder = root / name.lower()
    (folder / "raw").mkdir(parents=True, exist_ok=True)
    (folder / "processed").mkdir(exist_ok=True)
    (folder / "raw" / f"{MoleculeNet.names[name.lower()][2]}.csv").write_text("smiles,label\n")
    g = torch.Generator().manual_seed(seed)
    graphs = []
    for i, y in enumerate(labels):
        n = 0 if i in empty else 3 + i % 4 + int(y[0] == 1) * 3  # the positive molecules are larger
        chain = [[j, j + 1] for j in range(n - 1)]
        edges = torch.tensor(chain + [[b, a] for a, b in chain], dtype=torch.long).reshape(-1, 2).t()
        graphs.append(Data(x=torch.randint(0, 5, (n, 9), generator=g), edge_index=edges,
                           edge_attr=torch.zeros(edges.shape[1], 3, dtype=torch.long), y=torch.tensor([y]),
                           smiles="C" * max(n, 1)))
    InMemoryDataset.save(graphs, folder / "processed" / "data.pt")
    return labels


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


def write_celeba(root: Path, identities: list[int], partition: list[int], size: tuple[int, int] = (10, 12),
                 seed: int = 0) -> np.ndarray:
    """CelebA as torchvision reads it (``root/celeba``): aligned JPEGs and the five label files.

    ``partition`` holds 0 (train), 1 (valid) or 2 (test) per image. Returns the attributes written
    (N, 40) as 0/1; attribute ``Smiling`` is 1 for even identities, so it can be learnt.
    """
    from PIL import Image

    from erasure.data.sources.torchvision import CELEBA_ATTRIBUTES

    rng = np.random.default_rng(seed)
    folder = root / "celeba"
    (folder / "img_align_celeba").mkdir(parents=True, exist_ok=True)
    n = len(identities)
    names = [f"{i + 1:06d}.jpg" for i in range(n)]
    attrs = rng.integers(0, 2, (n, len(CELEBA_ATTRIBUTES)))
    attrs[:, CELEBA_ATTRIBUTES.index("Smiling")] = [1 - person % 2 for person in identities]
    for name, person in zip(names, identities):
        pixels = rng.integers(0, 60, (size[1], size[0], 3), dtype=np.uint8)
        pixels[:, :, 0] += np.uint8(150 * (1 - person % 2))  # smiling faces are redder
        Image.fromarray(pixels).save(folder / "img_align_celeba" / name, quality=95)
    (folder / "list_eval_partition.txt").write_text("".join(f"{f} {p}\n" for f, p in zip(names, partition)))
    (folder / "identity_CelebA.txt").write_text("".join(f"{f} {p}\n" for f, p in zip(names, identities)))
    (folder / "list_attr_celeba.txt").write_text(
        f"{n}\n{' '.join(CELEBA_ATTRIBUTES)} \n"
        + "".join(f"{f} {' '.join(f'{2 * a - 1:2d}' for a in row)}\n" for f, row in zip(names, attrs)))
    (folder / "list_bbox_celeba.txt").write_text(
        f"{n}\nimage_id x_1 y_1 width height\n" + "".join(f"{f}    95  71 226 313\n" for f in names))
    (folder / "list_landmarks_align_celeba.txt").write_text(
        f"{n}\nlefteye_x lefteye_y righteye_x righteye_y nose_x nose_y leftmouth_x leftmouth_y rightmouth_x rightmouth_y\n"
        + "".join(f"{f} 69 109 106 113 77 142 73 152 108 154\n" for f in names))
    return attrs


WORDS = ["good", "great", "fine", "bad", "awful", "poor", "film", "plot", "the"]


def write_tiny_transformer(folder: Path, architecture: str = "bert", num_labels: int = 2, positions: int = 16) -> None:
    """A randomly initialised sequence classifier and its tokenizer, written with ``save_pretrained`` into ``folder``.

    ``bert``: a WordPiece tokenizer over a small vocab file, padding id 0. ``distilbert`` and
    ``deberta``: a word-level tokenizer whose padding id is 1 (id 0 is the unknown word), so the
    swap of padding ids is exercised.
    """
    import transformers
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

    folder.mkdir(parents=True, exist_ok=True)
    if architecture == "bert":
        (folder / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n")
        tokenizer = transformers.BertTokenizerFast(str(folder / "vocab.txt"))
    else:
        vocab = {w: i for i, w in enumerate(["[UNK]", "[PAD]", "[CLS]", "[SEP]", *WORDS])}
        core = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
        core.normalizer = normalizers.Lowercase()
        core.pre_tokenizer = pre_tokenizers.Whitespace()
        core.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
        tokenizer = transformers.PreTrainedTokenizerFast(tokenizer_object=core, unk_token="[UNK]", pad_token="[PAD]",
                                                         cls_token="[CLS]", sep_token="[SEP]")
    sizes = {"vocab_size": len(tokenizer), "max_position_embeddings": positions, "num_labels": num_labels,
             "pad_token_id": tokenizer.pad_token_id}
    if architecture == "bert":
        model = transformers.BertForSequenceClassification(transformers.BertConfig(
            hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, **sizes))
    elif architecture == "distilbert":
        model = transformers.DistilBertForSequenceClassification(transformers.DistilBertConfig(
            dim=16, n_layers=1, n_heads=2, hidden_dim=32, **sizes))
    else:
        model = transformers.DebertaV2ForSequenceClassification(transformers.DebertaV2Config(
            hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, pooler_hidden_size=16, **sizes))
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def write_sentiment(folder: Path, n: int = 60, seed: int = 0) -> list[str]:
    """A ``save_to_disk`` folder of short texts: label 0 uses positive words, label 1 negative ones."""
    import random

    import datasets

    rng = random.Random(seed)
    texts = [" ".join(rng.choice(WORDS[:3] if i % 2 == 0 else WORDS[3:6]) for _ in range(3)) + " film" for i in range(n)]
    datasets.Dataset.from_dict({"text": texts, "label": [i % 2 for i in range(n)]}).save_to_disk(str(folder))
    return texts
