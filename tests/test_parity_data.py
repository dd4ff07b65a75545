"""Data sources and models of ERASURE's range: any PyG dataset class, image folders, CelebA
identities, Hugging Face image columns and pretrained transformer text classifiers (all offline)."""
from __future__ import annotations

import random
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from conftest import make_runner  # noqa: E402
from real_formats import (  # noqa: E402
    write_celeba, write_moleculenet, write_planetoid, write_sentiment, write_tiny_transformer,
)

from erasure.core.errors import ConfigError  # noqa: E402
from erasure.core.factory import build  # noqa: E402
from erasure.data.forget import GroupForget, RandomForget  # noqa: E402
from erasure.data.partitions import Split, make_partitions  # noqa: E402
from erasure.data.sources.huggingface import HuggingFaceSource  # noqa: E402
from erasure.data.sources.image_folder import ImageFolderSource  # noqa: E402
from erasure.data.sources.pyg import PyGSource  # noqa: E402
from erasure.data.sources.tensor_file import TensorFileSource  # noqa: E402
from erasure.data.sources.torchvision import TorchVisionSource  # noqa: E402
from erasure.models.base import parametrized_layers  # noqa: E402


def source(parameters: dict, cls: str = "PyGSource"):
    """A data source built through the factory (parameters checked, ``check()`` run)."""
    return build({"class": cls, "parameters": parameters}, "data_source", "data.source")


def config(tmp_path, source_spec: dict, model: dict, forget: dict, epochs: int = 3, unlearners: list | None = None) -> dict:
    return {
        "name": "parity", "seeds": [0], "device": "cpu",
        "data": {"source": source_spec, "split": {"test_fraction": 0.25}, "forget": forget},
        "model": model,
        "training": {"epochs": epochs, "batch_size": 16, "optimizer": {"class": "Adam", "parameters": {"lr": 0.01}}},
        "unlearners": unlearners or [{"class": "GoldModel"}, {"class": "NegGrad", "parameters": {"epochs": 1, "lr": 0.001}}],
        "evaluators": [{"class": "Accuracy"}],
        "output": {"dir": str(tmp_path / "out")},
        "cache": {"enabled": False},
    }


def results(tmp_path) -> dict[tuple[str, str], float]:
    import pandas as pd

    frame = pd.read_csv(tmp_path / "out" / "results.csv")
    assert (frame["status"] == "ok").all()
    return {(u, m): v for u, m, v in zip(frame["unlearner"], frame["metric"], frame["value"])}


# ------------------------------------------------------------------------- PyG
FAKE_GRAPHS = {"num_graphs": 24, "avg_num_nodes": 6, "avg_degree": 2, "num_channels": 3, "num_classes": 2}


def test_pyg_takes_any_dataset_class_with_its_own_parameters():
    random.seed(1)
    torch.manual_seed(1)
    before = (random.random(), torch.rand(1))
    random.seed(1)
    torch.manual_seed(1)
    graphs = source({"dataset": "FakeDataset", "parameters": FAKE_GRAPHS}).load()
    assert (random.random(), torch.rand(1)) == before  # generated under its own seed: the caller's draws are untouched
    assert graphs.kind == "graph_list" and len(graphs) == 24 and graphs.input_shape == (3,) and graphs.num_classes == 2
    assert graphs.targets.tolist() == [int(g.y) for g in graphs.inputs]
    again = source({"dataset": "FakeDataset", "parameters": FAKE_GRAPHS}).load()
    assert again.fingerprint() == graphs.fingerprint()  # every process of a run loads the same data
    other = source({"dataset": "FakeDataset", "parameters": {**FAKE_GRAPHS, "avg_num_nodes": 20}}).load()
    assert other.fingerprint() != graphs.fingerprint()


def test_pyg_one_graph_is_node_classification():
    nodes = source({"dataset": "FakeDataset", "parameters": {"task": "node", "avg_num_nodes": 40, "num_channels": 4,
                                                              "num_classes": 3}}).load()
    assert nodes.kind == "node_graph" and len(nodes) == nodes.inputs.num_nodes and nodes.input_shape == (4,)
    assert nodes.splits == {}  # no masks: data.split applies
    parts = make_partitions(nodes, Split(0.25), RandomForget(count=3), seed=0)
    assert not torch.isin(parts.dataset.inputs.edge_index, parts["forget"]).any()
    with pytest.raises(RuntimeError, match=r"one per graph .* y of shape \("):  # several graphs of node labels
        source({"dataset": "FakeDataset", "parameters": {"num_graphs": 2, "task": "node", "avg_num_nodes": 5}}).load()


def test_pyg_planetoid_by_class_name_is_the_shortcut(tmp_path):
    write_planetoid(tmp_path, "Cora", n_train=14, n_all=520, n_test=20)
    shortcut = source({"dataset": "Cora", "root": str(tmp_path), "download": False}).load()
    by_class = source({"dataset": "Planetoid", "name": "Cora", "root": str(tmp_path), "download": False}).load()
    assert by_class.fingerprint() == shortcut.fingerprint() and by_class.splits["test"].tolist() == list(range(520, 540))


@pytest.mark.parametrize("parameters, path, message", [
    ({"dataset": "FakeDatset"}, "dataset", "did you mean 'FakeDataset'"),
    ({"dataset": "graph_generator"}, "dataset", "not a torch_geometric.datasets class"),  # a module
    ({"dataset": "Data"}, "dataset", "not a torch_geometric.datasets class"),  # a class, not a dataset
    ({"dataset": "MoleculeNet"}, "name", "'name' is required for MoleculeNet"),
    ({"dataset": "FakeDataset", "name": "x"}, "name", "FakeDataset takes no 'name'"),
    ({"dataset": "TUDataset", "name": "MUTAG", "parameters": {"use_node_atr": True}}, "parameters.use_node_atr",
     "did you mean 'use_node_attr'"),
    ({"dataset": "TUDataset", "name": "MUTAG", "parameters": {"cleaned": "yes"}}, "parameters.cleaned", "boolean"),
    ({"dataset": "FakeDataset", "parameters": {"pre_transform": "os.system"}}, "parameters.pre_transform", "function"),
    ({"dataset": "TUDataset", "parameters": {"name": "MUTAG"}}, "parameters.name", "PyGSource's own parameter"),
])
def test_pyg_refuses_what_is_not_a_dataset_class_or_its_argument(parameters, path, message):
    with pytest.raises(ConfigError, match=message) as error:
        source(parameters)
    assert error.value.path == f"data.source.parameters.{path}"


def test_pyg_download_false_holds_for_any_class(tmp_path):
    with pytest.raises(RuntimeError, match="download is false"):
        source({"dataset": "MoleculeNet", "name": "BBBP", "root": str(tmp_path), "download": False}).load()
    assert not any((tmp_path / "bbbp" / "raw").glob("*"))  # nothing fetched
    assert len(source({"dataset": "KarateClub", "download": False}).load()) == 34  # bundled: nothing to refuse


def test_pyg_fake_graphs_end_to_end(tmp_path):
    make_runner(config(tmp_path, {"class": "PyGSource", "parameters": {"dataset": "FakeDataset", "parameters": FAKE_GRAPHS}},
                       {"class": "GIN", "parameters": {"hidden": 8, "layers": 2}},
                       {"class": "RandomForget", "parameters": {"count": 2}})).run()
    assert ("GoldModel", "accuracy_test") in results(tmp_path)


def test_moleculenet_from_its_processed_files_without_rdkit_or_download(tmp_path):
    labels = write_moleculenet(tmp_path, "BBBP", [[float(i % 2)] for i in range(24)], empty=(5,))
    ds = source({"dataset": "MoleculeNet", "name": "BBBP", "root": str(tmp_path), "download": False}).load()
    kept = [int(y[0]) for i, y in enumerate(labels) if i != 5]
    assert ds.kind == "graph_list" and len(ds) == 23, "the molecule without atoms is dropped"
    assert ds.targets.dtype == torch.long and ds.targets.tolist() == kept and ds.num_classes == 2
    make_runner(config(tmp_path, {"class": "PyGSource", "parameters": {"dataset": "MoleculeNet", "name": "BBBP",
                                                                       "root": str(tmp_path), "download": False}},
                       {"class": "GIN", "parameters": {"hidden": 8, "layers": 2}},
                       {"class": "RandomForget", "parameters": {"count": 3}})).run()
    assert ("GoldModel", "accuracy_test") in results(tmp_path)


@pytest.mark.parametrize("name, labels, message", [
    ("Tox21", [[0.0] * 12] * 6, r"a graph has y of shape \(1, 12\) .*multi-task"),
    ("BACE", [[0.0], [1.0], [float("nan")], [1.0]], "1 graphs have no label"),
])
def test_moleculenet_targets_that_are_not_single_label_classes_are_refused(tmp_path, name, labels, message):
    write_moleculenet(tmp_path, name, labels, empty=())
    with pytest.raises(RuntimeError, match=message):
        source({"dataset": "MoleculeNet", "name": name, "root": str(tmp_path), "download": False}).load()


# -------------------------------------------------------------- image folders
def _png(path: Path, rng: np.random.Generator, size: tuple[int, int] = (6, 5), grey: bool = False) -> np.ndarray:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = rng.integers(0, 255, (size[1], size[0]) if grey else (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return pixels


def _lab_folder(root: Path) -> list[np.ndarray]:
    """10 PNGs under ``root/img`` and ``root/labels.csv`` (file,label,identity,age,site,split); one row lacks a label."""
    rng = np.random.default_rng(0)
    rows, pixels = ["file,label,identity,age,site,split"], []
    for i in range(10):
        pixels.append(_png(root / "img" / f"{i}.png", rng))
        label = ["dog", "cat"][i % 2] if i != 9 else ""
        rows.append(f"img/{i}.png,{label},{100 + i // 2},{30 + i},{['north', 'south'][i // 5]},{'test' if i >= 7 else 'train'}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    return pixels


def test_image_folder_with_a_csv_of_labels_and_attributes(tmp_path):
    pixels = _lab_folder(tmp_path)
    ds = source({"root": str(tmp_path), "labels": str(tmp_path / "labels.csv"), "attribute_columns": ["identity", "age", "site"],
                 "split_column": "split", "num_workers": 0}, "ImageFolderSource").load()
    assert ds.inputs.shape == (9, 3, 5, 6) and ds.kind == "tensor"  # the unlabelled row is dropped
    assert torch.allclose(ds.inputs[3], torch.as_tensor(pixels[3]).permute(2, 0, 1).float() / 255)
    assert ds.targets.tolist() == [1, 0] * 4 + [1] and ds.info["class_names"] == ["cat", "dog"]
    assert ds.attributes["identity"].tolist() == [100 + i // 2 for i in range(9)]  # integers kept as written
    assert ds.attributes["site"].tolist() == [0] * 5 + [1] * 4 and ds.info["attribute_values"] == {"site": ["north", "south"]}
    assert ds.splits["train"].tolist() == list(range(7)) and ds.splits["test"].tolist() == [7, 8]
    parts = make_partitions(ds, Split(), GroupForget("identity", [101]), seed=0)
    assert parts["forget"].tolist() == [2, 3]


def test_image_folder_layout_with_a_test_folder(tmp_path):
    rng = np.random.default_rng(0)
    for split, n in (("train", 3), ("test", 1)):
        for cls in ("zebra", "ant"):
            for i in range(n):
                _png(tmp_path / split / cls / f"{i}.png", rng, size=(6 + i, 5), grey=cls == "ant")
    resize = [{"class": "Resize", "parameters": {"size": [4, 4]}}]
    ds = source({"root": str(tmp_path / "train"), "test_root": str(tmp_path / "test"), "transform": resize,
                 "num_workers": 0}, "ImageFolderSource").load()
    assert ds.inputs.shape == (8, 3, 4, 4) and ds.info["class_names"] == ["ant", "zebra"]  # grey read as RGB
    assert ds.targets.tolist() == [0, 0, 0, 1, 1, 1, 0, 1] and ds.splits["test"].tolist() == [6, 7]
    with pytest.raises(RuntimeError, match="Resize"):
        source({"root": str(tmp_path / "train"), "num_workers": 0}, "ImageFolderSource").load()
    lazy = source({"root": str(tmp_path / "train"), "transform": resize, "num_workers": 0, "max_memory_gb": 1e-9},
                  "ImageFolderSource").load()
    assert lazy.kind == "lazy" and torch.equal(lazy.take(torch.tensor([4, 0])), ds.inputs[[4, 0]])
    (tmp_path / "test" / "bee").mkdir()
    _png(tmp_path / "test" / "bee" / "0.png", rng)
    with pytest.raises(RuntimeError, match="class folders"):
        ImageFolderSource(str(tmp_path / "train"), test_root=str(tmp_path / "test"), num_workers=0).load()


def test_image_folder_errors_name_the_parameter(tmp_path):
    _lab_folder(tmp_path)
    labels = str(tmp_path / "labels.csv")
    with pytest.raises(ConfigError, match="'labels' CSV") as error:
        source({"root": str(tmp_path), "attribute_columns": ["age"]}, "ImageFolderSource")
    assert error.value.path == "data.source.parameters.attribute_columns"
    with pytest.raises(ConfigError, match="random augmentation"):
        source({"root": str(tmp_path), "transform": [{"class": "RandomCrop", "parameters": {"size": 2}}]}, "ImageFolderSource")
    with pytest.raises(ConfigError, match=r"no column 'person' \(columns: file, label, identity"):
        ImageFolderSource(str(tmp_path), labels, attribute_columns=["person"], num_workers=0).load()
    (tmp_path / "img" / "4.png").unlink()
    with pytest.raises(RuntimeError, match="1 images listed .* e.g. .*4.png"):
        ImageFolderSource(str(tmp_path), labels, num_workers=0).load()


# ------------------------------------------------------------------ tensor files
def _tensor_arrays(n: int = 60) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    y = torch.arange(n) % 3
    return {"features": torch.randn(n, 4, generator=g) + y[:, None].float(), "label": y, "site": torch.arange(n) // 20,
            "is_test": torch.arange(n) >= n - 12, "tags": (torch.rand(n, 2, generator=g) > 0.5).float()}


def _save(arrays: dict[str, torch.Tensor], path: Path) -> str:
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in arrays.items()}, str(path))
    elif path.suffix == ".npz":
        np.savez(path, **{k: v.numpy() for k, v in arrays.items()})
    else:
        torch.save(arrays, path)
    return str(path)


@pytest.mark.parametrize("suffix", [".pt", ".safetensors", ".npz"])
def test_tensor_file_loads_inputs_labels_attributes_and_split(tmp_path, suffix):
    arrays = _tensor_arrays()
    ds = source({"path": _save(arrays, tmp_path / f"lab{suffix}"), "inputs": "features", "targets": "label",
                 "attributes": ["site"], "test": "is_test"}, "TensorFileSource").load()
    assert torch.equal(ds.inputs, arrays["features"]) and torch.equal(ds.targets, arrays["label"])
    assert ds.num_classes == 3 and ds.task == "single-label" and ds.name == "lab"
    assert ds.splits["test"].tolist() == list(range(48, 60)) and ds.splits["train"].tolist() == list(range(48))
    parts = make_partitions(ds, Split(), GroupForget("site", [1]), seed=0)
    assert parts["forget"].tolist() == list(range(20, 40))
    multi = source({"path": _save(arrays, tmp_path / f"multi{suffix}"), "inputs": "features", "targets": "tags"},
                   "TensorFileSource").load()
    assert multi.task == "multi-label" and multi.num_classes == 2 and not multi.splits


class _Payload:
    def __reduce__(self):
        return (Path.touch, (Path(_Payload.target),))


def test_tensor_file_never_unpickles(tmp_path):
    _Payload.target = str(tmp_path / "pwned")
    torch.save({"x": torch.zeros(3, 2), "y": torch.zeros(3, dtype=torch.long), "z": _Payload()}, tmp_path / "bad.pt")
    with pytest.raises(RuntimeError, match="cannot read .*bad.pt"):
        TensorFileSource(str(tmp_path / "bad.pt")).load()
    np.savez(tmp_path / "bad.npz", x=np.zeros((3, 2)), y=np.array([_Payload()], dtype=object))
    with pytest.raises(RuntimeError, match="cannot read .*bad.npz"):
        TensorFileSource(str(tmp_path / "bad.npz")).load()
    assert not (tmp_path / "pwned").exists()


def test_tensor_file_errors_name_the_parameter(tmp_path):
    path = _save(_tensor_arrays(), tmp_path / "lab.pt")
    with pytest.raises(ConfigError, match="not one of .pt") as error:
        source({"path": str(tmp_path / "lab.pkl")}, "TensorFileSource")
    assert error.value.path == "data.source.parameters.path"
    with pytest.raises(ConfigError, match=r"no array 'x' \(arrays: features, is_test, label, site, tags\)") as error:
        TensorFileSource(path).load()
    assert error.value.path == "inputs"
    with pytest.raises(ConfigError, match="must hold only 0 and 1"):
        TensorFileSource(path, inputs="features", targets="features").load()
    with pytest.raises(ConfigError, match="label 2 but num_classes is 2") as error:
        TensorFileSource(path, inputs="features", targets="label", num_classes=2).load()
    assert error.value.path == "num_classes"
    with pytest.raises(ConfigError, match="named for two roles"):
        source({"path": path, "inputs": "features", "targets": "label", "attributes": ["label"]}, "TensorFileSource")
    odd = _save({"x": torch.zeros(4, 2), "y": torch.tensor([0, 1, 1, 0]), "fractional": torch.tensor([0.0, 1.5, 1.0, 0.0]),
                 "none": torch.zeros(4), "short": torch.zeros(3, dtype=torch.long)}, tmp_path / "odd.pt")
    with pytest.raises(ConfigError, match=r"class indices \(N,\) or a 0/1 matrix \(N, L\), got float32 \(4,\)") as error:
        TensorFileSource(odd, targets="fractional").load()
    assert error.value.path == "targets"
    with pytest.raises(ConfigError, match="'none' must mark some but not all of the 4 samples") as error:
        TensorFileSource(odd, test="none").load()
    assert error.value.path == "test"
    with pytest.raises(ConfigError, match="'short' has 3 values for 4 samples"):
        TensorFileSource(odd, test="short").load()
    with pytest.raises(ConfigError, match="4 inputs but 3 targets"):
        TensorFileSource(odd, targets="short").load()
    assert TensorFileSource(odd, test="y").load().splits["test"].tolist() == [1, 2]


def test_tensor_file_end_to_end(tmp_path):
    path = _save(_tensor_arrays(120), tmp_path / "lab.safetensors")
    spec = {"class": "TensorFileSource", "parameters": {"path": path, "inputs": "features", "targets": "label", "test": "is_test"}}
    make_runner(config(tmp_path, spec, {"class": "MLP", "parameters": {"hidden": [16]}},
                       {"class": "ClassForget", "parameters": {"classes": [1]}}, epochs=20)).run()
    values = results(tmp_path)
    assert values[("GoldModel", "accuracy_forget")] < 0.2 < values[("GoldModel", "accuracy_retain")]


# ---------------------------------------------------------------------- CelebA
@pytest.fixture
def celeba_files(tmp_path, monkeypatch):
    """Tiny CelebA; torchvision checks its label files against the real ones' MD5 sums, so that check is patched out."""
    import torchvision.datasets.celeba as celeba

    monkeypatch.setattr(celeba, "check_integrity", lambda *a, **k: True)
    identities = [7, 7, 3, 3, 12, 12, 7, 3, 5, 5, 12, 9]
    partition = [0, 0, 0, 0, 0, 1, 2, 2, 2, 0, 0, 2]  # index 5 is validation: in neither split
    attrs = write_celeba(tmp_path, identities, partition)
    return tmp_path, identities, partition, attrs


def test_celeba_identities_and_attributes_for_group_forget(celeba_files):
    from erasure.data.sources.torchvision import CELEBA_ATTRIBUTES

    root, identities, partition, attrs = celeba_files
    kept = [i for i, p in enumerate(partition) if p == 0] + [i for i, p in enumerate(partition) if p == 2]
    ds = source({"dataset": "CelebA", "root": str(root), "download": False, "target": "Smiling", "num_workers": 0},
                "TorchVisionSource").load()
    assert ds.inputs.shape == (11, 3, 12, 10) and ds.name == "CelebA-Smiling" and ds.num_classes == 2
    assert ds.splits["train"].tolist() == list(range(7)) and ds.splits["test"].tolist() == list(range(7, 11))
    assert ds.attributes["identity"].tolist() == [identities[i] for i in kept]
    assert set(ds.attributes) == {"identity", *CELEBA_ATTRIBUTES}
    assert ds.attributes["Eyeglasses"].tolist() == attrs[kept, CELEBA_ATTRIBUTES.index("Eyeglasses")].tolist()
    assert ds.targets.tolist() == [1 - identities[i] % 2 for i in kept]
    first = np.array(Image.open(root / "celeba" / "img_align_celeba" / "000001.jpg"))
    assert torch.allclose(ds.inputs[0], torch.as_tensor(first).permute(2, 0, 1).float() / 255)
    parts = make_partitions(ds, Split(), GroupForget("identity", [7]), seed=0)
    assert parts["forget"].tolist() == [0, 1] and parts["forget_test"].tolist() == [7]  # person 7's images
    persons = TorchVisionSource("CelebA", str(root), download=False, target="identity", num_workers=0).load()
    assert persons.num_classes == 5 and persons.targets.tolist() == [[3, 5, 7, 9, 12].index(identities[i]) for i in kept]


def test_celeba_target_is_checked():
    with pytest.raises(ConfigError, match="did you mean Smiling"):
        source({"dataset": "CelebA", "target": "Smilling"}, "TorchVisionSource")
    with pytest.raises(ConfigError, match="for CelebA"):
        source({"dataset": "CIFAR10", "target": "identity"}, "TorchVisionSource")


def test_celeba_identity_forgetting_end_to_end(celeba_files, tmp_path):
    root = celeba_files[0]
    make_runner(config(tmp_path, {"class": "TorchVisionSource", "parameters": {
        "dataset": "CelebA", "root": str(root), "download": False, "target": "Smiling", "num_workers": 0}},
        {"class": "MLP", "parameters": {"hidden": [8]}}, {"class": "GroupForget", "parameters": {"attribute": "identity",
                                                                                               "values": [3]}})).run()
    assert results(tmp_path)[("GoldModel", "accuracy_forget")] >= 0


# --------------------------------------------------------- Hugging Face images
def _image_parquet(tmp_path) -> tuple[str, list]:
    """A parquet file with an ``Image`` column: RGB and grey images of two sizes."""
    import datasets

    rng = np.random.default_rng(0)
    arrays = [rng.integers(0, 255, (8, 8 + 2 * (i % 2), 3) if i % 3 else (8, 8), dtype=np.uint8) for i in range(9)]
    table = datasets.Dataset.from_dict({"img": arrays, "label": [i % 3 for i in range(9)]},
                                       features=datasets.Features({"img": datasets.Image(), "label": datasets.Value("int64")}))
    table.to_parquet(str(tmp_path / "images.parquet"))
    return str(tmp_path / "images.parquet"), arrays


def test_hf_image_column_in_one_mode_and_size(tmp_path):
    path, arrays = _image_parquet(tmp_path)
    common = {"path": "parquet", "data_files": path, "input_column": "img", "cache_dir": str(tmp_path / "cache"), "num_workers": 0}
    with pytest.raises(RuntimeError, match="Resize"):
        source(common, "HuggingFaceSource").load()
    resize = [{"class": "Resize", "parameters": {"size": [8, 8]}}]
    ds = source({**common, "image_mode": "RGB", "transform": resize}, "HuggingFaceSource").load()
    assert ds.inputs.shape == (9, 3, 8, 8) and ds.num_classes == 3 and ds.splits == {}
    grey = torch.as_tensor(arrays[0]).float() / 255
    assert all(torch.allclose(ds.inputs[0, c], grey) for c in range(3))  # grey converted to RGB by datasets
    assert torch.allclose(ds.inputs[2], torch.as_tensor(arrays[2]).permute(2, 0, 1).float() / 255)
    lazy = source({**common, "image_mode": "RGB", "transform": resize, "max_memory_gb": 1e-9}, "HuggingFaceSource").load()
    assert lazy.kind == "lazy" and torch.equal(lazy.take(torch.tensor([5, 0])), ds.inputs[[5, 0]])
    with pytest.raises(ConfigError, match="random augmentation"):
        source({**common, "transform": [{"class": "RandomHorizontalFlip"}]}, "HuggingFaceSource")


def test_hf_image_end_to_end(tmp_path):
    path, _ = _image_parquet(tmp_path)
    make_runner(config(tmp_path, {"class": "HuggingFaceSource", "parameters": {
        "path": "parquet", "data_files": path, "input_column": "img", "image_mode": "L", "cache_dir": str(tmp_path / "cache"),
        "transform": [{"class": "Resize", "parameters": {"size": [8, 8]}}], "num_workers": 0}},
        {"class": "CNN", "parameters": {"channels": [4], "hidden": 8}}, {"class": "ClassForget", "parameters": {"classes": [1]}},
        epochs=1)).run()
    assert results(tmp_path)[("GoldModel", "accuracy_forget")] >= 0


# ----------------------------------------------- pretrained transformer models
@pytest.fixture
def offline(monkeypatch):
    """The Hugging Face Hub unreachable, as on the build machines."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")


def _text_data(tmp_path, tokenizer: Path, max_length: int = 8):
    texts = write_sentiment(tmp_path / "data")
    spec = {"path": str(tmp_path / "data"), "tokenizer": str(tokenizer), "max_length": max_length}
    return texts, spec


def _model(dataset, path: Path, input_shape: tuple | None = None, **parameters):
    """The model as the runner builds it: sizes and the tokenizer's facts come from the data."""
    provided = {**dataset.info, "input_shape": input_shape or dataset.input_shape, "num_classes": dataset.num_classes}
    return build({"class": "HFTextClassifier", "parameters": {"path": str(path), **parameters}}, "model", "model", **provided)


@pytest.mark.parametrize("architecture", ["bert", "distilbert", "deberta"])
def test_hf_text_classifier_reads_the_source_ids_as_transformers_does(tmp_path, offline, architecture):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    write_tiny_transformer(tmp_path / "model", architecture)
    texts, spec = _text_data(tmp_path, tmp_path / "model")
    ds = source(spec, "HuggingFaceSource").load()
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "model")
    pad = tokenizer.pad_token_id
    assert ds.info["pad_token_id"] == pad and ds.info["vocab_size"] == len(tokenizer)
    assert (ds.inputs[:, -1] == 0).all()  # padding is 0 in the data, whatever the tokenizer's id
    model = _model(ds, tmp_path / "model").eval()
    reference = AutoModelForSequenceClassification.from_pretrained(tmp_path / "model").eval()
    encoded = tokenizer(texts[:6], padding="max_length", max_length=8, truncation=True, return_tensors="pt")
    with torch.no_grad():
        expected = reference(input_ids=encoded["input_ids"], attention_mask=encoded["attention_mask"]).logits
        got = model(ds.inputs[:6])
        assert torch.allclose(got, expected, atol=1e-5)
        longer = torch.cat([ds.inputs[:6], torch.zeros(6, 4, dtype=torch.long)], 1)
        assert torch.allclose(model(longer), got, atol=1e-5)  # more padding changes nothing
    assert model.features(ds.inputs[:6]).shape == (6, model.head.in_features)
    assert parametrized_layers(model, ds.inputs[:2])[-1][0] == "head"
    # per-sample gradients through torch.func.vmap (SSD, Fisher) equal autograd's one sample at a time
    from torch.func import functional_call, grad, vmap

    params = {n: p.detach() for n, p in model.named_parameters()}

    def loss(p, x, y):
        return torch.nn.functional.cross_entropy(functional_call(model, p, (x[None],)), y[None])

    per_sample = vmap(grad(loss), in_dims=(None, 0, 0))(params, ds.inputs[:3], ds.targets[:3])
    for i in range(3):
        model.zero_grad()
        torch.nn.functional.cross_entropy(model(ds.inputs[i : i + 1]), ds.targets[i : i + 1]).backward()
        for n, p in model.named_parameters():
            assert torch.allclose(per_sample[n][i], p.grad, atol=1e-6), n


def test_a_new_head_for_other_classes_is_seeded(tmp_path, offline):
    write_tiny_transformer(tmp_path / "model", "bert", num_labels=2)
    _, spec = _text_data(tmp_path, tmp_path / "model")
    ds = source(spec, "HuggingFaceSource").load()
    ds.num_classes = 5
    heads = []
    for _ in range(2):
        torch.manual_seed(3)
        heads.append(_model(ds, tmp_path / "model").head)
    assert heads[0].out_features == 5 and torch.equal(heads[0].weight, heads[1].weight)


def test_hf_text_classifier_refuses_data_it_cannot_read(tmp_path, offline):
    write_tiny_transformer(tmp_path / "model", "distilbert", positions=8)
    _, spec = _text_data(tmp_path, tmp_path / "model")
    words = source({**spec, "tokenizer": None}, "HuggingFaceSource").load()
    with pytest.raises(ConfigError, match="set the data source's 'tokenizer'"):
        _model(words, tmp_path / "model")  # a word vocabulary, not the model's tokenizer
    ds = source(spec, "HuggingFaceSource").load()
    with pytest.raises(ConfigError, match="pads with id 0"):
        _model(ds, tmp_path / "model", pad_token_id=0)
    with pytest.raises(ConfigError, match="embeds"):
        _model(ds, tmp_path / "model", vocab_size=10_000)
    with pytest.raises(ConfigError, match="max_length"):
        _model(ds, tmp_path / "model", input_shape=(9,))
    with pytest.raises(ConfigError, match="download is false"):
        _model(ds, tmp_path / "no-such-model")


def test_hf_text_classifier_end_to_end_offline(tmp_path, offline):
    write_tiny_transformer(tmp_path / "model", "bert")
    _, spec = _text_data(tmp_path, tmp_path / "model")
    make_runner(config(tmp_path, {"class": "HuggingFaceSource", "parameters": spec},
                       {"class": "HFTextClassifier", "parameters": {"path": str(tmp_path / "model")}},
                       {"class": "RandomForget", "parameters": {"count": 4}}, epochs=10,
                       unlearners=[{"class": "GoldModel"}, {"class": "CFk", "parameters": {"k": 1, "epochs": 1}},
                                   {"class": "SSD", "parameters": {"alpha": 1.0}}])).run()
    rows = results(tmp_path)  # every row ok: SSD's per-sample gradients run on the transformer
    assert rows[("GoldModel", "accuracy_test")] >= 0.9  # the words decide the label: the pair learns it
    assert ("SSD", "accuracy_forget") in rows
