"""The Markdown tables of measured figures in the docs, regenerated from a run so they cannot go stale.

    python benchmarks/doc_tables.py CONFIG [--set PATH=VALUE ...] [--metrics M1 M2 ...] [--output DIR]
    python benchmarks/doc_tables.py --from DIR [--metrics ...]

Runs ``main.py CONFIG --no-progress`` (with the ``--set`` overrides, into ``--output`` or a fresh
temporary directory), then prints one row per unlearner (in the order of the results file) and
one column per metric: the mean ± standard deviation over seeds (population standard deviation,
ddof 0, as the docs' tables), or the value alone with one seed. A column is
``[1/]metric[@digits][=header]``: ``1/`` takes the reciprocal per seed before averaging,
``@2`` prints two decimals, ``=header`` names the column. ``--from DIR`` reads an earlier
run's results instead of running. Each docs table made this way names its command beside it.

Example (docs/fidelity.md, SSD / JiT defaults):

    OMP_NUM_THREADS=1 python benchmarks/doc_tables.py configs/benchmarks/digits_class_forget.jsonc \\
        --set 'unlearners=[{"class":"SSD"},{"class":"JiT"}]' --metrics accuracy_forget_test accuracy_retain_test
"""
from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from erasure.results.summary import final_values  # noqa: E402

DEFAULT_METRICS = ("accuracy_forget_test", "accuracy_retain_test", "accuracy_test")


def run(config: str, overrides: list[str], output: Path) -> None:
    """``main.py config`` into ``output``; raises if it fails."""
    command = [sys.executable, str(ROOT / "main.py"), config, "--no-progress", "--set", f"output.dir={output}"]
    for override in overrides:
        command += ["--set", override]
    subprocess.run(command, check=True, cwd=ROOT, stdout=sys.stderr)  # stdout: the table alone


def cell(values: list[float], digits: int = 3) -> str:
    """"mean ± std" over seeds (population std), the value alone for one seed, "-" for none."""
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{np.mean(values):.{digits}f} ± {np.std(values):.{digits}f}"


def parse_column(spec: str) -> tuple[str, bool, int, str]:
    """A column spec ``[1/]metric[@digits][=header]``: (metric, reciprocal per seed, digits, header),
    e.g. ``1/speedup_vs_gold=time / gold`` or ``wall_seconds@2=seconds``."""
    spec, _, header = spec.partition("=")
    reciprocal = spec.startswith("1/")
    metric, _, digits = spec.removeprefix("1/").partition("@")
    return metric, reciprocal, int(digits or 3), header or spec


def table(results: Path, metrics: list[str]) -> str:
    """The Markdown table of ``results`` (a results.csv): unlearners in file order × ``metrics``
    (column specs, :func:`parse_column`)."""
    with open(results, newline="") as f:
        rows = list(csv.DictReader(f))
    values = final_values(rows)
    unlearners = list(dict.fromkeys(r["unlearner"] for r in rows))
    columns = [parse_column(m) for m in metrics]
    lines = ["| unlearner | " + " | ".join(c[3] for c in columns) + " |", "|---|" + "---:|" * len(columns)]
    for name in unlearners:
        cells = []
        for metric, reciprocal, digits, _ in columns:
            seeds = list(values.get((name, metric), {}).values())
            cells.append(cell([1 / v if v else float("inf") for v in seeds] if reciprocal else seeds, digits))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", nargs="?", help="the config to run")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="PATH=VALUE",
                        help="a main.py override, e.g. 'unlearners=[...]' (repeatable)")
    parser.add_argument("--metrics", nargs="+", default=list(DEFAULT_METRICS))
    parser.add_argument("--output", help="where the run writes (default: a fresh temporary directory)")
    parser.add_argument("--from", dest="source", help="read this earlier run's directory instead of running")
    args = parser.parse_args(argv)
    if args.source:
        directory = Path(args.source)
    elif args.config:
        directory = Path(args.output or tempfile.mkdtemp(prefix="doc-tables-"))
        run(args.config, args.overrides, directory)
    else:
        parser.error("give a config to run or --from DIR")
    print(table(directory / "results.csv", args.metrics))


if __name__ == "__main__":
    main()
