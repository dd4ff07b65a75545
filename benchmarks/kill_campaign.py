"""Kill campaign: SIGKILL a run at random points, resume it each time, compare with a clean run.

Runs ``python main.py CONFIG`` once to the end (the clean rows), then again and again into another
output directory, each time killed with SIGKILL after a random time within the clean run's
length, until ``--kills`` runs were killed; a final run resumes to the end. Every intermediate
results file must hold only rows equal to the clean run's, and the final one exactly the clean
run's metric values, with no row lost, added or duplicated, and no process of the killed runs may
be left behind.

    python benchmarks/kill_campaign.py [--executor serial|local] [--kills 10] [--config configs/proof_of_concept.jsonc]
"""
from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from erasure.results.writers import read_rows  # noqa: E402

TIMINGS = {"wall_seconds", "cpu_seconds", "peak_rss_mb", "peak_cuda_mb", "speedup_vs_gold"}


def metric_values(results: Path) -> tuple[dict[tuple, str], int]:
    """(row key -> value of every non-timing row, number of duplicated rows)."""
    rows = read_rows(results) if results.exists() else []
    keys = [(r["seed"], r["unlearner"], r["metric"], r["step"], r.get("request", "")) for r in rows]
    values = {k: r["value"] for k, r in zip(keys, rows) if r["metric"] not in TIMINGS}
    return values, sum(n - 1 for n in Counter(keys).values())


def start(config: str, out: Path, executor: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "main.py", config, "--no-progress", "--executor", executor,
                             "--set", f"output.dir={out}"], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)


def leftovers(out: Path) -> list[int]:
    """Processes still running with ``out`` on their command line (from /proc; empty elsewhere)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if f"output.dir={out}".encode() in cmdline.read_bytes():
                found.append(int(cmdline.parent.name))
        except OSError:
            pass
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--executor", default="serial", choices=["serial", "local"])
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--config", default="configs/proof_of_concept.jsonc")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="erasure-kills-"))
    clean, killed = tmp / "clean", tmp / "killed"
    began = time.monotonic()
    if start(args.config, clean, args.executor).wait() != 0:
        sys.exit("the clean run failed")
    length = time.monotonic() - began
    expected, _ = metric_values(clean / "results.csv")
    rng, kills, finished_first = random.Random(args.seed), 0, 0
    while kills < args.kills:
        run = start(args.config, killed, args.executor)
        time.sleep(rng.uniform(0.5, length))
        if run.poll() is None:
            run.send_signal(signal.SIGKILL)
            kills += 1
        code = run.wait()
        got, duplicated = metric_values(killed / "results.csv")
        assert duplicated == 0 and all(expected.get(k) == v for k, v in got.items()), "a committed row differs"
        if code == 0:  # it finished before its kill: check it, then start afresh
            assert got == expected
            finished_first += 1
            shutil.rmtree(killed)
    time.sleep(2)  # workers of the killed runs notice within a second
    left = leftovers(killed)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    if start(args.config, killed, args.executor).wait() != 0:
        sys.exit("the resumed run failed")
    got, duplicated = metric_values(killed / "results.csv")
    print(f"{args.executor}: {kills} SIGKILLs at random points (clean run {length:.1f} s; {finished_first} runs "
          f"finished before their kill); {len(expected)} metric values: {len(set(expected) - set(got))} lost, "
          f"{len(set(got) - set(expected))} added, {duplicated} duplicated rows, equal: {got == expected}; "
          f"{len(left)} processes left behind")
    shutil.rmtree(tmp)
    if got != expected or duplicated or left:
        sys.exit(1)


if __name__ == "__main__":
    main()
