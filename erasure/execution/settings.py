"""How jobs run: the ``execution`` block of a config (``--executor``, ``--workers``, ... override it).

Execution settings never change what is computed, so they are part of neither the config hash
nor any cache key: a config runs serially, on a local process pool or on a Ray cluster with the
same results. Every job runs with ``cpus_per_job`` torch intra-op threads under every executor,
because the number of threads changes the last bits of CPU floating-point reductions; the
executors derive their parallelism from that budget instead (a local pool of
``cores // cpus_per_job`` workers, Ray tasks asking for ``num_cpus=cpus_per_job``).
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any, Literal

from erasure.core.errors import ConfigError
from erasure.core.params import NonNegativeFloat, NonNegativeInt, PositiveInt

ExecutorName = Literal["serial", "local", "ray"]


def available_cpus() -> int:
    """CPU cores this process may use (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


@dataclass
class Execution:
    """``executor``: ``serial`` (one job after another in this process), ``local`` (a pool of
    ``workers`` processes on this machine; default ``cores // cpus_per_job``) or ``ray`` (Ray Core
    tasks on the cluster at ``ray_address``, or a local Ray started for the run).
    ``cpus_per_job``: torch threads of every job (default 1: small models train fastest that way,
    and a pool then uses every core). ``gpus_per_job``: the GPU share a Ray task asks for
    (fractions let small jobs share a GPU; default 1 on a CUDA device, else 0); the local pool
    instead assigns the visible GPUs to its workers round-robin. ``max_retries``: how often a job
    whose worker process died is started again before it becomes error rows.
    """

    executor: ExecutorName = "serial"
    workers: PositiveInt | None = None
    cpus_per_job: PositiveInt = 1
    gpus_per_job: NonNegativeFloat | None = None
    ray_address: str | None = None
    max_retries: NonNegativeInt = 1

    def check(self) -> None:
        if self.executor == "serial" and self.workers not in (None, 1):
            raise ConfigError(f"the serial executor runs one job at a time; drop 'workers' ({self.workers}) "
                              "or choose \"executor\": \"local\"", "workers")
        if self.ray_address is not None and self.executor != "ray":
            raise ConfigError("'ray_address' needs \"executor\": \"ray\"", "ray_address")

    def pool_size(self) -> int:
        """Worker processes of the local pool."""
        return self.workers or max(1, available_cpus() // self.cpus_per_job)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
