"""Tasks, their results, and the plan of a run.

A run is a list of tasks: a :class:`ReferenceTask` trains (or loads) one reference model of a
seed, an :class:`UnlearnTask` is one (seed, unlearner) job, a pure function of the resolved
config, the seed and the unlearner entry that returns rows. Tasks and results are plain data, so
they cross process and machine boundaries unchanged.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Union

from erasure.results.writers import job_key


@dataclass(frozen=True)
class ReferenceTask:
    """Train or load the ``kind`` model of ``seed``: "original", or "gold" ("gold@r": after deletion request r)."""

    seed: int
    kind: str

    def describe(self) -> str:
        return f"seed {self.seed}: {self.kind} model"


@dataclass(frozen=True)
class UnlearnTask:
    """Unlearn and evaluate: the job (``seed``, unlearner ``label``); ``parameters`` (JSON) is
    computed once, when the plan is made, and identifies the job in the results.
    ``unlearning_seed``: one of the config's ``unlearning_seeds`` (None without them). ``spec``:
    the unlearner as a JSON spec, for jobs whose unlearner is not one of the config's entries
    (tuning trials); ``label`` then only seeds the job, as the entry it tunes would be. ``trial``:
    for a tuning trial that may be pruned, where the job reports its per-epoch objective
    (:func:`erasure.tuning.pruning.trial_link`), and ``reporter`` the tuning layer's function that
    turns it into the job's per-epoch hook (``reporter(trial, objective, targets)``; a module-level
    function, so it reaches pool and Ray workers by reference)."""

    seed: int
    label: str
    parameters: str
    unlearning_seed: int | None = None
    spec: str | None = None
    trial: str | None = None
    reporter: Callable[[str, str, Mapping[str, Any]], Callable[[int, dict[str, float]], None]] | None = None

    @property
    def key(self) -> tuple[str, ...]:
        return job_key({"seed": self.seed, "unlearner": self.label, "parameters": self.parameters,
                        "unlearning_seed": self.unlearning_seed})

    def describe(self) -> str:
        extra = "" if self.unlearning_seed is None else f" (unlearning seed {self.unlearning_seed})"
        return f"seed {self.seed}: {self.label}{extra}"


Task = Union[ReferenceTask, UnlearnTask]


@dataclass
class JobResult:
    """What a task gives back: result rows, log lines about reference models, per-example
    artifacts, its wall time, and ``fatal`` when a reference model cannot be built."""

    task: Task
    rows: list[dict[str, Any]] = field(default_factory=list)
    events: list[str] = field(default_factory=list)
    artifacts: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    fatal: str | None = None


@dataclass
class Plan:
    """The tasks of a run, grouped by seed: each seed's reference tasks come before its jobs."""

    references: dict[int, list[ReferenceTask]]
    jobs: dict[int, list[UnlearnTask]]
    skipped: int = 0

    @property
    def seeds(self) -> list[int]:
        return [s for s in self.jobs if self.jobs[s]]

    def __len__(self) -> int:
        return sum(len(j) for j in self.jobs.values())


def make_plan(experiment: Any, parameters: dict[str, str], finished: set) -> Plan:
    """Every (seed, unlearner) job not ``finished``, and the reference models they need: the
    original always; gold when an unlearner or evaluator declares ``uses_gold`` (anything else
    that reads gold trains it on first use)."""
    needs_gold_everywhere = any(e.uses_gold for e in experiment.evaluators)
    references: dict[int, list[ReferenceTask]] = {}
    jobs: dict[int, list[UnlearnTask]] = {}
    skipped = 0
    for seed in experiment.seeds:
        pending = []
        for entry in experiment.unlearners:
            for unlearning_seed in experiment.unlearning_seeds or [None]:
                spec = json.dumps(entry.spec, sort_keys=True, default=str) if entry.tuned is not None else None
                task = UnlearnTask(seed, entry.label, parameters[entry.label], unlearning_seed, spec)
                if task.key in finished:
                    skipped += 1
                else:
                    pending.append(task)
        jobs[seed] = pending
        wanted = ["original"] if pending else []
        if pending and (needs_gold_everywhere or any(experiment_entry(experiment, t.label).unlearner.uses_gold for t in pending)):
            wanted += ["gold"] + [f"gold@{r}" for r in range(1, len(experiment.requests))]
        references[seed] = [ReferenceTask(seed, kind) for kind in wanted]
    return Plan(references, jobs, skipped)


def experiment_entry(experiment: Any, label: str) -> Any:
    return next(e for e in experiment.unlearners if e.label == label)
