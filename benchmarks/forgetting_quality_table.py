"""docs/evaluation.md's ForgettingQuality table (protocols × attack families × N), regenerated.

    python benchmarks/forgetting_quality_table.py [--config configs/benchmarks/digits_full_evaluation.jsonc]
        [--num-models 4 8 16] [--output-root DIR]

For every protocol (challenge, varied_originals), attack family (challenge, all_intervals) and
number of models N, runs the config with Identity, GoldModel and FineTuning (5 epochs, lr 0.02)
and ForgettingQuality alone, then prints the table: one row per (protocol, attacks), the mean
over seeds of ``forgetting_quality`` per unlearner, "a / b / c" over the N values. Replica models
are cached (``ERASURE_CACHE_DIR``), so the attack families share their replicas.
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

from erasure.results.summary import final_values  # noqa: E402

UNLEARNERS = [{"class": "Identity"}, {"class": "GoldModel"},
              {"class": "FineTuning", "parameters": {"epochs": 5, "lr": 0.02}}]
COLUMNS = [("Identity", "Identity"), ("GoldModel", "GoldModel (floor)"), ("FineTuning", "FineTuning")]
ROWS = [("challenge", "challenge", " (default)"), ("varied_originals", "challenge", ""),
        ("challenge", "all_intervals", ""), ("varied_originals", "all_intervals", " (the former default)")]


def mean_quality(results: Path, unlearner: str) -> float:
    with open(results, newline="") as f:
        values = final_values(csv.DictReader(f)).get((unlearner, "forgetting_quality"), {})
    return float(np.mean(list(values.values()))) if values else float("nan")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/benchmarks/digits_full_evaluation.jsonc")
    parser.add_argument("--num-models", nargs="+", type=int, default=[4, 8, 16])
    parser.add_argument("--output-root", help="where the runs write (default: a fresh temporary directory)")
    args = parser.parse_args(argv)
    root = Path(args.output_root or tempfile.mkdtemp(prefix="fq-table-"))
    table: dict[tuple[str, str], dict[str, list[float]]] = {}
    for protocol, attacks, _ in ROWS:
        cells = table.setdefault((protocol, attacks), {name: [] for name, _ in COLUMNS})
        for n in args.num_models:
            out = root / f"{protocol}-{attacks}-{n}"
            evaluator = {"class": "ForgettingQuality", "parameters": {"num_models": n, "protocol": protocol, "attacks": attacks}}
            run(args.config, [f"unlearners={json.dumps(UNLEARNERS)}", f"evaluators={json.dumps([evaluator])}"], out)
            for name, _ in COLUMNS:
                cells[name].append(mean_quality(out / "results.csv", name))
    n_text = " / ".join(str(n) for n in args.num_models)
    print("| protocol, attacks | N | " + " | ".join(title for _, title in COLUMNS) + " |")
    print("|---|---|" + "---|" * len(COLUMNS))
    for protocol, attacks, note in ROWS:
        cells = table[(protocol, attacks)]
        values = [" / ".join("0" if v == 0 else f"{v:.3f}" for v in cells[name]) for name, _ in COLUMNS]
        print(f"| {protocol}, {attacks}{note} | {n_text} | " + " | ".join(values) + " |")


if __name__ == "__main__":
    main()
