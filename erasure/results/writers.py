"""Result writers: the tidy CSV (always written; it drives resume and the summary) and Weights & Biases.

A row is one (seed, unlearner, metric) value, or a trajectory value at ``step``.
The runner hands a writer the rows of one finished job at a time (one ``write`` call).
"""
from __future__ import annotations

import csv
import io
import json
import logging
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from erasure.core.errors import ConfigError
from erasure.core.paths import check_file_name
from erasure.core.registry import Component
from erasure.results.files import atomic_write_text, escape_cell, lock_output_dir, unescape_cell

log = logging.getLogger("erasure.results")

COLUMNS = [
    "run_id", "experiment", "config_hash", "seed", "unlearning_seed", "unlearner", "parameters", "metric", "value",
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


def job_key(row: dict[str, Any]) -> tuple[str, str, str, str]:
    """Identity of a (seed, unlearner) job: seed, label, parameters and unlearning seed (empty
    unless the config lists ``unlearning_seeds``)."""
    unlearning_seed = row.get("unlearning_seed")
    return (str(row["seed"]), str(row["unlearner"]), str(row["parameters"]),
            "" if unlearning_seed is None else str(unlearning_seed))


class Writer(Component, kind="writer"):
    """Receives the rows of each finished job."""

    def open(self, run: RunInfo) -> None:
        self.run = run

    def write(self, rows: list[dict[str, Any]]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


JOURNAL_SUFFIX = ".journal"
#: Columns without which a file is not an erasure results file.
REQUIRED = {"config_hash", "seed", "unlearner", "parameters", "metric", "status"}


def journal_path(path: str | Path) -> Path:
    """The commit journal beside a results CSV: ``results.csv.journal``."""
    path = Path(path)
    return path.with_name(path.name + JOURNAL_SUFFIX)


def read_journal(path: str | Path) -> tuple[int, Counter] | None:
    """``(end, rows per job)`` committed to the results CSV ``path``; None when it has no journal.

    Each line is one commit: ``{"end": <CSV size in bytes after it>, "jobs": [[seed, unlearner,
    parameters, unlearning seed, rows], ...]}``. Reading stops at the first line that is torn or not valid.
    """
    journal = journal_path(path)
    if not journal.exists():
        return None
    end, counts = 0, Counter()
    with open(journal, "rb") as f:
        for line in f:
            try:
                commit = json.loads(line)
                if not line.endswith(b"\n"):
                    raise ValueError("torn line")
                jobs = [(tuple(str(v) for v in job[:-1]) + ("",) * (5 - len(job)), int(job[-1]))
                        for job in commit["jobs"]]
                end = int(commit["end"])
            except (ValueError, KeyError, TypeError, IndexError):
                break
            for key, n in jobs:
                counts[key] += n
    return end, counts


def read_rows(path: str | Path) -> list[dict[str, str]]:
    """The committed rows of a results CSV.

    With a journal (see :func:`read_journal`), only the bytes up to the last commit are read and
    only jobs whose rows are all there are kept: a write cut short (a full disk, a signal, a kill)
    leaves no partial job. Without one (a file of an older version), a torn last line is dropped.
    Cells are read with the csv module (labels may hold newlines or U+2028) and unescaped.
    """
    path = Path(path)
    if not path.exists():
        return []
    data = path.read_bytes()
    journal = read_journal(path)
    complete = journal is not None and len(data) >= journal[0]
    if complete:
        data = data[: journal[0]]
    text = data.decode("utf-8", errors="replace")
    records = list(csv.reader(io.StringIO(text, newline="")))
    if not complete and text and not text.endswith("\n"):
        records = records[:-1]
    if not records:
        return []
    header = records[0]
    rows = [dict(zip(header, map(unescape_cell, r))) for r in records[1:] if len(r) == len(header)]
    if journal is not None:
        found = Counter(job_key(r) for r in rows)
        rows = [r for r in rows if found[job_key(r)] == journal[1][job_key(r)]]
    return rows


class CSVWriter(Writer):
    """``output.dir/filename``: one header, then the rows of each job, committed as a unit.

    Each :meth:`write` appends the job's rows (fsync), then records the new file size and the
    job's row count in ``filename.journal`` (fsync): a job is finished only once its commit is
    there, so rows of a write cut short are dropped on the next open and the job runs again.
    On a rerun, jobs without an ``error`` row are skipped and failed jobs run again (their old
    rows removed). Rows of a different config (another ``config_hash``) are refused unless
    ``--overwrite``. :meth:`open` takes the output directory's lock (:func:`~erasure.results.files.lock_output_dir`) and
    :meth:`close` releases it: a second run into the same directory is refused meanwhile.
    Text cells that a spreadsheet would run as a formula are written with a leading ``'``
    (:func:`~erasure.results.files.escape_cell`); :func:`read_rows` removes it.
    """

    def __init__(self, filename: str = "results.csv"):
        self.filename = filename

    def check(self) -> None:
        check_file_name(self.filename, "filename")

    @property
    def path(self) -> Path:
        return self.run.output_dir / self.filename

    def open(self, run: RunInfo) -> None:
        super().open(run)
        self._lock = lock_output_dir(run.output_dir)
        try:
            self._check_header()
            rows = [] if run.overwrite else read_rows(self.path)
            foreign = {r["config_hash"] for r in rows} - {run.config_hash}
            if foreign:
                raise ConfigError(
                    f"{self.path} holds results of a different configuration (config hash {sorted(foreign)[0]}, "
                    f"now {run.config_hash}); pass --overwrite to replace it or choose another output.dir",
                    "output.dir",
                )
            failed = {job_key(r) for r in rows if r["status"] == "error"}
            kept = [r for r in rows if job_key(r) not in failed]
            self.finished = {job_key(r) for r in kept}
            text = _render(kept, header=True)
            atomic_write_text(self.path, text)
            atomic_write_text(journal_path(self.path), _commit_line(kept, len(text.encode())))
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | _NOFOLLOW)
            self._journal_fd = os.open(journal_path(self.path), os.O_WRONLY | os.O_APPEND | _NOFOLLOW)
            self._end, self._journal_end = os.fstat(self._fd).st_size, os.fstat(self._journal_fd).st_size
        except BaseException:
            self._release()
            raise

    def _check_header(self) -> None:
        """Refuse to replace a file that is not a results file (even with ``--overwrite``)."""
        if not self.path.exists() or self.path.stat().st_size == 0:
            return
        with open(self.path, newline="", encoding="utf-8", errors="replace") as f:
            header = next(csv.reader(f), [])
        if not REQUIRED <= set(header):
            raise ConfigError(f"{self.path} exists and is not an erasure results file; move it away "
                              "or choose another output.dir or file name", "output.dir")

    def write(self, rows: list[dict[str, Any]]) -> None:
        """Append ``rows`` (one job's) and commit them; on any failure the file is cut back to the last commit."""
        if not rows:
            return
        data = _render(rows).encode()
        line = _commit_line(rows, self._end + len(data)).encode()
        try:
            _write_all(self._fd, data)
            os.fsync(self._fd)
            _write_all(self._journal_fd, line)
            os.fsync(self._journal_fd)
        except BaseException:
            for fd, size in ((self._fd, self._end), (self._journal_fd, self._journal_end)):
                try:
                    os.ftruncate(fd, size)
                except OSError:
                    pass  # the next open drops what the journal does not cover
            raise
        self._end += len(data)
        self._journal_end += len(line)

    def close(self) -> None:
        self._release()

    def _release(self) -> None:
        for name in ("_fd", "_journal_fd"):
            fd = getattr(self, name, None)
            if fd is not None:
                os.close(fd)
                setattr(self, name, None)
        held = getattr(self, "_lock", None)
        if held is not None:
            held.lock.release()
            self._lock = None


_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def _render(rows: list[dict[str, Any]], header: bool = False) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, COLUMNS, extrasaction="ignore")
    if header:
        writer.writeheader()
    writer.writerows([{k: escape_cell(_cell(row.get(k))) for k in COLUMNS} for row in rows])
    return out.getvalue()


def _commit_line(rows: list[dict[str, Any]], end: int) -> str:
    counts = Counter(job_key(r) for r in rows)
    return json.dumps({"end": end, "jobs": [[*key, n] for key, n in counts.items()]}) + "\n"


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


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
    synced to a server stay there). The installed packages are recorded in the first run of each
    invocation only, and system metrics are not sampled: listing the packages took a third of
    a second per run, the driver's time between jobs."""

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
        self._runs = 0

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
            settings=self._wandb.Settings(console="off", silent=True, x_disable_stats=True,
                                          x_save_requirements=self._runs == 0),
        )
        self._runs += 1
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
