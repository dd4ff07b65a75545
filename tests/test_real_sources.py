"""Real data sources load files written in each library's own format, with downloads off."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from real_formats import write_cifar, write_mnist, write_tudataset  # noqa: E402

from erasure.core.errors import ConfigError  # noqa: E402
from erasure.data.dataset import Dataset  # noqa: E402
from erasure.data.forget import RandomForget  # noqa: E402
from erasure.data.partitions import Partitions, Split, make_partitions  # noqa: E402
from erasure.data.sources.huggingface import HuggingFaceSource  # noqa: E402
from erasure.data.sources.pyg import PyGSource  # noqa: E402
from erasure.data.sources.torchvision import CIFAR100_COARSE, TorchVisionSource  # noqa: E402
from erasure.data.sources.uci import UCISource  # noqa: E402


@pytest.fixture
def no_md5(monkeypatch):
    """torchvision checks CIFAR files against the real archives' MD5 sums; ours are tiny fakes."""
    import torchvision.datasets.cifar as cifar

    monkeypatch.setattr(cifar, "check_integrity", lambda *a, **k: True)


# ------------------------------------------------------------------ torchvision
def test_mnist_idx_files_keep_the_official_split(tmp_path):
    write_mnist(tmp_path, n_train=40, n_test=20)
    ds = TorchVisionSource("MNIST", str(tmp_path), download=False, num_workers=0).load()
    assert ds.inputs.shape == (60, 1, 28, 28) and ds.kind == "tensor"
    assert ds.splits["train"].tolist() == list(range(40)) and ds.splits["test"].tolist() == list(range(40, 60))
    raw = (tmp_path / "MNIST/raw/t10k-images-idx3-ubyte").read_bytes()[16:]
    first_test = torch.as_tensor(np.frombuffer(raw, np.uint8)[: 28 * 28].reshape(28, 28).copy()).float() / 255
    assert torch.allclose(ds.inputs[40, 0], first_test)
    assert ds.targets[:12].tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1] and ds.num_classes == 10


def test_transforms_are_applied_and_checked(tmp_path):
    write_mnist(tmp_path)
    normalize = [{"class": "Normalize", "parameters": {"mean": [0.5], "std": [0.5]}}]
    ds = TorchVisionSource("MNIST", str(tmp_path), download=False, transform=normalize, num_workers=0).load()
    assert ds.inputs.min() < -0.9 and ds.inputs.max() == 1.0
    resized = TorchVisionSource("MNIST", str(tmp_path), download=False, num_workers=0,
                                transform=[{"class": "Resize", "parameters": {"size": 14}}]).load()
    assert resized.input_shape == (1, 14, 14)
    with pytest.raises(ConfigError, match="random augmentation"):
        TorchVisionSource("MNIST", transform=[{"class": "RandomHorizontalFlip"}]).check()
    with pytest.raises(ConfigError, match="torchvision.transforms"):
        TorchVisionSource("MNIST", str(tmp_path), download=False, transform=[{"class": "os.system"}]).load()


def test_missing_files_with_download_off_say_so(tmp_path):
    with pytest.raises(RuntimeError, match="download is false"):
        TorchVisionSource("MNIST", str(tmp_path), download=False).load()


def test_cifar10_pickled_batches(tmp_path, no_md5):
    written = write_cifar(tmp_path, n_train=50, n_test=20)
    ds = TorchVisionSource("CIFAR10", str(tmp_path), download=False, num_workers=0).load()
    expected = np.concatenate([written[f"data_batch_{i}"] for i in range(1, 6)] + [written["test_batch"]])
    assert ds.inputs.shape == (70, 3, 32, 32) and ds.targets.tolist() == expected.tolist()
    assert len(ds.splits["train"]) == 50 and ds.num_classes == 10


def test_cifar100_coarse_labels_and_cifar20_targets(tmp_path, no_md5):
    written = write_cifar(tmp_path, hundred=True, n_train=60, n_test=20)
    fine = TorchVisionSource("CIFAR100", str(tmp_path), download=False, num_workers=0).load()
    assert fine.num_classes == 100 and fine.targets.tolist() == list(written["train"]) + list(written["test"])
    coarse_table = torch.as_tensor(CIFAR100_COARSE)
    assert torch.equal(fine.attributes["coarse"], coarse_table[fine.targets])
    assert torch.bincount(coarse_table).tolist() == [5] * 20  # five sub-classes per superclass
    # rocket→vehicles 2, mushroom→fruit and vegetables, baby→people, lamp→household electrical, sea→outdoor scenes
    assert [CIFAR100_COARSE[i] for i in (69, 51, 2, 40, 71)] == [19, 4, 14, 5, 10]
    c20 = TorchVisionSource("CIFAR100", str(tmp_path), download=False, target="coarse", num_workers=0).load()
    assert c20.num_classes == 20 and torch.equal(c20.targets, fine.attributes["coarse"])
    assert torch.equal(c20.attributes["fine"], fine.targets)
    with pytest.raises(ConfigError, match="CIFAR100 only"):
        TorchVisionSource("CIFAR10", target="coarse").check()


@pytest.mark.parametrize("workers", [0, 1])
def test_large_sets_stay_lazy_and_batch_like_tensors(tmp_path, no_md5, workers):
    write_cifar(tmp_path, n_train=50, n_test=20)
    eager = TorchVisionSource("CIFAR10", str(tmp_path), download=False, num_workers=0).load()
    lazy = TorchVisionSource("CIFAR10", str(tmp_path), download=False, num_workers=workers, max_memory_gb=1e-4).load()
    assert lazy.kind == "lazy" and lazy.input_shape == (3, 32, 32) and lazy.fingerprint() != eager.fingerprint()
    index = {"train": eager.splits["train"]}
    got = list(Partitions(lazy, index).batches("train", 16, shuffle=True, generator=torch.Generator().manual_seed(3), drop_last=True))
    want = list(Partitions(eager, index).batches("train", 16, shuffle=True, generator=torch.Generator().manual_seed(3), drop_last=True))
    assert len(got) == len(want) == 3
    for (x1, y1), (x2, y2) in zip(got, want):
        assert torch.equal(x1, x2) and torch.equal(y1, y2)
    assert torch.equal(lazy.take(torch.tensor([5, 60])), eager.inputs[[5, 60]])


# ---------------------------------------------------------------- Hugging Face
def _text_parquet(tmp_path):
    import datasets

    features = datasets.Features({"text": datasets.Value("string"), "label": datasets.ClassLabel(names=["pos", "neg"]),
                                  "topic": datasets.Value("string")})
    train = datasets.Dataset.from_dict({"text": ["good great film", "bad awful film"] * 6, "label": [0, 1] * 6,
                                        "topic": ["a", "a", "b"] * 4}, features=features)
    test = datasets.Dataset.from_dict({"text": ["good unseenword film film film"], "label": [0], "topic": ["b"]}, features=features)
    train.to_parquet(str(tmp_path / "train.parquet"))
    test.to_parquet(str(tmp_path / "test.parquet"))
    return {"train": str(tmp_path / "train.parquet"), "test": str(tmp_path / "test.parquet")}


def test_hf_parquet_text_is_tokenised_once_with_a_train_vocabulary(tmp_path):
    files = _text_parquet(tmp_path)
    source = HuggingFaceSource("parquet", data_files=files, max_length=4, vocab_size=6, attribute_columns=["topic"],
                               cache_dir=str(tmp_path / "cache"))
    ds = source.load()
    assert ds.inputs.shape == (13, 4) and ds.inputs.dtype == torch.long and ds.info["vocab_size"] == 6
    assert ds.splits["test"].tolist() == [12] and ds.num_classes == 2 and ds.info["class_names"] == ["pos", "neg"]
    film, good = ds.inputs[0, 2], ds.inputs[0, 0]
    assert ds.inputs[12].tolist() == [good, 1, film, film]  # unknown word → 1, cut at max_length
    assert int(ds.inputs.max()) < 6  # vocab_size honoured (4 words + pad + unknown)
    assert ds.attributes["topic"].tolist()[:3] == [0, 0, 1]


def test_hf_without_official_split_refits_vocabulary_on_train(tmp_path):
    files = _text_parquet(tmp_path)
    source = HuggingFaceSource("parquet", data_files={"train": files["test"]}, split="train", max_length=5,
                               cache_dir=str(tmp_path / "cache"))
    ds = source.load()
    assert ds.splits == {}
    prepared = source.prepare(ds, torch.tensor([0]))
    assert prepared.inputs[0].tolist() == [3, 4, 2, 2, 2]  # film (3 times) → 2, then good → 3, unseenword → 4


def test_hf_save_to_disk_images_and_tabular(tmp_path):
    import datasets

    rng = np.random.default_rng(0)
    arrays = [rng.integers(0, 255, (8, 8, 3), dtype=np.uint8) for _ in range(10)]
    table = datasets.Dataset.from_dict(
        {"image": arrays, "label": list(range(5)) * 2, "a": rng.normal(5, 2, 10).tolist(), "b": list(range(10))},
        features=datasets.Features({"image": datasets.Image(), "label": datasets.Value("int64"),
                                    "a": datasets.Value("float32"), "b": datasets.Value("int64")}))
    datasets.DatasetDict({"fit": table, "eval": table.select(range(4))}).save_to_disk(str(tmp_path / "hf"))
    images = HuggingFaceSource(str(tmp_path / "hf"), input_column="image", split={"train": "fit", "test": "eval"}).load()
    assert images.inputs.shape == (14, 3, 8, 8) and images.num_classes == 5
    assert torch.allclose(images.inputs[1], torch.as_tensor(arrays[1]).permute(2, 0, 1).float() / 255)
    source = HuggingFaceSource(str(tmp_path / "hf"), input_column=["a", "b"], split={"train": "fit", "test": "eval"})
    tab = source.load()
    prepared = source.prepare(tab, tab.splits["train"])
    assert tab.inputs.shape == (14, 2)
    assert torch.allclose(prepared.inputs[:10].mean(0), torch.zeros(2), atol=1e-5)
    with pytest.raises(ConfigError, match="splits"):
        HuggingFaceSource(str(tmp_path / "hf"), input_column="image", split={"train": "x", "test": "eval"}).load()


# ------------------------------------------------------------------------- UCI
def _adult_like(n=60, seed=0):
    from ucimlrepo.dotdict import dotdict

    rng = np.random.default_rng(seed)
    features = pd.DataFrame({"age": rng.integers(18, 70, n).astype(float), "workclass": rng.choice(["Private", "Gov", None], n),
                             "sex": rng.choice(["Male", "Female"], n), "hours": rng.normal(40, 5, n)})
    features.loc[3, "age"] = np.nan
    targets = pd.DataFrame({"income": rng.choice(["<=50K", ">50K", "<=50K.", ">50K."], n)})
    variables = pd.DataFrame({"name": ["age", "workclass", "sex", "hours", "income"], "role": ["Feature"] * 4 + ["Target"],
                              "type": ["Integer", "Categorical", "Binary", "Continuous", "Binary"]})
    repo = dotdict({"data": dotdict({"features": features, "targets": targets, "original": pd.concat([features, targets], axis=1)}),
                    "variables": variables, "metadata": dotdict({"name": "Adult"})})
    return repo


def test_uci_mixed_types_attributes_and_train_standardisation(monkeypatch):
    import ucimlrepo

    repo = _adult_like()
    calls = []
    monkeypatch.setattr(ucimlrepo, "fetch_ucirepo", lambda **k: calls.append(k) or repo)
    source = UCISource(id=2, attribute_columns=["sex"])
    ds = source.load()
    assert calls == [{"id": 2}]
    assert ds.inputs.shape == (60, 2 + 3) and ds.num_classes == 2  # age, hours + workclass one-hot (3 with missing)
    income = repo.data.targets["income"].str.rstrip(".")
    assert ds.targets.tolist() == (income == ">50K").astype(int).tolist()
    assert ds.attributes["sex"].tolist() == (repo.data.features["sex"] == "Male").astype(int).tolist()
    assert set(ds.inputs[:, 2:].sum(1).tolist()) == {1.0}
    train = torch.arange(40)
    prepared = source.prepare(ds, train)
    assert torch.allclose(prepared.inputs[train, :2].mean(0), torch.zeros(2), atol=1e-5)
    assert prepared.inputs[3, 0] == 0  # missing → train mean
    assert not torch.allclose(prepared.inputs[40:, :2].mean(0), torch.zeros(2), atol=1e-3)  # fitted on train only
    kept = UCISource(id=2, attribute_columns=["sex"], drop_attributes=False).load()
    assert kept.inputs.shape[1] == ds.inputs.shape[1] + 2


def test_uci_network_failure_points_to_a_local_csv(monkeypatch, tmp_path):
    import ucimlrepo

    def offline(**kwargs):
        raise ConnectionError("Error connecting to server")

    monkeypatch.setattr(ucimlrepo, "fetch_ucirepo", offline)
    with pytest.raises(RuntimeError, match="'path'"):
        UCISource(name="adult").load()
    repo = _adult_like()
    repo.data.original.to_csv(tmp_path / "adult.csv", index=False)
    local = UCISource(path=str(tmp_path / "adult.csv"), target="income", attribute_columns=["sex"]).load()
    assert local.inputs.shape == (60, 5) and local.num_classes == 2
    with pytest.raises(ConfigError, match="target"):
        UCISource(path="x.csv").check()


# ------------------------------------------------------------------------- PyG
def test_tudataset_raw_files(tmp_path):
    write_tudataset(tmp_path, "TOY", n_graphs=12)
    ds = PyGSource("TUDataset", str(tmp_path), name="TOY", download=False).load()
    assert ds.kind == "graph_list" and len(ds) == 12 and ds.targets.tolist() == [0, 1] * 6
    assert ds.input_shape == (2,)  # one-hot node labels
    assert ds.inputs[1].num_edges == 2 * (ds.inputs[1].num_nodes - 1)  # a star
    with pytest.raises(RuntimeError, match="download is false"):
        PyGSource("TUDataset", str(tmp_path), name="MISSING", download=False).load()


def test_forgetting_nodes_prunes_their_edges():
    ds = PyGSource("KarateClub").load()
    assert ds.kind == "node_graph" and len(ds) == 34 and ds.num_classes == 4
    parts = make_partitions(ds, Split(0.2), RandomForget(count=3), seed=0)
    forget = parts["forget"]
    edges, full = parts.dataset.inputs.edge_index, ds.inputs.edge_index
    assert not torch.isin(edges, forget).any()
    touching = torch.isin(full, forget).any(0)
    assert edges.shape[1] == full.shape[1] - int(touching.sum()) and touching.any()
    assert torch.equal(parts.dataset.inputs.x, ds.inputs.x)  # nodes stay (isolated): indices unchanged
    assert parts.before_forget().dataset.inputs.edge_index.shape == full.shape
    moved = parts.to("cpu")
    assert moved.before_forget().dataset.inputs.edge_index.shape == full.shape
    tabular = make_partitions(Dataset(torch.randn(20, 3), torch.arange(20) % 2, 2), Split(0.2), RandomForget(count=3), seed=0)
    assert tabular.before_forget().dataset is tabular.dataset


def test_planetoid_raw_files_keep_the_public_split(tmp_path):
    from real_formats import write_planetoid

    write_planetoid(tmp_path, "Cora", n_train=14, n_all=520, n_test=20)
    ds = PyGSource("Cora", str(tmp_path), download=False).load()
    assert ds.kind == "node_graph" and len(ds) == 540 and ds.num_classes == 7 and ds.input_shape == (8,)
    assert ds.splits["train"].tolist() == list(range(14)) and ds.splits["test"].tolist() == list(range(520, 540))
    parts = make_partitions(ds, Split(), RandomForget(count=2), seed=0)
    assert parts["train"].tolist() == list(range(14)) and parts.dataset.inputs.edge_index.shape[1] == 1080 - 8
    with pytest.raises(RuntimeError, match="download is false"):
        PyGSource("CiteSeer", str(tmp_path), download=False).load()


def test_planetoid_split_parameter_is_passed_to_pyg(tmp_path):
    from real_formats import write_planetoid

    write_planetoid(tmp_path, "Cora", n_train=14, n_all=520, n_test=20)
    full = PyGSource("Cora", str(tmp_path), split="full", download=False).load()
    assert len(full.splits["train"]) == 540 - 500 - 20  # every node outside validation and test


def test_hf_forwards_name_revision_and_files(monkeypatch, tmp_path):
    import datasets

    calls = []
    table = datasets.Dataset.from_dict({"text": ["a b", "b c"], "label": [0, 1]})

    def fake_load_dataset(path, name=None, **kwargs):
        calls.append((path, name, kwargs))
        return datasets.DatasetDict({"train": table, "test": table})

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    HuggingFaceSource("org/set", name="cfg", data_files={"train": "t.csv"}, revision="abc123", cache_dir=str(tmp_path)).load()
    assert calls == [("org/set", "cfg", {"data_files": {"train": "t.csv"}, "revision": "abc123", "cache_dir": str(tmp_path)})]


def test_uci_categorical_columns_override(monkeypatch):
    import ucimlrepo

    repo = _adult_like()
    monkeypatch.setattr(ucimlrepo, "fetch_ucirepo", lambda **k: repo)
    plain = UCISource(id=2).load()
    age_as_category = UCISource(id=2, categorical_columns=["age"]).load()
    distinct_ages = repo.data.features["age"].nunique(dropna=False)
    assert age_as_category.inputs.shape[1] == plain.inputs.shape[1] - 1 + distinct_ages
    assert age_as_category.info["numeric_features"] == plain.info["numeric_features"] - 1
