"""One tiny end-to-end run per modality: config → build_experiment → Runner, no cache, tmp output."""
from __future__ import annotations

import sys
from pathlib import Path


sys.path.insert(0, str(Path(__file__).parent))
from real_formats import write_mnist, write_tudataset  # noqa: E402
from test_real_sources import _adult_like, _text_parquet  # noqa: E402

from erasure.execution.experiment import build_experiment  # noqa: E402
from erasure.execution.runner import Runner  # noqa: E402


def run(tmp_path, source, forget, model, epochs=2, unlearners=None):
    config = {
        "name": "e2e", "seeds": [0], "device": "cpu",
        "data": {"source": source, "forget": forget, "split": {"test_fraction": 0.25}},
        "model": model,
        "training": {"epochs": epochs, "batch_size": 16, "optimizer": {"class": "Adam", "parameters": {"lr": 0.01}}},
        "unlearners": unlearners or [{"class": "GoldModel"}, {"class": "FineTuning", "parameters": {"epochs": 1}}],
        "evaluators": [{"class": "Accuracy"}],
        "output": {"dir": str(tmp_path / "out")},
        "cache": {"enabled": False},
    }
    experiment = build_experiment(config)
    report = Runner(experiment, use_cache=False, progress=False, out=lambda _: None).run()
    assert report.errors == 0 and report.rows_written > 0
    return report


def test_images_mnist_idx(tmp_path):
    write_mnist(tmp_path, n_train=60, n_test=20)
    run(tmp_path, {"class": "TorchVisionSource", "parameters": {"dataset": "MNIST", "root": str(tmp_path), "download": False,
                                                                "num_workers": 0}},
        {"class": "ClassForget", "parameters": {"classes": [3]}}, {"class": "CNN", "parameters": {"channels": [4], "hidden": 8}})


def test_text_hugging_face_parquet(tmp_path):
    files = _text_parquet(tmp_path)
    run(tmp_path, {"class": "HuggingFaceSource", "parameters": {"path": "parquet", "data_files": files, "max_length": 6,
                                                                "cache_dir": str(tmp_path / "cache")}},
        {"class": "RandomForget", "parameters": {"count": 2}}, {"class": "TextClassifier", "parameters": {"embed_dim": 8}})


def test_tabular_uci_group_forget(tmp_path, monkeypatch):
    import ucimlrepo

    monkeypatch.setattr(ucimlrepo, "fetch_ucirepo", lambda **k: _adult_like(80))
    run(tmp_path, {"class": "UCISource", "parameters": {"id": 2, "attribute_columns": ["sex"]}},
        {"class": "GroupForget", "parameters": {"attribute": "sex", "values": [0]}}, {"class": "MLP", "parameters": {"hidden": [8]}})


def test_graph_nodes_gold_trains_on_the_pruned_graph(tmp_path, monkeypatch):
    import erasure.models.schemes.base as runner_module  # the runner trains reference models through fit_model

    seen = []
    real = runner_module.train_model

    def recording(model, partitions, partition, *args, **kwargs):
        seen.append((len(partition), partitions.dataset.inputs.edge_index.shape[1]))
        return real(model, partitions, partition, *args, **kwargs)

    monkeypatch.setattr(runner_module, "train_model", recording)
    run(tmp_path, {"class": "PyGSource", "parameters": {"dataset": "KarateClub"}},
        {"class": "RandomForget", "parameters": {"count": 4}}, {"class": "GCN"}, unlearners=[{"class": "GoldModel"}])
    (n_train, full_edges), (n_retain, gold_edges) = seen
    assert n_retain == n_train - 4 and full_edges == 156 and gold_edges < full_edges


def test_graph_classification_tudataset(tmp_path):
    write_tudataset(tmp_path, "TOY", n_graphs=16)
    run(tmp_path, {"class": "PyGSource", "parameters": {"dataset": "TUDataset", "root": str(tmp_path), "name": "TOY",
                                                        "download": False}},
        {"class": "RandomForget", "parameters": {"count": 2}}, {"class": "GIN", "parameters": {"hidden": 8, "layers": 2}})
