"""Per-job overhead at CIFAR shape: what a job costs besides its unlearning and evaluation.

    python benchmarks/job_overhead.py [--samples 50000] [--jobs 21] [--device cpu]
        [--evaluators RunTime] [--dir /tmp/erasure-job-overhead]

Writes a CIFAR-10-shaped tensor file once (``--samples`` x 3 x 32 x 32 float32, random values,
10 classes; 614 MB at 50,000) and runs a config over it with ``TensorFileSource``, a small MLP
trained for one epoch (cached in ``--dir``, so reruns load it) and ``--jobs`` Identity jobs (one
seed). Identity returns the original unchanged and RunTime reads timings only, so what a job costs
here is the framework's own per-job work: the job's context and copies, the shared-state
protection, the rows. The first job runs untimed (it builds the seed's state and loads the
models); the others are timed one by one in this process:

- CPU seconds per job (``time.process_time``: all threads of this process; median and max);
- peak temporary memory of the timed jobs: the resident set's peak above its level before them
  (Linux's ``/proc/self/clear_refs`` resets the peak), and on CUDA the allocator's peak above the
  memory held before them.

Goal (the scale rules in docs/execution.md): at most 100 ms CPU per Identity job, no temporary
larger than a batch. One training batch (256 samples) of this data is 3 MB.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from erasure.execution.experiment import build_experiment  # noqa: E402
from erasure.execution.jobs import UnlearnTask  # noqa: E402
from erasure.execution.runner import Runner  # noqa: E402
from erasure.execution.workspace import params_json  # noqa: E402

BATCH = 256


def write_data(path: Path, samples: int) -> None:
    """A CIFAR-10-shaped file (random images, balanced labels), written once."""
    if path.exists():
        return
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(samples, 3, 32, 32, generator=generator)
    y = torch.arange(samples) % 10
    torch.save({"x": x, "y": y}, path)


def resident_kb(field: str) -> int:
    """A ``/proc/self/status`` memory field in kB (VmRSS: now, VmHWM: peak since the last reset)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")


def config(data: Path, directory: Path, jobs: int, device: str, evaluators: list[str]) -> dict:
    return {
        "name": "job_overhead", "seeds": [0], "device": device,
        "data": {"source": {"class": "TensorFileSource", "parameters": {"path": str(data)}},
                 "split": {"test_fraction": 0.2},
                 "forget": {"class": "RandomForget", "parameters": {"fraction": 0.1}}},
        "model": {"class": "MLP", "parameters": {"hidden": [32]}},
        "training": {"epochs": 1, "batch_size": BATCH,
                     "optimizer": {"class": "torch.optim.Adam", "parameters": {"lr": 0.001}}},
        "unlearners": [{"class": "Identity", "label": f"Identity {i}"} for i in range(jobs)],
        "evaluators": [{"class": name} for name in evaluators],
        "cache": {"enabled": True, "dir": str(directory / "cache")},
        "output": {"dir": str(directory / "out"), "writers": [{"class": "CSVWriter"}]},
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--samples", type=int, default=50_000)
    p.add_argument("--jobs", type=int, default=21)
    p.add_argument("--device", default="cpu")
    p.add_argument("--evaluators", nargs="*", default=["RunTime"])
    p.add_argument("--dir", default="/tmp/erasure-job-overhead")
    args = p.parse_args(argv)
    torch.set_num_threads(1)  # as every job runs (execution.cpus_per_job's default)
    directory = Path(args.dir)
    directory.mkdir(parents=True, exist_ok=True)
    data = directory / f"cifar_shape_{args.samples}.pt"
    write_data(data, args.samples)

    exp = build_experiment(config(data, directory, args.jobs, args.device, args.evaluators))
    workspace = Runner(exp, progress=False, out=lambda s: None).workspace
    tasks = [UnlearnTask(0, e.label, params_json(e.unlearner)) for e in exp.unlearners]
    start = time.process_time()
    first = workspace.execute(tasks[0])  # builds the seed's state, trains or loads the original
    setup = time.process_time() - start
    assert all(r["status"] == "ok" for r in first.rows), first.rows

    cuda = workspace.device.type == "cuda"
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        cuda_before = torch.cuda.memory_allocated()
    rss_before = resident_kb("VmRSS")
    reset_peak()
    seconds = []
    for task in tasks[1:]:
        start = time.process_time()
        result = workspace.execute(task)
        if cuda:
            torch.cuda.synchronize()
        seconds.append(time.process_time() - start)
        assert all(r["status"] == "ok" for r in result.rows), result.rows
    peak_mb = (resident_kb("VmHWM") - rss_before) / 1024
    batch_mb = BATCH * 3 * 32 * 32 * 4 / 2**20
    print(f"{args.samples} x 3 x 32 x 32 float32 ({data.stat().st_size / 2**20:.0f} MB), device {workspace.device}, "
          f"torch threads {torch.get_num_threads()}, evaluators {' '.join(args.evaluators) or '-'}")
    print(f"first job (seed state, models): {setup:.2f} s CPU")
    print(f"per job, {len(seconds)} timed Identity jobs: {statistics.median(seconds) * 1e3:.1f} ms CPU median, "
          f"{max(seconds) * 1e3:.1f} ms max (goal <= 100 ms)")
    print(f"peak temporary memory of those jobs: {peak_mb:.1f} MB resident (a batch of {BATCH} is {batch_mb:.1f} MB)")
    if cuda:
        print(f"peak temporary CUDA memory: {(torch.cuda.max_memory_allocated() - cuda_before) / 2**20:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
