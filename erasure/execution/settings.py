"""How jobs run and how unlearners are tuned: the ``execution`` and ``tuning`` blocks of a config.

The ``execution`` block (``--executor``, ``--workers``, ... override it).

Execution settings never change what is computed, so they are part of neither the config hash
nor any cache key: a config runs serially, on a local process pool or on a Ray cluster with the
same results. Every job runs with ``cpus_per_job`` torch intra-op threads under every executor,
because the number of threads changes the last bits of CPU floating-point reductions; the
executors derive their parallelism from that budget instead (a local pool of
``cores // cpus_per_job`` workers, Ray tasks asking for ``num_cpus=cpus_per_job``).
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from erasure.core.errors import ConfigError
from erasure.core.params import NonNegativeFloat, NonNegativeInt, OpenFraction, PositiveFloat, PositiveInt

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


#: Objectives with a name; any other is a metric with a direction, "accuracy_forget:min".
NAMED_OBJECTIVES = ("gold_gap", "gold_free")


@dataclass
class Tuning:
    """The equal-budget protocol: every unlearner that has a search space gets ``trials`` trials.

    ``objective``: ``gold_gap`` (the mean range-normalised distance to the gold model over the
    metrics whose target is gold; default), ``gold_free`` (no retrained model: forget accuracy at
    or below held-out accuracy on the forgotten data's distribution, retain accuracy kept; see
    docs/tuning.md), or ``METRIC:min`` / ``METRIC:max``. ``seeds``: tuning seeds, disjoint from the
    evaluation ``seeds`` (other originals, other splits). Trials run on a validation split of
    ``validation_fraction`` of train (the test split is never read). ``sampler``: ``tpe`` or
    ``random``, seeded by ``sampler_seed``. ``max_epochs`` caps every epoch-like dimension of every
    space alike; ``max_time_fraction`` fails a trial whose unlearning took longer than that share of
    gold's training time; ``prune`` lets Optuna stop trials early on the per-epoch values a method
    logs. ``parallel``: trials of one method asked (and run) together; it shapes the search, so it
    is part of the config, not taken from the executor: serial, local and Ray choose the same
    parameters.
    """

    trials: PositiveInt = 20
    objective: str = "gold_gap"
    seeds: list[NonNegativeInt] = field(default_factory=lambda: [1000])
    sampler: Literal["tpe", "random"] = "tpe"
    sampler_seed: NonNegativeInt = 0
    validation_fraction: OpenFraction = 0.2
    max_epochs: PositiveInt | None = None
    max_time_fraction: PositiveFloat | None = None
    prune: bool = False
    parallel: PositiveInt = 2

    def check(self) -> None:
        if not self.seeds:
            raise ConfigError("give at least one tuning seed", "seeds")
        if self.objective not in NAMED_OBJECTIVES:
            metric, _, direction = self.objective.rpartition(":")
            if not metric or direction not in ("min", "max"):
                raise ConfigError(f"expected {', '.join(NAMED_OBJECTIVES)} or METRIC:min / METRIC:max, got "
                                  f"{self.objective!r}", "objective")

    @property
    def metric(self) -> tuple[str, str] | None:
        """(metric, "min"|"max") of a metric objective, else None."""
        if self.objective in NAMED_OBJECTIVES:
            return None
        metric, _, direction = self.objective.rpartition(":")
        return metric, direction

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

