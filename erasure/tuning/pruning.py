"""Optuna pruning of tuning trials, wherever their jobs run.

The driver asks Optuna for a trial and gives its jobs a *trial link* (the study's journal file,
the study and trial ids, the job's tuning seed); the worker that runs a job, in this process, a
pool process or a Ray task, opens the trial from the journal, reports the objective after every
epoch the method logs, and stops the job when the pruner says so. Optuna's median pruner
compares only with *completed* trials, and the driver completes a batch of trials only after all
of its jobs have returned, so whether a trial is pruned does not depend on which job of a batch
runs first, nor on the executor or its workers.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Callable, Mapping

from erasure.tuning.objectives import trial_value


def journal_storage(path: str | Path) -> Any:
    """Optuna's journal file storage at ``path`` (safe for several processes)."""
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    return JournalStorage(JournalFileBackend(str(path)))


def make_pruner(prune: bool, seeds: int) -> Any:
    """The median pruner (after 5 completed trials, not in the first epoch of any seed), or none."""
    import optuna

    if not prune:
        return optuna.pruners.NopPruner()
    return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=seeds)


def trial_link(journal: Path, study: str, trial_id: int, seed_index: int, seeds: int, gold: Mapping[str, float]) -> str:
    """What a job needs to report to its trial: JSON, carried by the task."""
    return json.dumps({"journal": str(Path(journal).resolve()), "study": study, "trial_id": trial_id,
                       "seed_index": seed_index, "seeds": seeds, "gold": dict(gold)})


def pruning_hook(link: str, objective: str, targets: Mapping[str, Any]) -> Callable[[int, dict[str, float]], None]:
    """A per-epoch log hook that reports the trial's objective and raises ``optuna.TrialPruned``
    when the pruner stops it. Step ``epoch * seeds + seed_index`` keeps the seeds' reports apart."""
    import optuna

    spec = json.loads(link)
    gold = spec["gold"]
    study = optuna.load_study(study_name=spec["study"], storage=journal_storage(spec["journal"]),
                              pruner=make_pruner(True, spec["seeds"]))
    trial = optuna.trial.Trial(study, spec["trial_id"])

    def report(epoch: int, metrics: dict[str, float]) -> None:
        seen = {**gold, **metrics} if objective == "gold_gap" else metrics  # a metric not logged yet counts as gold's
        value, why = trial_value(objective, seen, gold, {}, targets)
        if why or not math.isfinite(value):
            return
        trial.report(value, epoch * spec["seeds"] + spec["seed_index"])
        if trial.should_prune():
            raise optuna.TrialPruned(f"pruned at epoch {epoch}")

    return report
