"""configs/protocols/: every published setup validates offline and runs end to end on tiny CIFAR files
written in torchvision's own format (downloads off), shortened through the override mechanism."""
from __future__ import annotations

import inspect
import json
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT, make_runner
from erasure.core.registry import load_builtins, lookup
from erasure.execution.experiment import load_experiment
from erasure.results.writers import read_rows

sys.path.insert(0, str(Path(__file__).parent))
from real_formats import write_cifar  # noqa: E402

PROTOCOLS = sorted((ROOT / "configs" / "protocols").glob("*.jsonc"))
TINY_MODEL = {"class": "ResNet18", "parameters": {"width": 2}}
#: every unlearner parameter that scales its work, at its smallest
SHRINK = {"epochs": 1, "noise_steps": 1, "noise_repeats": 1, "noise_batch_size": 8, "num_samples": 2}


def test_the_field_s_protocols_are_all_there_and_cite_their_sources():
    names = {p.stem for p in PROTOCOLS}
    assert {"salun_cifar10_random10", "ssd_cifar100_full_class", "ssd_cifar20_sub_class", "scrub_cifar10_small_scale",
            "scrub_cifar10_large_scale", "neurips2023_cifar10", "jit_cifar100_full_class"} <= names
    docs = (ROOT / "docs" / "protocols.md").read_text()
    for path in PROTOCOLS:
        header = path.read_text().split("\n{", 1)[0]
        assert "Paper:" in header and "Reference script:" in header and "Reported" in header, path.name
        assert path.name in docs, path.name


@pytest.mark.parametrize("path", PROTOCOLS, ids=lambda p: p.stem)
def test_protocol_validates_offline(path, tmp_path):
    experiment = load_experiment(path, [f"output.dir={tmp_path / 'out'}"])
    assert experiment.recipe.epochs >= 8 and experiment.unlearners


@pytest.fixture(scope="module")
def cifar_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("cifar")
    write_cifar(root, n_train=40, n_test=16, seed=1)
    write_cifar(root, hundred=True, n_train=40, n_test=16, seed=2)
    # the protocols' forget classes must be present: CIFAR-10's 0 and 5, CIFAR-100's rocket and co
    for file, classes in (("cifar-10-batches-py/data_batch_1", [0, 5, 0, 5]), ("cifar-100-python/train", [69, 51, 2, 40, 71, 69])):
        batch = pickle.loads((root / file).read_bytes())
        key = "labels" if "labels" in batch else "fine_labels"
        batch[key][: len(classes)] = classes
        (root / file).write_bytes(pickle.dumps(batch))
    np.save(root / "forget_idx.npy", np.arange(0, 40, 8, dtype=np.int64))  # the kit's format: 1-D integers
    (root / "cifar5_small.json").write_text(json.dumps({"train": list(range(30)), "test": list(range(40, 56))}))
    return root


def shortened(path: Path, root: Path, out: Path) -> list[str]:
    """Overrides that keep the protocol's structure but make it run in seconds: local tiny files,
    a width-2 ResNet-18, one epoch everywhere, three replicas per side."""
    load_builtins()
    config = load_experiment(path, [f"output.dir={out}"]).config
    source = "data.source.parameters"
    sets = [f"{source}.root={json.dumps(str(root))}", f"{source}.download=false", f"{source}.num_workers=0",
            f"model={json.dumps(TINY_MODEL)}", "training.epochs=1", "training.batch_size=16", 'device="cpu"',
            f"output.dir={json.dumps(str(out))}", "cache.enabled=false", 'execution={"executor": "serial"}']
    forget = config["data"]["forget"]
    if forget["class"] == "RandomForget":
        sets.append("data.forget.parameters.count=5")
    if forget["class"] == "IndexForget":
        sets.append(f"data.forget.parameters.path={json.dumps(str(root / 'forget_idx.npy'))}")
    if "path" in config["data"].get("split", {}):
        sets.append(f"data.split.path={json.dumps(str(root / 'cifar5_small.json'))}")
    transform = config["data"]["source"]["parameters"].get("transform") or []
    if any(t["class"] == "Resize" for t in transform):  # the ViT's 224 px: kept at 32 px here
        sets.append(f"{source}.transform={json.dumps([t for t in transform if t['class'] != 'Resize'])}")
        for i, step in enumerate(config["training"].get("augment", [])):
            if step["class"] == "RandomCrop":
                sets += [f"training.augment[{i}].parameters.size=32", f"training.augment[{i}].parameters.padding=4"]
    for i, entry in enumerate(config["unlearners"]):
        accepted = inspect.signature(lookup("unlearner", entry["class"]).__init__).parameters
        sets += [f"unlearners[{i}].parameters.{k}={v}" for k, v in SHRINK.items() if k in accepted]
    for i, entry in enumerate(config["evaluators"]):
        if entry["class"] == "ForgettingQuality":
            sets.append(f"evaluators[{i}].parameters.num_models=3")
    return sets


@pytest.mark.parametrize("path", PROTOCOLS, ids=lambda p: p.stem)
def test_protocol_runs_on_tiny_cifar_files(path, cifar_root, tmp_path, monkeypatch):
    import torchvision.datasets.cifar as cifar

    monkeypatch.setattr(cifar, "check_integrity", lambda *a, **k: True)  # tiny fakes, not the real archives
    experiment = load_experiment(path, shortened(path, cifar_root, tmp_path / "out"))
    report = make_runner(experiment.config).run()
    rows = read_rows(report.results_path)
    failed = [(r["unlearner"], r["metric"], r["error"]) for r in rows if r["status"] != "ok"]
    assert not failed
    assert {r["unlearner"] for r in rows} == {e.label for e in experiment.unlearners}
    assert any(r["metric"] == "accuracy_test" for r in rows)
