"""Rebuild the summary of any results file.

    python -m erasure.summarize results/x/results.csv [--out summary.csv] [--reference GoldModel]
                                                      [--experiment NAME] [--config-hash HASH]

Prints the table (mean, std, 95% t-interval, n, paired difference to the reference per
(unlearner, metric)) and writes ``summary.csv`` beside the results unless ``--out`` says otherwise.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from erasure.results.summary import REFERENCE, format_table, summarize, write_summary
from erasure.results.writers import read_rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m erasure.summarize", description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=Path, help="a results CSV written by the runner")
    parser.add_argument("--out", type=Path, help="where to write the summary CSV (default: summary.csv beside the results)")
    parser.add_argument("--reference", default=REFERENCE, help="unlearner label for paired differences (default: %(default)s)")
    parser.add_argument("--experiment", help="keep only rows of this experiment name")
    parser.add_argument("--config-hash", help="keep only rows of this config hash")
    args = parser.parse_args(argv)
    if not args.results.is_file():
        print(f"error: no such results file: {args.results}", file=sys.stderr)
        return 2
    rows = read_rows(args.results)
    if args.experiment:
        rows = [r for r in rows if r.get("experiment") == args.experiment]
    if args.config_hash:
        rows = [r for r in rows if r.get("config_hash") == args.config_hash]
    hashes = {r.get("config_hash") for r in rows}
    if len(hashes) > 1:
        print(f"note: rows of {len(hashes)} configurations are pooled (filter with --config-hash)", file=sys.stderr)
    records = summarize(rows, args.reference)
    out = args.out or args.results.with_name("summary.csv")
    write_summary(records, out)
    print(format_table(records))
    print(f"\nSummary: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
