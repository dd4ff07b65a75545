"""Top-level sweeps: one sub-experiment per combination of config values.

``"sweep": {"data.forget.parameters.fraction": [0.01, 0.05, 0.1]}`` runs the experiment once per
value, each in its own output subdirectory (``<output.dir>/data.forget.parameters.fraction=0.05``),
and writes ``sweep_summary.csv`` beside them: every sub-experiment's summary records with one
column per swept path (forget-set-size curves, learning-rate scans of a whole benchmark, ...).
"""
from __future__ import annotations

import copy
import csv
import io
import itertools
import json
import re
from pathlib import Path
from typing import Any, Callable

from erasure.core.config import apply_override
from erasure.execution.experiment import Experiment, build_experiment
from erasure.core.errors import ConfigError, join_path
from erasure.results.files import atomic_write_text
from erasure.results.summary import GOLD_GAP, SUMMARY_COLUMNS

SUMMARY_FILE = "sweep_summary.csv"


def _value_text(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else value if isinstance(value, str) else json.dumps(value)


def expand(experiment: Experiment) -> list[tuple[dict[str, Any], Experiment]]:
    """``(swept values, sub-experiment)`` for every combination, each built and checked like a config."""
    sweep = experiment.config["sweep"]
    if not isinstance(sweep, dict) or not sweep:
        raise ConfigError("expected an object of config paths to value lists", "sweep", experiment.file)
    base = {k: v for k, v in experiment.config.items() if k != "sweep"}
    out = []
    for combo in itertools.product(*sweep.values()):
        values = dict(zip(sweep, combo))
        config = copy.deepcopy(base)
        for path, value in values.items():
            apply_override(config, f"{path}={json.dumps(value)}")
        folder = ",".join(f"{path}={_value_text(v)}" for path, v in values.items())
        config.setdefault("output", {})["dir"] = str(experiment.output_dir / re.sub(r"[^A-Za-z0-9_.,=+\[\]-]", "_", folder))
        try:
            sub = build_experiment(config)
        except ConfigError as exc:
            index = sweep[next(iter(values))].index(next(iter(values.values())))
            exc.message = f"{exc.message} (in the sweep's sub-experiment {folder})"
            exc.path = exc.path or join_path(join_path("sweep", next(iter(values))), index)
            raise exc.in_file(experiment.file)
        sub.file = experiment.file
        out.append((values, sub))
    return out


def run_sweep(experiment: Experiment, run: Callable[[Experiment], Any], out: Callable[[str], None] = print) -> int:
    """Run every sub-experiment with ``run`` (which returns a RunReport) and write the combined summary."""
    subs = expand(experiment)
    paths = list(experiment.config["sweep"])
    records, exit_code = [], 0
    for values, sub in subs:
        out(f"\n=== sweep: {', '.join(f'{p} = {_value_text(v)}' for p, v in values.items())} → {sub.output_dir}")
        report = run(sub)
        exit_code = max(exit_code, report.exit_code)
        records += [{**{p: json.dumps(v) for p, v in values.items()}, **r} for r in report.summary]
    experiment.output_dir.mkdir(parents=True, exist_ok=True)
    text = io.StringIO()
    writer = csv.DictWriter(text, [*paths, *SUMMARY_COLUMNS], extrasaction="ignore")
    writer.writeheader()
    writer.writerows(records)
    atomic_write_text(experiment.output_dir / SUMMARY_FILE, text.getvalue())
    out(f"\n{gap_table(records, paths)}\n\nSweep summary: {experiment.output_dir / SUMMARY_FILE}")
    return exit_code


def gap_table(records: list[dict[str, Any]], paths: list[str]) -> str:
    """Gold gap per unlearner (rows) and swept value (columns)."""
    gaps = [r for r in records if r["metric"] == GOLD_GAP]
    columns = list(dict.fromkeys(",".join(r[p] for p in paths) for r in gaps))
    labels = list(dict.fromkeys(r["unlearner"] for r in gaps))
    cell = {(r["unlearner"], ",".join(r[p] for p in paths)): r["mean"] for r in gaps}
    width = max([len("unlearner"), *map(len, labels)])
    lines = [f"gold gap by {', '.join(paths)}", "unlearner".ljust(width) + "".join(f"  {c:>10}" for c in columns)]
    for label in labels:
        lines.append(label.ljust(width) + "".join(
            f"  {cell[(label, c)]:>10.3f}" if (label, c) in cell else f"  {'-':>10}" for c in columns))
    return "\n".join(lines)


def summary_path(output_dir: str | Path) -> Path:
    return Path(output_dir) / SUMMARY_FILE
