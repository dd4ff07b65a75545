"""JSONLinesWriter: the results as JSON Lines (``results.jsonl`` beside the CSV), one object per row.

The CSV stays the record that drives resume; the JSON Lines file mirrors it with typed values
(``seed`` and ``step`` integers, ``value`` and ``wall_seconds`` numbers, null where empty). When
a run opens, the file is rebuilt from the CSV's complete rows, so a line torn by a kill, or the
rows of a job that reached the CSV but not this file, are repaired before anything is appended.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from erasure.results.files import atomic_write_text
from erasure.results.writers import COLUMNS, RunInfo, Writer, job_key, read_rows

INTEGERS = ("seed", "step")
NUMBERS = ("value", "wall_seconds")


def typed_row(row: dict[str, Any]) -> dict[str, Any]:
    """A result row with typed cells, from a CSV row (strings) or a row as the runner makes it:
    integers for ``seed`` and ``step``, floats for ``value`` and ``wall_seconds`` (None when
    empty), strings otherwise."""
    out: dict[str, Any] = {}
    for column in COLUMNS:
        cell = row.get(column)
        if column in INTEGERS or column in NUMBERS:
            cell = None if cell is None or cell == "" else (int(cell) if column in INTEGERS else float(cell))
        else:
            cell = "" if cell is None else str(cell)
        out[column] = cell
    return out


def json_line(row: dict[str, Any]) -> str:
    """One row as a line of valid JSON; NaN and ±inf, which JSON cannot hold, are written as null
    (the row's ``status`` and the CSV keep what they were)."""
    cells = {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in typed_row(row).items()}
    return json.dumps(cells, allow_nan=False) + "\n"


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a JSON Lines results file (a torn last line is ignored)."""
    path = Path(path)
    if not path.exists():
        return []
    text = path.read_text()
    return [json.loads(line) for line in text[: text.rfind("\n") + 1].splitlines() if line.strip()]


def csv_path(run: RunInfo) -> Path:
    """The run's results CSV: the listed CSVWriter's ``filename``, else ``results.csv``."""
    for spec in run.config.get("output", {}).get("writers", []):
        if str(spec.get("class", "")).rsplit(".", 1)[-1] == "CSVWriter":
            return run.output_dir / spec.get("parameters", {}).get("filename", "results.csv")
    return run.output_dir / "results.csv"


def kept_rows(run: RunInfo) -> list[dict[str, str]]:
    """The CSV rows a rerun keeps (all of them but failed jobs', which run again; none with ``overwrite``)."""
    if run.overwrite:
        return []
    rows = read_rows(csv_path(run))
    failed = {job_key(r) for r in rows if r["status"] == "error"}
    return [r for r in rows if job_key(r) not in failed]


def replace_file(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically, never through a symbolic link (:func:`atomic_write_text`)."""
    atomic_write_text(path, text)


class JSONLinesWriter(Writer):
    """``output.dir/filename`` (default ``results.jsonl``): the CSV's rows as JSON Lines, one valid
    JSON object per row, appended and flushed job by job (see the module docstring)."""

    def __init__(self, filename: str = "results.jsonl"):
        self.filename = filename

    @property
    def path(self) -> Path:
        return self.run.output_dir / self.filename

    def open(self, run: RunInfo) -> None:
        super().open(run)
        replace_file(self.path, "".join(json_line(r) for r in kept_rows(run)))
        self._file = open(self.path, "a")

    def write(self, rows: list[dict[str, Any]]) -> None:
        self._file.write("".join(json_line(r) for r in rows))
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        if getattr(self, "_file", None) is not None:
            self._file.close()
            self._file = None
