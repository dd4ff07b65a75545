"""Bring your own model and data: a checkpoint as the original, deletion requests over time,
and forget sets exchanged as files."""
from __future__ import annotations

import copy
import json

import pytest
import torch

from conftest import tiny_config
from erasure.cli import main
from erasure.execution.experiment import build_experiment
from erasure.core.errors import ConfigError
from erasure.execution.runner import Runner
from erasure.results.summary import summarize
from erasure.results.writers import read_rows

PLUGIN = "erasure_test_plugins"
TIMINGS = {"wall_seconds", "cpu_seconds", "peak_rss_mb", "speedup_vs_gold"}


def run(config, lines=None, **options):
    options.setdefault("use_cache", False)
    out = lines.append if lines is not None else (lambda *_: None)
    return Runner(build_experiment(copy.deepcopy(config)), progress=False, out=out, **options).run()


def values(report, label=None):
    return {(r["seed"], r["unlearner"], r["metric"], r["request"]): r["value"] for r in read_rows(report.results_path)
            if r["status"] == "ok" and r["metric"] not in TIMINGS and (label is None or r["unlearner"] == label)}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A model trained by an ordinary run, saved as a checkpoint the way a researcher would."""
    tmp = tmp_path_factory.mktemp("ckpt")
    config = tiny_config(tmp, unlearners=[{"class": "Identity"}])
    report = run(config)
    runner = Runner(build_experiment(copy.deepcopy(config)), use_cache=False, progress=False, out=lambda *_: None)
    state = runner.workspace.prepare_seeds()[0]
    model = runner.workspace.reference(state, "original")[0]
    torch.save(model.state_dict(), tmp / "weights.pt")
    torch.save({"state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}, "epoch": 3}, tmp / "wrapped.pt")
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, tmp / "weights.safetensors")
    return tmp, values(report)


@pytest.mark.parametrize("file", ["weights.pt", "wrapped.pt", "weights.safetensors"])
def test_a_checkpoint_is_the_original(trained, tmp_path, file):
    folder, trained_values = trained
    config = tiny_config(tmp_path, unlearners=[{"class": "Identity"}], cache={"dir": str(tmp_path / "cache")})
    config["model"]["checkpoint"] = str(folder / file)
    config["training"]["epochs"] = 1  # not used for the original: the checkpoint is
    lines: list[str] = []
    report = run(config, lines, use_cache=True)
    assert values(report) == trained_values
    assert not any("original model (seed 0) trained" in line for line in lines)
    assert any("original model loaded from" in line for line in lines)
    assert not list((tmp_path / "cache").glob("*.pt")), "nothing was trained"
    resolved = json.loads((report.results_path.parent / "config.resolved.json").read_text())
    assert len(resolved["model"]["checkpoint_sha256"]) == 64


def test_the_checkpoint_content_is_part_of_the_experiment(trained, tmp_path):
    folder, _ = trained
    config = tiny_config(tmp_path)
    config["model"]["checkpoint"] = str(folder / "weights.pt")
    first = build_experiment(copy.deepcopy(config)).config_hash
    changed = tmp_path / "changed.pt"
    state = torch.load(folder / "weights.pt", weights_only=True)
    state[next(iter(state))] += 1
    torch.save(state, changed)
    config["model"]["checkpoint"] = str(changed)
    assert build_experiment(copy.deepcopy(config)).config_hash != first
    config["model"]["checkpoint_sha256"] = "0" * 64
    with pytest.raises(ConfigError, match="the file changed"):
        build_experiment(copy.deepcopy(config))


def test_a_checkpoint_that_does_not_fit_is_a_config_error_naming_the_keys(trained, tmp_path, capsys):
    folder, _ = trained
    config = tiny_config(tmp_path)
    config["model"] = {"class": "MLP", "parameters": {"hidden": [8, 4]}, "checkpoint": str(folder / "weights.pt")}
    path = tmp_path / "c.json"
    path.write_text(json.dumps(config))
    assert main([str(path), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "model.checkpoint" in err and "does not fit MLP" in err and "shape mismatch" in err and "missing keys" in err
    assert "Traceback" not in err
    config["model"]["checkpoint"] = str(tmp_path / "absent.pt")
    path.write_text(json.dumps(config))
    assert main([str(path), "--validate"]) == 2 and "no checkpoint file" in capsys.readouterr().err


def test_deletion_requests_over_time(tmp_path):
    requests = [{"class": "RandomForget", "parameters": {"count": 8}},
                {"class": "RandomForget", "parameters": {"count": 8}},
                {"class": "ClassForget", "parameters": {"classes": [1]}}]
    config = tiny_config(tmp_path, imports=[PLUGIN], cache={"dir": str(tmp_path / "cache")},
                         unlearners=[{"class": "Identity"}, {"class": "GoldModel"},
                                     {"class": "ShrinkWeights", "parameters": {"factor": 0.5}}],
                         evaluators=[{"class": "Accuracy"}, {"class": f"{PLUGIN}.WeightNorm"}])
    config["data"]["forget"] = requests
    report = run(config, use_cache=True)
    rows = read_rows(report.results_path)
    assert {r["request"] for r in rows} == {"0", "1", "2"}
    norm = {(r["unlearner"], int(r["request"])): float(r["value"]) for r in rows if r["metric"] == "weight_norm"}
    for r in range(3):  # each request shrinks the model the previous one left: 0.5 per request on the weights
        assert norm[("ShrinkWeights", r)] == pytest.approx(norm[("Identity", r)] * 0.25 ** (r + 1), rel=1e-5)
    assert len(list((tmp_path / "cache").glob("*.pt"))) == 1 + 3, "the original, and gold after each request"
    indices = json.loads((report.results_path.parent / "indices" / "seed0.json").read_text())
    assert [len(x) for x in indices["requests"][:2]] == [8, 8]
    assert len(indices["forget"]) == sum(len(x) for x in indices["requests"]), "evaluators judge every deletion so far"
    gold_forget = {int(r["request"]): float(r["value"]) for r in rows
                   if r["unlearner"] == "GoldModel" and r["metric"] == "accuracy_forget_test"}
    assert gold_forget[2] == 0.0, "gold after the class request never saw class 1"
    summary = {(s["unlearner"], s["metric"]): s["mean"] for s in summarize(rows)}
    assert summary[("ShrinkWeights", "weight_norm")] == pytest.approx(norm[("ShrinkWeights", 2)]), "the final state"


def test_a_run_can_take_another_runs_split_and_forget_set(tmp_path):
    unlearners = [{"class": "Identity"}, {"class": "NegGrad", "parameters": {"epochs": 1, "lr": 0.01}}]
    first = tiny_config(tmp_path / "a", seeds=[0, 1], unlearners=unlearners)
    first["data"]["forget"] = {"class": "RandomForget", "parameters": {"fraction": 0.1}}
    a = run(first)
    exported = a.results_path.parent / "indices" / "seed{seed}.json"
    second = tiny_config(tmp_path / "b", seeds=[0, 1], unlearners=unlearners)
    second["data"]["split"] = {"path": str(exported)}
    second["data"]["forget"] = {"class": "IndexForget", "parameters": {"path": str(exported)}}
    b = run(second)
    assert values(a) == values(b)
    for seed in (0, 1):
        ia, ib = (json.loads((r.results_path.parent / "indices" / f"seed{seed}.json").read_text()) for r in (a, b))
        assert all(ia[k] == ib[k] for k in ("train", "test", "forget", "retain"))


def test_index_files_are_checked(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"forget": ["x"]}))
    config = tiny_config(tmp_path)
    config["data"]["forget"] = {"class": "IndexForget", "parameters": {"path": str(bad)}}
    with pytest.raises(ConfigError, match="list of non-negative integer indices"):
        run(config)
    config["data"]["forget"] = {"class": "IndexForget", "parameters": {"indices": [1], "path": str(bad)}}
    with pytest.raises(ConfigError, match="exactly one of 'indices' or 'path'"):
        build_experiment(config)


def test_torchvision_weights_missing_from_the_cache_name_it(tmp_path, monkeypatch):
    import urllib.error

    import torchvision.models._api as api

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(api, "load_state_dict_from_url", offline)
    from erasure.core.factory import build

    with pytest.raises(ConfigError, match=r"not in the local cache \(.*torch/hub/checkpoints\)"):
        build({"class": "TorchVisionModel", "parameters": {"name": "resnet18", "weights": "DEFAULT"}}, "model", "model",
              input_shape=(3, 32, 32), num_classes=10)
