"""Statistics over seeds: per (unlearner, metric) mean, standard deviation, 95% confidence interval
(Student's t) and n, plus the paired difference to the reference unlearner (GoldModel) with its
interval; as a terminal table and ``summary.csv``. ``python -m erasure.summarize RESULTS.csv``
rebuilds them from any results file.
"""
from __future__ import annotations

import csv
import io
import math
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from erasure.results.files import atomic_write_text, escape_cell

REFERENCE = "GoldModel"
SUMMARY_COLUMNS = ["unlearner", "metric", "mean", "std", "ci95_low", "ci95_high", "n",
                   "diff_vs_reference", "diff_ci95_low", "diff_ci95_high", "n_paired", "reference"]


def mean_ci(values: Iterable[float], confidence: float = 0.95) -> tuple[float, float, float, float, int]:
    """(mean, sample std, CI low, CI high, n): the t-interval mean ± t_{(1+c)/2, n−1}·std/√n (NaN for n < 2)."""
    from scipy import stats

    arr = np.asarray(list(values), float)
    n = len(arr)
    if n == 0:
        return (math.nan,) * 4 + (0,)
    mean = float(arr.mean())
    if n < 2:
        return mean, math.nan, math.nan, math.nan, n
    std = float(arr.std(ddof=1))
    half = float(stats.t.ppf((1 + confidence) / 2, n - 1)) * std / math.sqrt(n)
    return mean, std, mean - half, mean + half, n


def final_values(rows: Iterable[dict[str, Any]]) -> dict[tuple[str, str], dict[Any, float]]:
    """Final (non-trajectory) ``ok`` values by (unlearner, metric) and seed; a later row for the same
    (config, seed, unlearner, metric), e.g. from a rerun, replaces an earlier one."""
    grouped: dict[tuple[str, str], dict[Any, float]] = defaultdict(dict)
    for row in rows:
        if row.get("status") != "ok" or row.get("step") not in (None, ""):
            continue
        try:
            value = float(row["value"])
        except (TypeError, ValueError):
            continue
        key = (row["unlearner"], row["metric"])
        seed = (row.get("config_hash", ""), str(row.get("seed")))
        if math.isfinite(value):
            grouped[key][seed] = value
        else:
            grouped[key].pop(seed, None)
    return grouped


def summarize(rows: Iterable[dict[str, Any]], reference: str = REFERENCE) -> list[dict[str, Any]]:
    """One record per (unlearner, metric); see :data:`SUMMARY_COLUMNS`. The paired difference
    (this unlearner − ``reference``) is taken seed by seed over the seeds both have."""
    grouped = final_values(rows)
    out = []
    for (unlearner, metric), by_seed in grouped.items():
        if not by_seed:  # only non-finite values (e.g. a ratio with a zero denominator)
            continue
        mean, std, low, high, n = mean_ci(by_seed.values())
        record = {"unlearner": unlearner, "metric": metric, "mean": mean, "std": std,
                  "ci95_low": low, "ci95_high": high, "n": n, "reference": reference,
                  "diff_vs_reference": math.nan, "diff_ci95_low": math.nan, "diff_ci95_high": math.nan, "n_paired": 0}
        ref = grouped.get((reference, metric))
        if ref is not None and unlearner != reference:
            shared = [s for s in by_seed if s in ref]
            if shared:
                d_mean, _, d_low, d_high, d_n = mean_ci(by_seed[s] - ref[s] for s in shared)
                record.update(diff_vs_reference=d_mean, diff_ci95_low=d_low, diff_ci95_high=d_high, n_paired=d_n)
        out.append(record)
    return out


def write_summary(records: list[dict[str, Any]], path: str | Path) -> None:
    """``summary.csv``, written atomically; text cells escaped as in the results CSV."""
    out = io.StringIO()
    writer = csv.DictWriter(out, SUMMARY_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows([{k: escape_cell(v) for k, v in r.items()} for r in records])
    atomic_write_text(path, out.getvalue())


def _num(x: float) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.4g}"


def _interval(low: float, high: float) -> str:
    return "-" if math.isnan(low) else f"[{low:.4g}, {high:.4g}]"


def format_table(records: list[dict[str, Any]], metrics: list[str] | None = None) -> str:
    """A text table, one block per metric and one line per unlearner: mean, std, 95% CI, n and the
    paired difference to the reference with its 95% CI."""
    if not records:
        return "(no results)"
    metrics = metrics or list(dict.fromkeys(r["metric"] for r in records))
    by_metric: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        by_metric[r["metric"]].append(r)
    reference = records[0].get("reference", REFERENCE)
    header = ["metric", "unlearner", "mean", "std", "95% CI", "n", f"Δ vs {reference}", "95% CI of Δ"]
    body = []
    for m in metrics:
        for i, r in enumerate(by_metric.get(m, [])):
            diff = r.get("diff_vs_reference", math.nan)
            body.append([m if i == 0 else "", r["unlearner"], _num(r["mean"]), _num(r["std"]),
                         _interval(r["ci95_low"], r["ci95_high"]), str(r["n"]),
                         _num(diff), _interval(r.get("diff_ci95_low", math.nan), r.get("diff_ci95_high", math.nan))])
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in [header, *body]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def format_wide(records: list[dict[str, Any]], max_width: int = 110) -> str:
    """The end-of-run table: one row per unlearner, one column per metric, cells "mean ± std";
    columns wrap into blocks that fit ``max_width`` characters."""
    if not records:
        return "(no results)"
    unlearners = list(dict.fromkeys(r["unlearner"] for r in records))
    metrics = list(dict.fromkeys(r["metric"] for r in records))
    cells = {(r["unlearner"], r["metric"]): r for r in records}

    def cell(u: str, m: str) -> str:
        r = cells.get((u, m))
        if r is None:
            return "-"
        return _num(r["mean"]) if math.isnan(r["std"]) else f"{_num(r['mean'])} ± {r['std']:.2g}"

    name_width = max(len("unlearner"), *(len(u) for u in unlearners))
    columns = [(m, [cell(u, m) for u in unlearners]) for m in metrics]
    blocks, block, width = [], [], name_width
    for m, values in columns:
        w = max(len(m), *(len(v) for v in values)) + 2
        if block and width + w > max_width:
            blocks.append(block)
            block, width = [], name_width
        block.append((m, values, w))
        width += w
    blocks.append(block)
    out = []
    for block in blocks:
        out.append("unlearner".ljust(name_width) + "".join(f"  {m}".ljust(w) for m, _, w in block).rstrip())
        out.append("-" * name_width + "".join("  " + "-" * (w - 2) for _, _, w in block))
        for i, u in enumerate(unlearners):
            out.append(u.ljust(name_width) + "".join(f"  {values[i]}".ljust(w) for _, values, w in block).rstrip())
        out.append("")
    return "\n".join(out).rstrip()
