"""Result writers: the tidy CSV (always written; it drives resume and the summary) and Weights & Biases.

A row is one (seed, unlearner, metric) value, or a trajectory value at ``step``.
The runner hands a writer the rows of one finished job at a time.
"""
from __future__ import annotations

import csv
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from erasure.core.errors import ConfigError
from erasure.core.registry import Component

log = logging.getLogger("erasure.results")

COLUMNS = [
    "run_id", "experiment", "config_hash", "seed", "unlearner", "parameters", "metric", "value",
    "step", "request", "status", "error", "wall_seconds", "versions", "device",
]


@dataclass
class RunInfo:
    """What writers know about the run."""

    output_dir: Path
    experiment: str
    run_id: str
    config_hash: str
    config: dict[str, Any]
    overwrite: bool = False


def job_key(row: dict[str, Any]) -> tuple[str, str, str]:
    """Identity of a (seed, unlearner) job: seed, label and parameters."""
    return str(row["seed"]), str(row["unlearner"]), str(row["parameters"])


class Writer(Component, kind="writer"):
    """Receives the rows of each finished job."""

    def open(self, run: RunInfo) -> None:
        self.run = run

    def write(self, rows: list[dict[str, Any]]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


def read_rows(path: str | Path) -> list[dict[str, str]]:
    """The complete rows of a results CSV (a torn last line from a killed run is ignored)."""
    path = Path(path)
    if not path.exists():
        return []
    text = path.read_text()
    if text and not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
    return list(csv.DictReader(text.splitlines()))


class CSVWriter(Writer):
    """``output.dir/filename``: one header, rows appended and flushed job by job.

    On a rerun, jobs without an ``error`` row are skipped, failed jobs are run
    again (their old rows removed), and a torn last line is dropped. Rows of a
    different config (another ``config_hash``) are refused unless ``--overwrite``.
    """

    def __init__(self, filename: str = "results.csv"):
        self.filename = filename

    @property
    def path(self) -> Path:
        return self.run.output_dir / self.filename

    def open(self, run: RunInfo) -> None:
        super().open(run)
        rows = [] if run.overwrite else read_rows(self.path)
        foreign = {r["config_hash"] for r in rows} - {run.config_hash}
        if foreign:
            raise ConfigError(
                f"{self.path} holds results of a different configuration (config hash {sorted(foreign)[0]}, "
                f"now {run.config_hash}); pass --overwrite to replace it or choose another output.dir",
                "output.dir",
            )
        failed = {job_key(r) for r in rows if r["status"] == "error"}
        self.finished = {job_key(r) for r in rows} - failed
        kept = [r for r in rows if job_key(r) not in failed]
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, COLUMNS)
            writer.writeheader()
            writer.writerows(kept)
        os.replace(tmp, self.path)
        self._file = open(self.path, "a", newline="")
        self._csv = csv.DictWriter(self._file, COLUMNS)

    def write(self, rows: list[dict[str, Any]]) -> None:
        self._csv.writerows([{k: _cell(row.get(k)) for k in COLUMNS} for row in rows])
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        if getattr(self, "_file", None) is not None:
            self._file.close()
            self._file = None


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float) and value != value:  # NaN
        return "nan"
    return value


class WandbWriter(Writer):
    """One Weights & Biases run per (seed, unlearner): the resolved config, final metrics in the
    run summary, trajectory rows as logged history. ``mode`` "offline" (the default) needs no
    account; the runs are written under ``output.dir/wandb`` and can be synced later. With
    ``--overwrite`` the earlier runs under ``output.dir/wandb`` are deleted first (runs already
    synced to a server stay there)."""

    def __init__(self, project: str = "erasure", mode: Literal["offline", "online", "disabled"] = "offline",
                 entity: str | None = None, group: str | None = None, tags: list[str] | None = None):
        self.project = project
        self.mode = mode
        self.entity = entity
        self.group = group
        self.tags = tags

    def open(self, run: RunInfo) -> None:
        super().open(run)
        if run.overwrite:
            import shutil

            shutil.rmtree(run.output_dir / "wandb", ignore_errors=True)
        os.environ.setdefault("WANDB_SILENT", "true")
        import wandb  # imported here: it is slow to import and optional at run time

        self._wandb = wandb

    def write(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        first = rows[0]
        run = self._wandb.init(
            project=self.project,
            entity=self.entity,
            mode=self.mode,
            group=self.group or self.run.experiment,
            tags=self.tags,
            name=f"{first['unlearner']} seed={first['seed']}",
            dir=str(self.run.output_dir),
            config={**self.run.config, "seed": first["seed"], "unlearner": first["unlearner"],
                    "unlearner_parameters": json.loads(first["parameters"] or "{}"), "run_id": self.run.run_id},
            reinit="finish_previous",
            settings=self._wandb.Settings(console="off", silent=True),
        )
        try:
            history: dict[int, dict[str, Any]] = {}
            for row in rows:
                if row.get("step") not in (None, "") and row["status"] == "ok":
                    history.setdefault(int(row["step"]), {})[row["metric"]] = row["value"]
            for step in sorted(history):
                run.log(history[step], step=step)
            for row in rows:
                if row.get("step") in (None, ""):
                    if row["status"] == "ok":
                        run.summary[row["metric"]] = row["value"]
                    else:
                        run.summary[f"error/{row['metric']}"] = row["error"]
        finally:
            run.finish(exit_code=0 if all(r["status"] == "ok" for r in rows) else 1)
