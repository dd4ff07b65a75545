"""Statistics over seeds and ``python -m erasure.summarize``."""
import csv
import math

import numpy as np
import pytest
from scipy import stats

from erasure.results.summary import format_table, mean_ci, summarize, write_summary
from erasure.summarize import main


def _rows():
    values = {"GoldModel": [0.5, 0.6, 0.7], "A": [0.9, 0.8, 1.0], "B": [0.2, float("nan"), 0.4]}
    rows = []
    for unlearner, vals in values.items():
        for seed, v in enumerate(vals):
            rows.append({"config_hash": "h", "seed": str(seed), "unlearner": unlearner, "metric": "m",
                         "value": str(v), "status": "ok", "step": ""})
    rows.append({"config_hash": "h", "seed": "0", "unlearner": "A", "metric": "m", "value": "5", "status": "ok", "step": "3"})
    rows.append({"config_hash": "h", "seed": "0", "unlearner": "A", "metric": "x", "value": "", "status": "error", "step": ""})
    return rows


def test_mean_ci_matches_scipy_t_interval():
    data = [0.3, 0.5, 0.9, 0.4]
    mean, std, low, high, n = mean_ci(data)
    ref = stats.t.interval(0.95, len(data) - 1, loc=np.mean(data), scale=stats.sem(data))
    assert (low, high) == pytest.approx(ref) and std == pytest.approx(np.std(data, ddof=1)) and n == 4
    assert math.isnan(mean_ci([1.0])[2])


def test_summarize_paired_difference_and_filters():
    records = {(r["unlearner"], r["metric"]): r for r in summarize(_rows())}
    a = records[("A", "m")]
    assert a["n"] == 3 and a["mean"] == pytest.approx(0.9)  # the trajectory row (step 3) is left out
    d = np.array([0.9, 0.8, 1.0]) - np.array([0.5, 0.6, 0.7])
    ref = stats.t.interval(0.95, 2, loc=d.mean(), scale=stats.sem(d))
    assert a["diff_vs_reference"] == pytest.approx(d.mean())
    assert (a["diff_ci95_low"], a["diff_ci95_high"]) == pytest.approx(ref)
    b = records[("B", "m")]
    assert b["n"] == 2 and b["n_paired"] == 2  # NaN seeds are dropped, pairs use the shared seeds
    assert b["diff_vs_reference"] == pytest.approx(np.mean([0.2 - 0.5, 0.4 - 0.7]))
    assert math.isnan(records[("GoldModel", "m")]["diff_vs_reference"])
    assert ("A", "x") not in records
    other = {(r["unlearner"], r["metric"]): r for r in summarize(_rows(), reference="A")}
    assert other[("GoldModel", "m")]["diff_vs_reference"] == pytest.approx(-0.3)


def test_rerun_rows_replace_earlier_ones():
    rows = _rows() + [{"config_hash": "h", "seed": "0", "unlearner": "A", "metric": "m", "value": "0.0", "status": "ok", "step": ""}]
    a = {(r["unlearner"], r["metric"]): r for r in summarize(rows)}[("A", "m")]
    assert a["n"] == 3 and a["mean"] == pytest.approx(0.6)


def test_table_and_cli_rebuild_the_summary(tmp_path, capsys):
    table = format_table(summarize(_rows()))
    assert "95% CI" in table and "Δ vs GoldModel" in table and "[" in table
    results = tmp_path / "results.csv"
    fields = ["config_hash", "seed", "unlearner", "metric", "value", "status", "step"]
    with open(results, "w", newline="") as f:
        w = csv.DictWriter(f, fields)
        w.writeheader()
        w.writerows(_rows())
    assert main([str(results)]) == 0
    out = capsys.readouterr().out
    assert "Δ vs GoldModel" in out
    with open(tmp_path / "summary.csv") as f:
        got = {(r["unlearner"], r["metric"]): r for r in csv.DictReader(f)}
    assert float(got[("A", "m")]["mean"]) == pytest.approx(0.9) and got[("A", "m")]["n"] == "3"
    assert main([str(tmp_path / "missing.csv")]) == 2
    assert main([str(results), "--reference", "Gold"]) == 2
    assert "unknown --reference 'Gold'" in capsys.readouterr().err
    write_summary([], tmp_path / "empty.csv")
    assert (tmp_path / "empty.csv").read_text().startswith("unlearner,metric,mean")


def test_summarize_agrees_with_the_run_when_a_label_changed_parameters(tmp_path, capsys):
    """Item 5 of the results issue: rows of an earlier run whose label now has other parameters are
    left out (as the run's own table does), or, without config.resolved.json, shown apart."""
    from conftest import make_runner, tiny_config

    config = tiny_config(tmp_path, seeds=[0, 1], unlearners=[
        {"class": "GoldModel"}, {"class": "NegGrad", "parameters": {"epochs": 1, "lr": 0.5}}])
    make_runner(config).run()
    config["unlearners"][1]["parameters"]["lr"] = 0.001  # same label, new parameters
    report = make_runner(config).run()
    out = tmp_path / "out"
    run_table = list(csv.DictReader(open(out / "summary.csv")))
    assert main([str(out), "--out", str(tmp_path / "again.csv")]) == 0
    captured = capsys.readouterr()
    assert "left out" in captured.err
    again = list(csv.DictReader(open(tmp_path / "again.csv")))
    assert again == run_table, "the summary rebuilt from the directory is the run's own"
    neggrad = [r for r in again if r["unlearner"] == "NegGrad"]
    assert neggrad and all(r["n"] == "2" for r in neggrad) and len(report.summary) == len(again)

    (out / "config.resolved.json").unlink()
    assert main([str(out / "results.csv"), "--out", str(tmp_path / "split.csv")]) == 0
    labels = {r["unlearner"] for r in csv.DictReader(open(tmp_path / "split.csv"))}
    assert labels == {"GoldModel", "NegGrad [lr=0.5]", "NegGrad [lr=0.001]"}
    assert "several parameter sets" in capsys.readouterr().err


def test_overwrite_also_clears_the_earlier_wandb_runs(tmp_path, monkeypatch):
    import sys
    import types

    from erasure.results.writers import RunInfo, WandbWriter

    monkeypatch.setitem(sys.modules, "wandb", types.SimpleNamespace())
    old_run = tmp_path / "wandb" / "offline-run-20240101_000000-abc"
    old_run.mkdir(parents=True)
    (old_run / "run-abc.wandb").write_text("earlier run")
    info = RunInfo(tmp_path, "x", "run", "hash", {})
    WandbWriter().open(info)
    assert old_run.exists(), "a resumed run keeps the earlier runs"
    WandbWriter().open(RunInfo(tmp_path, "x", "run", "hash", {}, overwrite=True))
    assert not (tmp_path / "wandb").exists()


def test_wandb_writes_one_offline_run_per_job_and_the_packages_once(tmp_path):
    from conftest import make_runner, tiny_config

    config = tiny_config(tmp_path, unlearners=[{"class": "Identity"}, {"class": "NegGrad", "parameters": {"epochs": 1}}],
                         seeds=[0, 1], output={"dir": str(tmp_path / "out"),
                                               "writers": [{"class": "CSVWriter"}, {"class": "WandbWriter"}]})
    assert make_runner(config).run().errors == 0
    runs = sorted((tmp_path / "out" / "wandb").glob("offline-run-*"))
    assert len(runs) == 4, "one run per (seed, unlearner)"
    assert sum((r / "files" / "requirements.txt").exists() for r in runs) == 1, \
        "the installed packages are listed in one run of the invocation"
