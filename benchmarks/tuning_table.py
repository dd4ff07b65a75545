"""docs/tuning.md's table of the equal-budget tuning benchmark, regenerated.

    python benchmarks/tuning_table.py [--config configs/benchmarks/digits_class_forget_tuned.jsonc]
        [--set PATH=VALUE ...] [--output-root DIR | --from DIR]

Runs the config twice: with ``tuning.trials=1`` (trial 0 only: every method's defaults, "before")
and as it is ("after"), then prints one row per unlearner: forget_test, retain_test and the gold
gap (means over the evaluation seeds), before → after, and the parameters the tuning chose that
differ from the defaults (``tuning/best.json``), in the config's order. ``--from DIR`` prints the
table of an earlier ``--output-root`` without running.
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from doc_tables import run  # noqa: E402

COLUMNS = ("accuracy_forget_test", "accuracy_retain_test", "gold_gap")
REFERENCES = ("GoldModel", "Identity")


def means(directory: Path) -> dict[tuple[str, str], float]:
    """(unlearner, metric) -> mean over seeds, from ``summary.csv`` (gold_gap included)."""
    with open(directory / "summary.csv", newline="") as f:
        return {(r["unlearner"], r["metric"]): float(r["mean"]) for r in csv.DictReader(f) if r["metric"] in COLUMNS}


def number(value: float) -> str:
    return "-" if np.isnan(value) else ("0" if value == 0 else f"{value:.3f}")


def chosen(entry: dict, baseline: dict) -> str:
    """The tuned parameters that differ from trial 0's (the defaults with the entry's own
    parameters), e.g. "epochs 5, lr 0.00087"."""
    changed = [f"{k} {v:.2g}" if isinstance(v, float) else f"{k} {v}" for k, v in entry["parameters"].items()
               if k in baseline and v != baseline[k]]
    return ", ".join(changed) or "default"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/benchmarks/digits_class_forget_tuned.jsonc")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="PATH=VALUE")
    parser.add_argument("--output-root", help="where the two runs write (default: a fresh temporary directory)")
    parser.add_argument("--from", dest="source", help="an earlier --output-root to read instead of running")
    args = parser.parse_args(argv)
    root = Path(args.source or args.output_root or tempfile.mkdtemp(prefix="tuning-table-"))
    if not args.source:
        run(args.config, args.overrides + ["tuning.trials=1"], root / "before")
        run(args.config, args.overrides, root / "after")
    before, after = means(root / "before"), means(root / "after")
    best = json.loads((root / "after" / "tuning" / "best.json").read_text())
    defaults = json.loads((root / "before" / "tuning" / "best.json").read_text())  # trial 0 of each method
    resolved = json.loads((root / "after" / "config.resolved.json").read_text())
    classes = {u.get("label", u["class"]): u["class"] for u in resolved["unlearners"]}
    print("| unlearner | forget_test before → after | retain_test before → after | gold gap before → after | chosen |")
    print("|---|---|---|---|---|")
    labels = list(dict.fromkeys(u for u, _ in after))
    for label in sorted(labels, key=lambda u: list(classes).index(u) if u in classes else len(classes)):
        if label in REFERENCES:
            cells = [number(after.get((label, m), np.nan)) for m in COLUMNS]
            print(f"| {label} | " + " | ".join(cells) + " | |")
            continue
        cells = [f"{number(before.get((label, m), np.nan))} → {number(after.get((label, m), np.nan))}" for m in COLUMNS]
        pick = chosen(best[label], defaults[label]["parameters"]) if label in best else "not tuned (no search space)"
        print(f"| {label} | " + " | ".join(cells) + f" | {pick} |")


if __name__ == "__main__":
    main()
