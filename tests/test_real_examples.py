"""The example configs validate offline; the throughput benchmark runs on CPU at tiny sizes."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from erasure.execution.experiment import load_experiment

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "configs" / "examples").glob("*.jsonc"))


def test_all_examples_are_present():
    names = {p.name for p in EXAMPLES}
    assert {"mnist_cnn_class.jsonc", "cifar10_resnet18_random.jsonc", "cifar20_full_class.jsonc", "cifar20_sub_class.jsonc",
            "ag_news_text.jsonc", "uci_adult_sex.jsonc", "cora_node.jsonc"} <= names


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_validates_offline_and_says_when_it_downloads(path, tmp_path):
    experiment = load_experiment(path, [f"output.dir={tmp_path / 'out'}"])
    assert experiment.unlearners
    first = path.read_text().splitlines()[0]
    assert "NEEDS A DOWNLOAD" in first or "RUNS OFFLINE" in first


def test_cifar20_examples_train_on_superclasses():
    full = load_experiment(ROOT / "configs/examples/cifar20_full_class.jsonc")
    sub = load_experiment(ROOT / "configs/examples/cifar20_sub_class.jsonc")
    assert full.source.target == sub.source.target == "coarse"
    assert type(sub.forget).__name__ == "GroupForget" and sub.forget.attribute == "fine" and sub.forget.values == [69]


def test_gpu_throughput_benchmark_runs_on_cpu(tmp_path):
    spec = importlib.util.spec_from_file_location("gpu_throughput", ROOT / "benchmarks" / "gpu_throughput.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "r.json"
    results = module.main(["--device", "cpu", "--n", "16", "--batch-size", "8", "--width", "2", "--repeats", "2",
                           "--warmup", "0", "--fast-epochs", "1", "--json", str(out)])
    assert [r["case"] for r in results] == ["resnet18", "augmented", "fast"]
    assert all(len(r["seconds"]["plain"]) == 2 and r["framework_images_per_s"] > 0 for r in results[:2])
    assert results[2]["seconds_per_model"] > 0 and out.exists()
    x = torch.rand(6, 3, 32, 32)
    crops = module.crop_flip(x, torch.Generator().manual_seed(0))  # the plain loop's own crop and flip
    assert crops.shape == x.shape and not torch.equal(crops, x)
