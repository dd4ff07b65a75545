"""A results directory: read it the way the run that wrote it summarises it, and write its summary.

A results directory holds ``results.csv``, ``config.resolved.json`` (the config of the latest
run) and ``targets.json`` (the metric targets that run used). :func:`load_results` keeps the rows
of the jobs of that config, exactly as the run's own end-of-run table does: rows of an earlier
run whose label now has other parameters (or whose seed or label is no longer in the config) are
left out and counted. Without ``config.resolved.json`` nothing is left out, but a label that
appears with several parameter sets becomes one row per set, named by the differing parameters
(``NegGrad [lr=0.1]``), so they are never averaged together.
"""
from __future__ import annotations

import csv
import io
import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from erasure.results.files import atomic_write_bytes, open_append
from erasure.results.summary import IDENTITY, REFERENCE, format_wide, summarize, write_summary
from erasure.results.targets import (TARGETS_FILE, Ranking, Target, read_targets, registered_targets, targets_of,
                                     write_targets)
from erasure.results.writers import read_rows

RESOLVED_CONFIG = "config.resolved.json"
ARTIFACT_INDEX = "artifacts/index.csv"
ARTIFACT_COLUMNS = ["seed", "unlearner", "name", "path"]


@dataclass
class Results:
    """The current rows of one results file and what is needed to summarise them."""

    path: Path  # the results CSV
    name: str  # the experiment's name (or the directory's)
    rows: list[dict[str, str]]
    targets: dict[str, Target]
    reference: str = REFERENCE
    identity: str = IDENTITY
    config: dict[str, Any] | None = None
    excluded: int = 0  # rows of earlier jobs left out
    relabelled: list[str] = field(default_factory=list)  # labels split by parameters
    ranking: Ranking = field(default_factory=Ranking)  # the config's "ranking" (metrics and weights)

    @property
    def directory(self) -> Path:
        return self.path.parent


def results_file(path: str | Path) -> Path:
    """``path`` itself, or ``path/results.csv`` for a directory."""
    path = Path(path)
    return path / "results.csv" if path.is_dir() else path


def _parameters(text: str) -> Any:
    try:
        return json.loads(text or "{}")
    except ValueError:
        return text


def _label_of_class(config: dict[str, Any], cls: str, default: str) -> str:
    for entry in config.get("unlearners", []):
        if str(entry.get("class", "")).rsplit(".", 1)[-1] == cls:
            return entry.get("label") or cls
    return default


def current_rows(rows: list[dict[str, str]], config: dict[str, Any]) -> list[dict[str, str]]:
    """The rows of the jobs of ``config`` (a resolved config): seed, label and parameters all match."""
    seeds = {str(s) for s in config.get("seeds", [])}
    params = {e.get("label") or str(e["class"]).rsplit(".", 1)[-1]: e.get("parameters", {})
              for e in config.get("unlearners", [])}
    return [r for r in rows if str(r.get("seed")) in seeds and r.get("unlearner") in params
            and _parameters(r.get("parameters", "")) == params[r["unlearner"]]]


def split_by_parameters(rows: list[dict[str, str]]) -> tuple[list[dict[str, str]], list[str]]:
    """Rows whose label comes with several parameter sets get the label ``label [k=v, ...]`` (the
    parameters that differ); returns the rows and the labels that were split."""
    sets: dict[str, dict[str, Any]] = defaultdict(dict)
    for r in rows:
        sets[r["unlearner"]].setdefault(r.get("parameters", ""), _parameters(r.get("parameters", "")))
    split = [label for label, s in sets.items() if len(s) > 1]
    if not split:
        return rows, []
    names: dict[tuple[str, str], str] = {}
    for label in split:
        variants = list(sets[label].items())
        dicts = [v if isinstance(v, dict) else {"parameters": v} for _, v in variants]
        keys = sorted({k for d in dicts for k in d if len({json.dumps(x.get(k), sort_keys=True) for x in dicts}) > 1})
        for (text, _), d in zip(variants, dicts):
            shown = ", ".join(f"{k}={json.dumps(d.get(k))}" for k in keys)
            names[(label, text)] = f"{label} [{shown}]"
    out = [dict(r, unlearner=names[(r["unlearner"], r.get("parameters", ""))]) if r["unlearner"] in split else r
           for r in rows]
    return out, split


def load_results(path: str | Path, reference: str | None = None, identity: str | None = None,
                 config_hash: str | None = None) -> Results:
    """The current rows of a results file or directory, its targets and its reference labels.

    Targets come from ``targets.json`` beside the file, else from the registered evaluators. The
    references are the labels of the GoldModel and Identity entries of ``config.resolved.json``
    (default "GoldModel" and "Identity") unless given.
    """
    file = results_file(path)
    if not file.is_file():
        raise FileNotFoundError(f"no results file at {path} (expected a results CSV or a directory holding results.csv)")
    rows = read_rows(file)
    if config_hash:
        rows = [r for r in rows if r.get("config_hash") == config_hash]
    directory = file.parent
    config = None
    if (directory / RESOLVED_CONFIG).is_file():
        config = json.loads((directory / RESOLVED_CONFIG).read_text())
    targets = read_targets(directory / TARGETS_FILE) if (directory / TARGETS_FILE).is_file() else registered_targets()
    results = Results(file, (config or {}).get("name") or next((r["experiment"] for r in rows if r.get("experiment")),
                                                                 directory.name), rows, targets)
    if config is not None:
        results.config = config
        results.ranking = Ranking.from_config(config)
        results.rows = current_rows(rows, config)
        results.excluded = len(rows) - len(results.rows)
        results.reference = _label_of_class(config, "GoldModel", REFERENCE)
        results.identity = _label_of_class(config, "Identity", IDENTITY)
    else:
        results.rows, results.relabelled = split_by_parameters(rows)
    results.reference = reference or results.reference
    results.identity = identity or results.identity
    return results


def summarize_run(rows: list[dict[str, Any]], output_dir: str | Path, config: dict[str, Any],
                  evaluators: list[Any]) -> tuple[list[dict[str, Any]], str]:
    """The end of a run: writes ``targets.json`` (the evaluators' targets) and ``summary.csv`` into
    ``output_dir``; returns the summary records and the text to print (the table and where the
    rest is). ``rows`` are the current config's rows; ``config`` is the resolved config."""
    output_dir = Path(output_dir)
    targets = targets_of(evaluators)
    write_targets(targets, output_dir / TARGETS_FILE)
    ranking = Ranking.from_config(config)
    records = summarize(rows, _label_of_class(config, "GoldModel", REFERENCE), targets,
                        _label_of_class(config, "Identity", IDENTITY), ranking)
    write_summary(records, output_dir / "summary.csv")
    text = (f"{format_wide(records, targets, ranking=ranking)}\n\nEvery metric with intervals, paired differences and the self-check: "
            f"{output_dir / 'summary.csv'}\nReport: python -m erasure.report {output_dir} -o {output_dir / 'report.html'}")
    return records, text


# ------------------------------------------------------------------------- artifacts
@dataclass(frozen=True)
class Artifact:
    """One per-example array of a job: ``<output_dir>/artifacts/seed<seed>/<job-slug>/<name>.npy``."""

    seed: str
    unlearner: str
    name: str
    path: Path

    def load(self):
        import numpy as np

        return np.load(self.path, allow_pickle=False)


def job_slug(label: str) -> str:
    """A directory name for an unlearner label: runs of other characters become "_"."""
    return re.sub(r"[^A-Za-z0-9._=-]+", "_", label).strip("_") or "job"


def read_artifacts(output_dir: str | Path) -> list[Artifact]:
    """The artifacts listed in ``<output_dir>/artifacts/index.csv`` (columns seed, unlearner, name,
    path; a relative path is relative to ``output_dir``); missing files are skipped."""
    output_dir = Path(output_dir)
    index = output_dir / ARTIFACT_INDEX
    if not index.is_file():
        return []
    out = []
    for row in read_rows(index):
        path = Path(row["path"])
        path = path if path.is_absolute() else output_dir / path
        if path.is_file():
            out.append(Artifact(str(row["seed"]), row["unlearner"], row["name"], path))
    return out


def save_artifact(output_dir: str | Path, seed: int | str, unlearner: str, name: str, values: Any) -> Path:
    """Write one per-example array as ``.npy`` and append it to the index (the format
    :func:`read_artifacts` reads)."""
    import numpy as np

    output_dir = Path(output_dir)
    relative = Path("artifacts") / f"seed{seed}" / job_slug(unlearner) / f"{job_slug(name)}.npy"
    (output_dir / relative).parent.mkdir(parents=True, exist_ok=True)
    array = io.BytesIO()
    np.save(array, np.asarray(values), allow_pickle=False)
    atomic_write_bytes(output_dir / relative, array.getvalue())  # never through a symbolic link
    index = output_dir / ARTIFACT_INDEX
    new = not index.exists()
    with open_append(index) as f:
        writer = csv.DictWriter(f, ARTIFACT_COLUMNS)
        if new:
            writer.writeheader()
        writer.writerow({"seed": seed, "unlearner": unlearner, "name": name, "path": relative.as_posix()})
    return output_dir / relative
