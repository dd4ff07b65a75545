"""Rebuild the summary of a results file or directory, as the run that wrote it does.

    python -m erasure.summarize RESULTS [--out summary.csv] [--reference GoldModel] [--identity Identity]
                                        [--experiment NAME] [--config-hash HASH]

RESULTS is a results CSV or the output directory holding it. Rows of jobs that are not in the
directory's ``config.resolved.json`` (an earlier run whose label now has other parameters) are
left out, as in the run's own table; without that file a label with several parameter sets is
split into one row per set. Prints the full table (every metric: mean, 95% interval, n, paired
difference to the reference, rank, self-check) and writes ``summary.csv`` beside the results
unless ``--out`` says otherwise.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from erasure.core.errors import ConfigError
from erasure.results.directory import load_results
from erasure.results.summary import format_table, format_wide, summarize, write_summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m erasure.summarize", description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=Path, help="a results CSV written by the runner, or its output directory")
    parser.add_argument("--out", type=Path, help="where to write the summary CSV (default: summary.csv beside the results)")
    parser.add_argument("--reference", help="gold reference label for paired differences (default: the GoldModel entry)")
    parser.add_argument("--identity", help="no-unlearning reference label for the self-check (default: the Identity entry)")
    parser.add_argument("--experiment", help="keep only rows of this experiment name")
    parser.add_argument("--config-hash", help="keep only rows of this config hash")
    args = parser.parse_args(argv)
    try:
        results = load_results(args.results, args.reference, args.identity, args.config_hash)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    rows = results.rows
    if args.experiment:
        rows = [r for r in rows if r.get("experiment") == args.experiment]
    labels = list(dict.fromkeys(r["unlearner"] for r in rows))
    for option, label in (("--reference", args.reference), ("--identity", args.identity)):
        if label is not None and label not in labels:
            print(f"error: unknown {option} {label!r}; the labels in {results.path} are: {', '.join(labels)}", file=sys.stderr)
            return 2
    hashes = {r.get("config_hash") for r in rows}
    if len(hashes) > 1:
        print(f"note: rows of {len(hashes)} configurations are pooled (filter with --config-hash)", file=sys.stderr)
    if results.excluded:
        print(f"note: {results.excluded} row(s) of jobs that are not in {results.directory / 'config.resolved.json'} "
              "(earlier parameters, seeds or labels) are left out, as in the run's own table", file=sys.stderr)
    for label in results.relabelled:
        print(f"note: {label!r} comes with several parameter sets; each is its own row", file=sys.stderr)
    records = summarize(rows, results.reference, results.targets, results.identity, results.ranking)
    out = args.out or results.path.with_name("summary.csv")
    try:
        write_summary(records, out)  # atomically, never through a symbolic link
    except (OSError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_table(records, results.targets))
    print()
    print(format_wide(records, results.targets, ranking=results.ranking))
    print(f"\nSummary: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
