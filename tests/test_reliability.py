"""Nothing lost: a job's rows are committed as a unit, one run at a time per output directory,
labels of any characters round-trip, and runs killed at random points resume to exactly the
rows of an uninterrupted run."""
from __future__ import annotations

import copy
import csv
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from conftest import ROOT, make_runner, tiny_config
from erasure.cli import main
from erasure.results import writers
from erasure.results.files import lock_output_dir
from erasure.results.writers import COLUMNS, CSVWriter, RunInfo, journal_path, read_journal, read_rows

PLUGINS = str(Path(__file__).resolve().parent / "plugins")
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), PLUGINS]))
CHEAP_UNLEARNERS = [{"class": "Identity"}, {"class": "GoldModel"},
                    {"class": "FineTuning", "parameters": {"epochs": 1}},
                    {"class": "NegGrad", "parameters": {"epochs": 1}}]


def open_writer(directory: Path) -> CSVWriter:
    writer = CSVWriter()
    writer.open(RunInfo(directory, "x", "run", "hash", {}))
    return writer


def job(label: str, n: int = 3, metric: str = "m") -> list[dict]:
    return [{"run_id": "run", "experiment": "x", "config_hash": "hash", "seed": 0, "unlearner": label,
             "parameters": "{}", "metric": f"{metric}{i}", "value": i / 10, "status": "ok"} for i in range(n)]


def labels(rows: list[dict]) -> Counter:
    return Counter(r["unlearner"] for r in rows)


def metric_values(rows: list[dict]) -> dict:
    """(seed, unlearner, metric) -> value of every final ok row; fails on a duplicate."""
    keys = [(r["seed"], r["unlearner"], r["metric"], r["step"]) for r in rows]
    assert len(keys) == len(set(keys)), "duplicate rows"
    return {(r["seed"], r["unlearner"], r["metric"]): r["value"] for r in rows
            if r["status"] == "ok" and r["metric"] not in ("wall_seconds", "cpu_seconds", "peak_rss_mb")}


# ------------------------------------------------------------------ a job's rows are committed as a unit
def test_rows_after_the_last_commit_are_dropped_and_the_job_rerun(tmp_path):
    writer = open_writer(tmp_path)
    writer.write(job("A"))
    writer.close()
    path = tmp_path / "results.csv"
    with open(path, "a", newline="") as f:  # a kill after the CSV write, before the commit ...
        csv.DictWriter(f, COLUMNS, extrasaction="ignore").writerows(job("B"))
        f.write('run,x,hash,0,C,{},m0,"0.1\n')  # ... and a row torn inside a quoted field
    assert labels(read_rows(path)) == {"A": 3}
    writer = open_writer(tmp_path)
    assert writer.finished == {("0", "A", "{}", "")}, "B must run again"
    writer.write(job("B"))
    writer.close()
    assert labels(read_rows(path)) == {"A": 3, "B": 3}


class Interrupt:
    """A cell whose text cannot be made: stands for a signal arriving inside ``writerows``."""

    def __str__(self) -> str:
        raise KeyboardInterrupt


def test_a_signal_inside_a_write_leaves_no_partial_job(tmp_path):
    writer = open_writer(tmp_path)
    writer.write(job("A"))
    rows = job("B", n=5)
    rows[3]["value"] = Interrupt()
    with pytest.raises(KeyboardInterrupt):
        writer.write(rows)
    writer.close()
    assert labels(read_rows(tmp_path / "results.csv")) == {"A": 3}
    writer = open_writer(tmp_path)
    assert writer.finished == {("0", "A", "{}", "")}
    writer.close()


def test_a_write_cut_short_is_rolled_back(tmp_path, monkeypatch):
    writer = open_writer(tmp_path)
    writer.write(job("A"))
    path = tmp_path / "results.csv"
    committed = path.read_bytes(), journal_path(path).read_bytes()

    def half_then_interrupted(fd, data):
        os.write(fd, data[: len(data) // 2])
        raise KeyboardInterrupt

    monkeypatch.setattr(writers, "_write_all", half_then_interrupted)
    with pytest.raises(KeyboardInterrupt):
        writer.write(job("B"))
    writer.close()
    assert (path.read_bytes(), journal_path(path).read_bytes()) == committed


def test_disk_full_mid_run_loses_no_rows(tmp_path):
    """``ulimit -f``: the results file hits the size limit in the middle of a job."""
    resource = pytest.importorskip("resource")
    config = tiny_config(tmp_path, seeds=[0, 1], unlearners=CHEAP_UNLEARNERS)
    clean = tiny_config(tmp_path / "clean", seeds=[0, 1], unlearners=CHEAP_UNLEARNERS)
    reference = make_runner(clean).run().results_path
    expected = metric_values(read_rows(reference))
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (int(reference.stat().st_size * 0.6), hard))
    try:
        with pytest.raises(OSError):  # EFBIG: Python ignores SIGXFSZ, so the write fails
            make_runner(config).run()
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    results = Path(config["output"]["dir"]) / "results.csv"
    partial = read_rows(results)
    assert 0 < len(partial) < len(expected) and all(n == 5 for n in Counter((r["seed"], r["unlearner"]) for r in partial).values())
    report = make_runner(config).run()
    assert report.skipped > 0 and metric_values(read_rows(results)) == expected


# ------------------------------------------------------------------ labels and names of any characters
SEPARATORS = ["new\nline", "crlf\r\nline", "carriage\rreturn", "form\x0cfeed", "vertical\x0btab",
              "line\u2028separator", "paragraph\u2029separator", "groups\x1c\x1d\x1e", "next\x85line",
              'quote"comma,semicolon;']


def test_names_with_separators_round_trip_through_the_csv(tmp_path):
    writer = open_writer(tmp_path)
    for label in SEPARATORS:
        writer.write(job(label, metric=label))
    writer.close()
    rows = read_rows(tmp_path / "results.csv")
    assert [r["unlearner"] for r in rows] == [s for s in SEPARATORS for _ in range(3)]
    assert [r["metric"] for r in rows] == [f"{s}{i}" for s in SEPARATORS for i in range(3)]


def test_labels_with_separators_through_runs(tmp_path):
    config = tiny_config(tmp_path, unlearners=[{"class": "Identity", "label": label} for label in SEPARATORS])
    report = make_runner(config).run()
    assert set(labels(read_rows(report.results_path))) == set(SEPARATORS)
    assert {r["unlearner"] for r in report.summary} == set(SEPARATORS)
    again = make_runner(config).run()
    assert again.skipped == len(SEPARATORS) and again.rows_written == 0


# ------------------------------------------------------------------ one run at a time per output directory
def try_lock_elsewhere(directory: Path) -> str:
    code = ("import sys\nfrom erasure.results.files import lock_output_dir\n"
            "try:\n    lock_output_dir(sys.argv[1]); print('acquired')\n"
            "except Exception as exc:\n    print(exc)\n")
    return subprocess.run([sys.executable, "-c", code, str(directory)], env=ENV, capture_output=True,
                          text=True, timeout=60).stdout


def test_the_driver_can_hold_the_lock_for_a_whole_run(tmp_path):
    with lock_output_dir(tmp_path):
        writer = open_writer(tmp_path)  # reentrant within the thread that holds it
        writer.write(job("A"))
        writer.close()
        assert "another erasure run is writing to" in try_lock_elsewhere(tmp_path), "still held by the driver"
    assert try_lock_elsewhere(tmp_path).strip() == "acquired"


def test_a_second_run_into_the_same_directory_is_refused(tmp_path, capsys):
    started, release = tmp_path / "started", tmp_path / "release"
    config = tiny_config(tmp_path, imports=["erasure_test_plugins"], unlearners=[
        {"class": "erasure_test_plugins.WaitForFile", "parameters": {"started": str(started), "release": str(release)}},
        {"class": "Identity"}])
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    out = Path(config["output"]["dir"])
    first = subprocess.Popen([sys.executable, str(ROOT / "main.py"), str(path), "--no-progress"], env=ENV,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not started.exists():
            assert first.poll() is None and time.monotonic() < deadline, first.stderr.read() if first.stderr else ""
            time.sleep(0.05)
        before = {name: (out / name).read_bytes() for name in ("results.csv", "config.resolved.json")}
        code = main([str(path), "--no-progress"])
        err = capsys.readouterr().err
        assert code == 2 and "another erasure run is writing to" in err, err
        assert {name: (out / name).read_bytes() for name in before} == before, "the second run wrote nothing"
    finally:
        release.touch()
        _, first_err = first.communicate(timeout=120)
    assert first.returncode == 0, first_err
    assert labels(read_rows(out / "results.csv")) == {"WaitForFile": 5, "Identity": 5}
    assert main([str(path), "--no-progress"]) == 0
    assert "Skipping 2 finished job(s)" in capsys.readouterr().out


def children_of(pid: int) -> set[int]:
    """The processes whose parent is ``pid`` (from /proc)."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.add(int(stat.parent.name))
    return found


def running(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads processes from /proc")
def test_pool_workers_exit_when_their_driver_is_killed(tmp_path):
    """A SIGKILLed driver closes nothing its workers notice (forked workers hold each other's pipe
    ends; a busy one reads none): they watch their parent and exit instead of running on orphaned."""
    started = tmp_path / "started"
    config = tiny_config(tmp_path, imports=["erasure_test_plugins"], unlearners=[
        {"class": "erasure_test_plugins.WaitForFile", "parameters": {"started": str(started), "release": str(tmp_path / "never"),
                                                                     "timeout": 600}},
        {"class": "Identity"}])
    config["execution"] = {"executor": "local", "workers": 2}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    driver = subprocess.Popen([sys.executable, str(ROOT / "main.py"), str(path), "--no-progress"], env=ENV,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not started.exists():  # one worker busy in a job, the other idle
            assert driver.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        workers = children_of(driver.pid)
        assert len(workers) >= 2
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.wait(timeout=60)
    deadline = time.monotonic() + 20
    while any(map(running, workers)) and time.monotonic() < deadline:
        time.sleep(0.1)
    alive = [w for w in workers if running(w)]
    for w in alive:
        os.kill(w, signal.SIGKILL)
    assert not alive, f"{len(alive)} worker(s) still running after their driver was killed"


# ------------------------------------------------------------------ killed at random points
def committed_jobs(results: Path) -> int:
    journal = read_journal(results)
    return len(journal[1]) if journal else 0


def kill_at_random_point(config_path: Path, results: Path, jobs: int, job_seconds: float, rng: random.Random) -> bool:
    """Run ``python main.py`` and SIGKILL it after a random number of committed jobs plus a random
    fraction of a job; False if it finished first."""
    target = rng.randint(committed_jobs(results), jobs - 1)
    previous = journal_path(results).stat().st_mtime_ns if journal_path(results).exists() else None
    run = subprocess.Popen([sys.executable, str(ROOT / "main.py"), str(config_path), "--no-progress"], env=ENV,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while run.poll() is None and (not journal_path(results).exists()  # until the run has opened its results
                                  or journal_path(results).stat().st_mtime_ns == previous
                                  or committed_jobs(results) < target):
        time.sleep(0.005)
    time.sleep(rng.uniform(0, job_seconds))
    killed = run.poll() is None
    if killed:
        run.send_signal(signal.SIGKILL)
    run.wait(timeout=120)
    return killed


def test_runs_killed_at_random_points_resume_to_the_uninterrupted_rows(tmp_path):
    config = tiny_config(tmp_path, seeds=[0, 1], unlearners=CHEAP_UNLEARNERS)
    clean = copy.deepcopy(config)
    clean["output"]["dir"] = str(tmp_path / "clean")
    start = time.monotonic()
    expected = metric_values(read_rows(make_runner(clean).run().results_path))
    jobs = 2 * len(CHEAP_UNLEARNERS)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    results = Path(config["output"]["dir"]) / "results.csv"
    job_seconds, rng = (time.monotonic() - start) / jobs, random.Random(15)
    kills = attempts = 0
    while kills < 3 and attempts < 8:
        attempts += 1
        if committed_jobs(results) == jobs:  # a run finished before its kill: start over
            results.unlink()
            journal_path(results).unlink()
        kills += kill_at_random_point(path, results, jobs, job_seconds, rng)
        committed = metric_values(read_rows(results))
        assert all(expected[k] == v for k, v in committed.items()), "a committed row differs from the clean run's"
    make_runner(config).run()
    final = metric_values(read_rows(results))
    assert kills == 3 and final == expected, f"{kills} kills, {len(set(expected) - set(final))} rows lost"
