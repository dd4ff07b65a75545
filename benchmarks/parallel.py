"""Parallel execution: the same grid run serially, on the local pool and on Ray, as speed-up ratios.

The grid: digits, forget the digit 3, 3 seeds x 10 unlearners with the class-forgetting
benchmark's recipe (200 epochs) and evaluators (Accuracy, UMIA, RunTime), no model cache, so
every run also trains each seed's original and gold model. Each executor runs the whole command
(``python main.py ...``: process start, worker start-up and all) in alternating repeats, and the
median wall time gives the ratios serial / local and serial / ray. Ray's fixed start-up cost
(``ray.init`` of a local 2-CPU Ray, then ``ray.shutdown``) is measured alone the same way. Every
run must give the same metric values; the script checks it.

    python benchmarks/parallel.py [--repeats 3] [--workers 2]

With ``--gpu`` on a CUDA machine it also times 4 CIFAR-shaped ResNet-18 jobs sharing one GPU
(Ray, ``gpus_per_job`` 0.25) against the same 4 jobs run serially on that GPU.
"""
from __future__ import annotations

import argparse
import csv
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
UNLEARNERS = [
    {"class": "FineTuning", "parameters": {"epochs": 5, "lr": 0.02}},
    {"class": "NegGrad", "parameters": {"epochs": 5, "lr": 0.002}},
    {"class": "AdvancedNegGrad", "parameters": {"alpha": 0.99, "epochs": 5, "lr": 0.01}},
    {"class": "RandomLabels", "parameters": {"lr": 0.01}},
    {"class": "CFk", "parameters": {"k": 2}},
    {"class": "EUk", "parameters": {"k": 2}},
    {"class": "UNSIR", "parameters": {"lr": 0.02, "repair_lr": 0.01, "repair_epochs": 3}},
    {"class": "BadTeaching", "parameters": {"epochs": 10, "lr": 0.002, "retain_fraction": 0.9}},
    {"class": "SCRUB", "parameters": {"epochs": 10, "msteps": 3, "alpha": 0.5, "gamma": 1.0, "temperature": 2.0,
                                       "optimizer": {"class": "Adam"}}},
    {"class": "SSD", "parameters": {"alpha": 20.0}},
]
TIMINGS = {"wall_seconds", "cpu_seconds", "peak_rss_mb", "peak_cuda_mb", "speedup_vs_gold"}


def grid_config(out: Path) -> dict:
    return {
        "name": "parallel_benchmark", "seeds": [0, 1, 2], "device": "cpu",
        "data": {"source": {"class": "SklearnDigits"}, "split": {"test_fraction": 0.2},
                 "forget": {"class": "ClassForget", "parameters": {"classes": [3]}}},
        "model": {"class": "MLP", "parameters": {"hidden": [128, 64]}},
        "training": {"epochs": 200, "batch_size": 32, "optimizer": {"class": "Adam", "parameters": {"lr": 0.001}}},
        "unlearners": UNLEARNERS,
        "evaluators": [{"class": "Accuracy"}, {"class": "UMIA"}, {"class": "RunTime"}],
        "output": {"dir": str(out), "writers": [{"class": "CSVWriter"}]},
        "cache": {"enabled": False},
    }


def timed(command: list[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"failed: {' '.join(command)}\n{done.stderr[-2000:]}")
    return seconds


def values(path: Path) -> dict:
    with open(path, newline="") as f:
        return {(r["seed"], r["unlearner"], r["metric"]): r["value"] for r in csv.DictReader(f)
                if r["status"] == "ok" and r["metric"] not in TIMINGS}


def cpu_grid(repeats: int, workers: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="erasure-parallel-"))
    config = tmp / "grid.json"
    config.write_text(json.dumps(grid_config(tmp / "out")))
    modes = {
        "serial": ["--executor", "serial"],
        "local": ["--executor", "local", "--workers", str(workers)],
        "ray": ["--executor", "ray"],
    }
    ray_start = [sys.executable, "-c", "import ray; ray.init(num_cpus=2, include_dashboard=False); ray.shutdown()"]
    times: dict[str, list[float]] = {m: [] for m in [*modes, "ray start-up"]}
    results = {}
    for i in range(repeats):
        for mode, flags in modes.items():
            out = tmp / f"{mode}-{i}"
            times[mode].append(timed([sys.executable, "main.py", str(config), "--no-progress", *flags,
                                      "--set", f"output.dir={out}"]))
            results[mode] = values(out / "results.csv")
        times["ray start-up"].append(timed(ray_start))
    assert results["serial"] == results["local"] == results["ray"], "executors disagree"
    median = {m: statistics.median(t) for m, t in times.items()}
    print(f"grid: 3 seeds x {len(UNLEARNERS)} unlearners on digits, {repeats} alternating repeats, "
          f"{len(results['serial'])} metric values identical across executors")
    for mode, seconds in median.items():
        print(f"  {mode:13s} median {seconds:7.1f} s  (min {min(times[mode]):.1f}, max {max(times[mode]):.1f})")
    print(f"speed-up serial / local ({workers} workers): {median['serial'] / median['local']:.2f}x")
    print(f"speed-up serial / ray (2 CPUs, start-up included): {median['serial'] / median['ray']:.2f}x")
    print(f"speed-up serial / ray (start-up excluded): {median['serial'] / (median['ray'] - median['ray start-up']):.2f}x")


def gpu_sharing(repeats: int) -> None:
    """4 ResNet-18 jobs on CIFAR-shaped synthetic images: one GPU shared by 4 Ray tasks vs serial."""
    import torch

    if not torch.cuda.is_available():
        sys.exit("--gpu needs a CUDA device")
    tmp = Path(tempfile.mkdtemp(prefix="erasure-gpu-"))
    config = {
        "name": "gpu_sharing", "seeds": [0], "device": "cuda",
        "data": {"source": {"class": "Synthetic", "parameters": {"n_samples": 20000, "image_shape": [3, 32, 32],
                                                                 "num_classes": 10}},
                 "forget": {"class": "ClassForget", "parameters": {"classes": [3]}}},
        "model": {"class": "ResNet18"},
        "training": {"epochs": 2, "batch_size": 128},
        "unlearners": [{"class": "FineTuning", "label": f"FineTuning {i}", "parameters": {"epochs": 2 + i}}
                       for i in range(4)],
        "evaluators": [{"class": "Accuracy"}],
        "output": {"dir": str(tmp / "out"), "writers": [{"class": "CSVWriter"}]},
        "cache": {"dir": str(tmp / "cache")},
    }
    path = tmp / "gpu.json"
    path.write_text(json.dumps(config))
    warm = [sys.executable, "main.py", str(path), "--no-progress", "--set", "unlearners=[{\"class\":\"Identity\"}]",
            "--set", f"output.dir={tmp / 'warm'}"]
    timed(warm)  # trains and caches the original once
    times: dict[str, list[float]] = {"serial": [], "ray 0.25 GPU each": []}
    for i in range(repeats):
        times["serial"].append(timed([sys.executable, "main.py", str(path), "--no-progress",
                                      "--set", f"output.dir={tmp / f's{i}'}"]))
        times["ray 0.25 GPU each"].append(timed([sys.executable, "main.py", str(path), "--no-progress",
                                                 "--executor", "ray", "--set", "execution.gpus_per_job=0.25",
                                                 "--set", f"output.dir={tmp / f'r{i}'}"]))
    median = {m: statistics.median(t) for m, t in times.items()}
    for mode, seconds in median.items():
        print(f"  {mode:18s} median {seconds:7.1f} s")
    print(f"speed-up of 4 jobs sharing one GPU: {median['serial'] / median['ray 0.25 GPU each']:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--gpu", action="store_true", help="also time 4 ResNet-18 jobs sharing one GPU")
    args = parser.parse_args()
    cpu_grid(args.repeats, args.workers)
    if args.gpu:
        gpu_sharing(args.repeats)


if __name__ == "__main__":
    main()
