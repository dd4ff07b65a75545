"""End-to-end behaviour of the runner: gold oracle, PoC, resume after a kill, order independence,
error rows, the model cache and contributors' modules."""
from __future__ import annotations

import copy
import csv
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import ROOT, make_runner, tiny_config
from erasure.cli import main
from erasure.core.seeding import derive_seed
from erasure.models.zoo import MLP
from erasure.results.writers import COLUMNS, read_rows

PLUGINS = str(Path(__file__).resolve().parent / "plugins")


def final_values(rows, exclude=("wall_seconds", "cpu_seconds", "peak_rss_mb", "speedup_vs_gold")):
    return {(r["seed"], r["unlearner"], r["metric"]): r["value"] for r in rows
            if r["status"] == "ok" and r["metric"] not in exclude}


def test_gold_model_equals_a_plain_retraining_on_retain(tiny_world):
    runner, state = tiny_world
    parts, recipe = state.partitions, runner.exp.recipe
    torch.manual_seed(derive_seed(state.seed, "model-init"))
    oracle = MLP(parts.dataset.input_shape, parts.dataset.num_classes, hidden=[16])
    optimizer = torch.optim.Adam(oracle.parameters(), lr=0.01)
    generator = torch.Generator().manual_seed(derive_seed(state.seed, "train"))
    retain = parts["retain"]
    for _ in range(recipe.epochs):
        order = retain[torch.randperm(len(retain), generator=generator)]
        for start in range(0, len(order), recipe.batch_size):
            idx = order[start:start + recipe.batch_size]
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(oracle(parts.dataset.inputs[idx]), parts.dataset.targets[idx]).backward()
            optimizer.step()
    from erasure.unlearners.gold import GoldModel

    gold = GoldModel().unlearn(copy.deepcopy(state.original), runner.make_context(state, "GoldModel"))
    for (name, a), b in zip(gold.state_dict().items(), oracle.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), name


def test_proof_of_concept_end_to_end(tmp_path):
    out = tmp_path / "poc"
    code = main([str(ROOT / "configs/proof_of_concept.jsonc"), "--no-cache", "--no-progress",
                 "--set", f"output.dir={out}", "--set", "training.epochs=15"])
    assert code == 0
    rows = read_rows(out / "results.csv")
    with open(out / "results.csv") as f:
        assert next(csv.reader(f)) == COLUMNS
    labels = ["Identity", "GoldModel", "FineTuning", "NegGrad lr=2e-3", "AdvancedNegGrad"]
    metrics = {"accuracy_forget", "accuracy_retain", "accuracy_test", "accuracy_forget_test", "accuracy_retain_test",
               "wall_seconds", "cpu_seconds", "peak_rss_mb", "speedup_vs_gold", "umia_accuracy"}
    assert len(rows) == 3 * len(labels) * len(metrics)
    assert {r["unlearner"] for r in rows} == set(labels)
    assert {r["metric"] for r in rows} == metrics
    assert {r["status"] for r in rows} == {"ok"}
    forget = {}
    for r in rows:
        if r["metric"] == "accuracy_forget":
            forget.setdefault(r["unlearner"], []).append(float(r["value"]))
    mean = {k: sum(v) / len(v) for k, v in forget.items()}
    assert mean["GoldModel"] < mean["Identity"] - 0.5
    assert mean["NegGrad lr=2e-3"] < mean["Identity"] - 0.5
    summary = list(csv.DictReader(open(out / "summary.csv")))
    assert {s["unlearner"] for s in summary} == set(labels)
    resolved = json.loads((out / "config.resolved.json").read_text())
    assert resolved["unlearners"][3]["parameters"]["lr"] == 0.002
    assert list((out / "wandb").glob("offline-run-*")), "wandb wrote offline runs without an account"


def run_subprocess(config_path: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), PLUGINS]))
    return subprocess.run([sys.executable, str(ROOT / "main.py"), str(config_path), "--no-progress"],
                          env=env, capture_output=True, text=True, timeout=300)


def test_killed_run_leaves_a_valid_file_and_resumes(tmp_path):
    marker = tmp_path / "killed-once"
    config = tiny_config(tmp_path, imports=["erasure_test_plugins"], unlearners=[
        {"class": "Identity"},
        {"class": "erasure_test_plugins.KillOnce", "parameters": {"marker": str(marker)}},
        {"class": "NegGrad", "parameters": {"epochs": 1}},
    ])
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    first = run_subprocess(path)
    assert first.returncode != 0 and marker.exists()
    results = Path(config["output"]["dir"]) / "results.csv"
    rows = read_rows(results)
    assert {r["unlearner"] for r in rows} == {"Identity"}, "only the finished job was written"
    assert results.read_text().endswith("\n")
    second = run_subprocess(path)
    assert second.returncode == 0, second.stderr
    assert "Skipping 1 finished job" in second.stdout
    rows = read_rows(results)
    jobs = [(r["unlearner"], r["metric"]) for r in rows]
    assert len(jobs) == len(set(jobs)) and len({r["unlearner"] for r in rows}) == 3
    assert len({r["run_id"] for r in rows}) == 2


def test_order_of_unlearners_does_not_change_results(tmp_path):
    unlearners = [{"class": "NegGrad", "parameters": {"epochs": 2, "lr": 0.01}},
                  {"class": "FineTuning", "parameters": {"epochs": 2}},
                  {"class": "AdvancedNegGrad", "parameters": {"epochs": 1, "alpha": 0.9}}]
    evaluators = [{"class": "Accuracy"}, {"class": "UMIA"}]
    values = []
    for i, order in enumerate([unlearners, unlearners[::-1]]):
        config = tiny_config(tmp_path / str(i), unlearners=order, evaluators=evaluators, seeds=[0, 1])
        report = make_runner(config).run()
        values.append(final_values(read_rows(report.results_path)))
    assert values[0] == values[1]
    assert len(values[0]) == 2 * 3 * 6


def test_failing_unlearner_is_an_error_row_and_the_run_goes_on(tmp_path):
    config = tiny_config(tmp_path, imports=["erasure_test_plugins"], unlearners=[
        {"class": "erasure_test_plugins.ExplodingUnlearner"}, {"class": "Identity"}],
        evaluators=[{"class": "Accuracy"}, {"class": "erasure_test_plugins.ParameterCount"}])
    report = make_runner(config).run()
    assert report.exit_code == 1
    rows = read_rows(report.results_path)
    errors = [r for r in rows if r["status"] == "error"]
    assert len(errors) == 1 and errors[0]["metric"] == "unlearn" and "RuntimeError: boom" in errors[0]["error"]
    assert any(r["unlearner"] == "Identity" and r["metric"] == "parameter_count" for r in rows)
    # a rerun retries the failed job only, replacing its error row
    report = make_runner(config).run()
    assert report.skipped == 1
    assert len([r for r in read_rows(report.results_path) if r["status"] == "error"]) == 1


def test_contributed_component_by_short_name(tmp_path):
    config = tiny_config(tmp_path, imports=["erasure_test_plugins"],
                         unlearners=[{"class": "ShrinkWeights", "parameters": {"factor": 0.0}}])
    rows = read_rows(make_runner(config).run().results_path)
    accuracy = {r["metric"]: float(r["value"]) for r in rows}
    assert accuracy["accuracy_test"] < 0.5, "zeroed weights predict one class only"


def test_corrupt_cache_entry_is_reported_and_rebuilt(tmp_path, caplog):
    config = tiny_config(tmp_path, cache={"enabled": True, "dir": str(tmp_path / "cache")})
    first = final_values(read_rows(make_runner(config, use_cache=True).run().results_path))
    entries = sorted((tmp_path / "cache").glob("*.pt"))
    assert len(entries) == 1  # the original (nothing here reads gold)
    entries[0].write_bytes(entries[0].read_bytes()[:100])
    with caplog.at_level(logging.WARNING, logger="erasure.cache"):
        report = make_runner(config, use_cache=True, overwrite=True).run()
    assert "corrupt" in caplog.text
    assert final_values(read_rows(report.results_path)) == first
    assert len(sorted((tmp_path / "cache").glob("*.pt"))) == 1


def test_results_of_another_config_are_not_mixed(tmp_path):
    config = tiny_config(tmp_path)
    make_runner(config).run()
    config["training"]["epochs"] = 2
    from erasure.core.errors import ConfigError

    with pytest.raises(ConfigError, match="different configuration"):
        make_runner(config).run()
    assert make_runner(config, overwrite=True).run().exit_code == 0


def test_resolved_config_rebuilds_the_same_experiment(tmp_path):
    report = make_runner(tiny_config(tmp_path)).run()
    resolved = json.loads((report.results_path.parent / "config.resolved.json").read_text())
    from erasure.execution.experiment import build_experiment

    rebuilt = build_experiment(resolved)
    assert rebuilt.resolved_config() == resolved


def test_list_and_validate(tmp_path, capsys):
    assert main(["--list", "unlearners"]) == 0
    listing = capsys.readouterr().out
    assert "NegGrad(epochs=5, lr=0.001" in listing and "GoldModel()" in listing
    assert main([str(ROOT / "configs/proof_of_concept.jsonc"), "--validate", "--set", f"output.dir={tmp_path}/v"]) == 0
    assert "OK" in capsys.readouterr().out
    assert not (tmp_path / "v").exists(), "--validate runs nothing"


def test_summary_uses_only_the_jobs_of_the_current_config(tmp_path):
    config = tiny_config(tmp_path, unlearners=[{"class": "NegGrad", "parameters": {"epochs": 1, "lr": 0.5}}])
    make_runner(config).run()
    config["unlearners"][0]["parameters"]["lr"] = 0.001  # same label, new parameters: a new job
    report = make_runner(config).run()
    assert report.skipped == 0
    rows = read_rows(report.results_path)
    assert len({r["parameters"] for r in rows}) == 2, "the earlier job's rows stay in the file"
    assert all(s["n"] == 1 for s in report.summary), "but the summary counts only the current job"
