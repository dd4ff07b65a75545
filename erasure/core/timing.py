"""Wall time, CPU time and peak memory of one call."""
from __future__ import annotations

import contextlib
import os
import resource
import threading
import time
from dataclasses import asdict, dataclass
from typing import Iterator

import torch

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


@dataclass
class Timing:
    wall_seconds: float = 0.0
    cpu_seconds: float = 0.0
    peak_rss_mb: float = float("nan")
    peak_cuda_mb: float = float("nan")

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def _rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * _PAGE
    except OSError:
        return None


@contextlib.contextmanager
def measure(device: torch.device, interval: float = 0.01) -> Iterator[Timing]:
    """Measure the block: wall and process CPU seconds, peak resident memory sampled every
    ``interval`` seconds (Linux; elsewhere the process's lifetime peak), peak CUDA memory."""
    timing = Timing()
    peak = [_rss_bytes() or 0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(interval):
            peak[0] = max(peak[0], _rss_bytes() or 0)

    sampler = threading.Thread(target=sample, daemon=True) if _rss_bytes() is not None else None
    if sampler:
        sampler.start()
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        yield timing
    finally:
        if cuda:
            torch.cuda.synchronize(device)
        timing.wall_seconds = time.perf_counter() - wall
        timing.cpu_seconds = time.process_time() - cpu
        if sampler:
            stop.set()
            sampler.join()
            peak[0] = max(peak[0], _rss_bytes() or 0)
            timing.peak_rss_mb = peak[0] / 2**20
        else:  # ru_maxrss: kilobytes on Linux, bytes on macOS
            scale = 1 if os.uname().sysname == "Darwin" else 1024
            timing.peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20
        if cuda:
            timing.peak_cuda_mb = torch.cuda.max_memory_allocated(device) / 2**20
