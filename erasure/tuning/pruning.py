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
import logging
import math
import os
from pathlib import Path
from typing import Any, Callable, Mapping

from erasure.core.errors import ConfigError
from erasure.core.paths import NotRegularFile, open_regular
from erasure.results.targets import DEFAULT_RANKING, Ranking
from erasure.tuning.objectives import trial_value

log = logging.getLogger("erasure")


def journal_storage(path: str | Path) -> Any:
    """Optuna's journal file storage at ``path`` (safe for several processes)."""
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    return JournalStorage(JournalFileBackend(str(path)))


def journal_remedy(path: Path) -> str:
    return f"delete {Path(path).parent} to start the tuning over (its trials are lost), or restore the file"


def check_journal(path: str | Path) -> None:
    """Make a study journal that a run left behind readable, or refuse it with a :class:`ConfigError`
    that names the file and the remedy.

    A torn last line (what a kill or a full disk during an append leaves) is dropped, as
    ``results.csv.journal``'s are; any other damage (a line that is not a journal entry, binary
    data, a directory, a FIFO, a symbolic link) is refused. Absent is fine (a new study).
    """
    path = Path(path)
    if path.is_symlink():
        raise ConfigError(f"the tuning journal is a symbolic link; {journal_remedy(path)}", file=str(path))
    if not path.exists():
        return
    try:
        with open_regular(path) as f:
            data = f.read()
    except NotRegularFile as exc:
        raise ConfigError(f"the tuning journal {exc}; {journal_remedy(path)}", file=str(path)) from exc
    except OSError as exc:
        raise ConfigError(f"cannot read the tuning journal: {exc.strerror or exc}; {journal_remedy(path)}",
                          file=str(path)) from exc
    lines = data.split(b"\n")
    if lines[-1]:  # a last line without its newline: complete, or torn by an interrupted append
        if _entry(lines[-1]) is not None:
            with open(path, "ab") as f:
                f.write(b"\n")
        elif lines[-1].startswith(b'{"op_code"') or b'{"op_code"'.startswith(lines[-1]):  # Optuna's entries begin so
            log.warning("%s: dropping a torn last line (%d bytes) left by an interrupted write", path, len(lines[-1]))
            os.truncate(path, len(data) - len(lines[-1]))
        else:
            lines.append(b"")  # not a torn entry: damage, refused below
    for number, line in enumerate(lines[:-1], 1):
        if _entry(line) is None:
            raise ConfigError(f"line {number} is not an Optuna journal entry (the file is damaged); "
                              f"{journal_remedy(path)}", file=str(path))
    try:
        journal_storage(path).get_all_studies()  # replays every entry, as resuming will
    except Exception as exc:  # entries that are JSON but not a consistent history
        raise ConfigError(f"the journal cannot be replayed ({type(exc).__name__}: {exc}); {journal_remedy(path)}",
                          file=str(path)) from exc


def _entry(line: bytes) -> dict | None:
    try:
        entry = json.loads(line)
    except ValueError:  # JSONDecodeError, UnicodeDecodeError
        return None
    return entry if isinstance(entry, dict) and "op_code" in entry else None


def make_pruner(prune: bool, seeds: int) -> Any:
    """The median pruner (after 5 completed trials, not in the first epoch of any seed), or none."""
    import optuna

    if not prune:
        return optuna.pruners.NopPruner()
    return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=seeds)


def trial_link(journal: Path, study: str, trial_id: int, seed_index: int, seeds: int, gold: Mapping[str, float],
               ranking: Ranking = DEFAULT_RANKING) -> str:
    """What a job needs to report to its trial: JSON, carried by the task (the config's
    ``ranking`` too, so that the per-epoch gold gap is the objective's)."""
    return json.dumps({"journal": str(Path(journal).resolve()), "study": study, "trial_id": trial_id,
                       "seed_index": seed_index, "seeds": seeds, "gold": dict(gold),
                       "ranking": {"metrics": list(ranking.metrics) if ranking.metrics is not None else None,
                                   "weights": ranking.weights}})


def pruning_hook(link: str, objective: str, targets: Mapping[str, Any]) -> Callable[[int, dict[str, float]], None]:
    """A per-epoch log hook that reports the trial's objective and raises ``optuna.TrialPruned``
    when the pruner stops it. Step ``epoch * seeds + seed_index`` keeps the seeds' reports apart."""
    import optuna

    spec = json.loads(link)
    gold = spec["gold"]
    ranking = Ranking.from_config({"ranking": spec.get("ranking")})
    study = optuna.load_study(study_name=spec["study"], storage=journal_storage(spec["journal"]),
                              pruner=make_pruner(True, spec["seeds"]))
    trial = optuna.trial.Trial(study, spec["trial_id"])

    def report(epoch: int, metrics: dict[str, float]) -> None:
        seen = {**gold, **metrics} if objective == "gold_gap" else metrics  # a metric not logged yet counts as gold's
        value, why = trial_value(objective, seen, gold, {}, targets, ranking)
        if why or not math.isfinite(value):
            return
        trial.report(value, epoch * spec["seeds"] + spec["seed_index"])
        if trial.should_prune():
            raise optuna.TrialPruned(f"pruned at epoch {epoch}")

    return report
