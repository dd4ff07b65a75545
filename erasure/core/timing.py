"""Wall time, CPU time and peak memory of one call, and where they were measured."""
from __future__ import annotations

import contextlib
import os
import platform
import threading
import time
from dataclasses import asdict, dataclass, fields
from typing import Any, Iterator

import torch

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


@dataclass
class Timing:
    """Cost of one call. Memory figures are increments over the call's start (MiB); ``device``,
    ``threads`` and ``host`` say where it ran ("" / 0: unknown, e.g. an older cache entry);
    ``origin`` is "measured" (in this process) or "cache" (read from a model-cache entry)."""

    wall_seconds: float = 0.0
    cpu_seconds: float = 0.0
    peak_rss_mb: float = float("nan")
    peak_cuda_mb: float = float("nan")
    device: str = ""
    threads: int = 0
    host: str = ""
    origin: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Timing:
        """The timing stored in a model-cache entry (unknown keys are ignored, missing ones unknown)."""
        known = {f.name for f in fields(cls)} - {"origin"}
        return cls(**{k: v for k, v in record.items() if k in known}, origin="cache")

    def mismatch(self, other: Timing) -> str:
        """Why the two wall times cannot be compared ("" when both ran on the same device type,
        with the same number of torch threads, on the same host)."""
        differences = []
        for name in ("device", "threads", "host"):
            mine, theirs = getattr(self, name), getattr(other, name)
            if not mine or not theirs:
                differences.append(f"{name} unknown")
            elif mine != theirs:
                differences.append(f"{name} {mine!r} vs {theirs!r}")
        return ", ".join(differences)


def describe_device(device: torch.device) -> str:
    """The device type, with the GPU's name on CUDA: what makes two timings comparable."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return device.type


def _rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * _PAGE
    except OSError:
        return None


def _rss_high_water_bytes() -> int | None:
    try:
        with open("/proc/self/status") as f:
            line = next(line for line in f if line.startswith("VmHWM:"))
        return int(line.split()[1]) * 1024
    except (OSError, StopIteration):
        return None


def _reset_rss_high_water() -> bool:
    """Set the kernel's resident-memory high-water mark to the current RSS (Linux 4.0+)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


@dataclass(eq=False)  # compared by identity: nested measurements may hold equal figures
class _Peaks:
    """Running peaks (bytes) of a measurement in progress."""

    rss: int
    exact: bool  # the kernel's high-water mark was reset at the start (no sampling needed)
    cuda_device: torch.device | None
    cuda: int = 0

    def fold(self) -> None:
        """Take in the high-water marks, before a nested measurement resets them or at the end."""
        if self.exact:
            self.rss = max(self.rss, _rss_high_water_bytes() or 0)
        if self.cuda_device is not None:
            self.cuda = max(self.cuda, torch.cuda.max_memory_allocated(self.cuda_device))


_open: list[_Peaks] = []  # measurements in progress


@contextlib.contextmanager
def measure(device: torch.device, interval: float = 0.01) -> Iterator[Timing]:
    """Measure the block: wall and process CPU seconds; peak resident memory (exact, from the
    kernel's high-water mark, on Linux; sampled every ``interval`` seconds where that mark cannot
    be reset; NaN without /proc) and peak CUDA memory, both above their level at the start; and
    where it ran. Measurements may nest."""
    cuda = device if device.type == "cuda" else None
    timing = Timing(device=describe_device(device), threads=torch.get_num_threads(), host=platform.node(),
                    origin="measured")
    for outer in _open:
        outer.fold()
    start_rss = _rss_bytes()
    exact = start_rss is not None and _reset_rss_high_water() and _rss_high_water_bytes() is not None
    peaks = _Peaks(rss=start_rss or 0, exact=exact, cuda_device=cuda)
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(interval):
            peaks.rss = max(peaks.rss, _rss_bytes() or 0)

    sampler = threading.Thread(target=sample, daemon=True) if start_rss is not None and not exact else None
    if sampler:
        sampler.start()
    if cuda:
        torch.cuda.synchronize(cuda)
        start_cuda = torch.cuda.memory_allocated(cuda)
        torch.cuda.reset_peak_memory_stats(cuda)
    _open.append(peaks)
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        yield timing
    finally:
        if cuda:
            torch.cuda.synchronize(cuda)
        timing.wall_seconds = time.perf_counter() - wall
        timing.cpu_seconds = time.process_time() - cpu
        _open.remove(peaks)
        if sampler:
            stop.set()
            sampler.join()
        peaks.fold()
        if start_rss is not None:
            peaks.rss = max(peaks.rss, _rss_bytes() or 0)
            timing.peak_rss_mb = (peaks.rss - start_rss) / 2**20
        if cuda:
            timing.peak_cuda_mb = (peaks.cuda - start_cuda) / 2**20
