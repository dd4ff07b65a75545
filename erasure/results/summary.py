"""Summaries over seeds: mean ± std per (unlearner, metric), as a table and ``summary.csv``."""
from __future__ import annotations

import csv
import math
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable

import numpy as np

SUMMARY_COLUMNS = ["unlearner", "metric", "mean", "std", "n"]


def final_values(rows: Iterable[dict[str, Any]]) -> dict[tuple[str, str], list[float]]:
    """Values of final (non-trajectory) ``ok`` rows grouped by (unlearner, metric), in row order."""
    grouped: dict[tuple[str, str], list[float]] = defaultdict(list)
    for row in rows:
        if row.get("status") != "ok" or row.get("step") not in (None, ""):
            continue
        value = float(row["value"])
        if math.isfinite(value):
            grouped[(row["unlearner"], row["metric"])].append(value)
    return grouped


def summarize(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One record per (unlearner, metric): mean, sample standard deviation and n over seeds."""
    out = []
    for (unlearner, metric), values in final_values(rows).items():
        arr = np.asarray(values)
        std = float(arr.std(ddof=1)) if len(arr) > 1 else float("nan")
        out.append({"unlearner": unlearner, "metric": metric, "mean": float(arr.mean()), "std": std, "n": len(arr)})
    return out


def write_summary(records: list[dict[str, Any]], path: str | Path) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, SUMMARY_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(records)


def format_table(records: list[dict[str, Any]], metrics: list[str] | None = None) -> str:
    """A text table: one row per unlearner, one column per metric, cells "mean ± std"."""
    if not records:
        return "(no results)"
    unlearners = list(dict.fromkeys(r["unlearner"] for r in records))
    metrics = metrics or list(dict.fromkeys(r["metric"] for r in records))
    cells = {(r["unlearner"], r["metric"]): r for r in records}

    def cell(u: str, m: str) -> str:
        r = cells.get((u, m))
        if r is None:
            return "-"
        return f"{r['mean']:.4g}" if math.isnan(r["std"]) else f"{r['mean']:.4g} ± {r['std']:.2g}"

    header = ["unlearner", *metrics]
    body = [[u, *(cell(u, m) for m in metrics)] for u in unlearners]
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in [header, *body]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
