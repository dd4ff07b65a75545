"""Plots from a results CSV: ``python -m erasure.plot trajectories RESULTS.csv -o out.png``.

``trajectories`` draws one panel per unlearner that logged trajectory rows (rows
with a ``step``): Î (``mutual_information``, left axis) and the accuracies on
remain, unlearn and test (right axis) against the step (the epoch), as mean ± std
over seeds (trials). Dashed lines mark the reference unlearner's final unlearn
and test accuracy (``--reference``, GoldModel by default: the retrained model).
"""
from __future__ import annotations

import argparse
import math
from collections import defaultdict
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from erasure.results.summary import final_values
from erasure.results.writers import read_rows

LEFT_METRIC = "mutual_information"
RIGHT_METRICS = {"accuracy_retain": "remain acc", "accuracy_forget": "unlearn acc", "accuracy_test": "test acc"}


def trajectory_table(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, dict[int, list[float]]]]:
    """unlearner → metric → step → values over seeds, from the ``ok`` rows that carry a step."""
    table: dict[str, dict[str, dict[int, list[float]]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    for row in rows:
        if row.get("status") != "ok" or row.get("step") in (None, ""):
            continue
        value = float(row["value"])
        if math.isfinite(value):
            table[row["unlearner"]][row["metric"]][int(row["step"])].append(value)
    return table


def mean_std(by_step: dict[int, list[float]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Steps, mean and (population) standard deviation over the trials present at each step."""
    steps = np.array(sorted(by_step))
    values = [np.asarray(by_step[s]) for s in steps]
    return steps, np.array([v.mean() for v in values]), np.array([v.std() for v in values])


def plot_trajectories(results: str | Path, output: str | Path, reference: str = "GoldModel") -> list[str]:
    """Write the trajectories figure; returns the unlearners drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_rows(results)
    table = trajectory_table(rows)
    if not table:
        raise ValueError(f"{results} has no trajectory rows (rows with a step)")
    finals = final_values(rows)
    names = list(table)
    cols = min(2, len(names))
    nrows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(6.5 * cols, 4 * nrows), squeeze=False)
    colors = {"accuracy_retain": "tab:green", "accuracy_forget": "tab:red", "accuracy_test": "tab:orange"}
    for ax, name in zip(axes.flat, names):
        metrics = table[name]
        right = ax.twinx()
        if LEFT_METRIC in metrics:
            steps, mean, std = mean_std(metrics[LEFT_METRIC])
            ax.plot(steps, mean, color="tab:blue", marker=".", label="Î(Ŷ;Z)")
            ax.fill_between(steps, mean - std, mean + std, color="tab:blue", alpha=0.2)
        for metric, label in RIGHT_METRICS.items():
            if metric in metrics:
                steps, mean, std = mean_std(metrics[metric])
                right.plot(steps, mean, color=colors[metric], marker=".", label=label)
                right.fill_between(steps, mean - std, mean + std, color=colors[metric], alpha=0.2)
            ref = finals.get((reference, metric))
            if ref and metric != "accuracy_retain":
                right.axhline(float(np.mean(list(ref.values()))), color=colors[metric], linestyle="--", linewidth=1,
                              label=f"{reference} {label}")
        n = max((len(v) for v in metrics.get(LEFT_METRIC, {0: []}).values()), default=0)
        ax.set_title(f"{name} (n={n})")
        ax.set_xlabel("epoch")
        ax.set_ylabel("Î (nats)", color="tab:blue")
        right.set_ylabel("accuracy")
        right.set_ylim(0, 1.02)
        handles = [h for a in (ax, right) for h in a.get_legend_handles_labels()[0]]
        labels = [lab for a in (ax, right) for lab in a.get_legend_handles_labels()[1]]
        right.legend(handles, labels, loc="lower left", fontsize=7)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(output, dpi=120)
    plt.close(fig)
    return names


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m erasure.plot", description="Plots from an erasure results CSV.")
    sub = parser.add_subparsers(dest="command", required=True)
    traj = sub.add_parser("trajectories", help="per-unlearner Î and accuracies against epoch, mean ± std over seeds")
    traj.add_argument("results", help="results CSV written by a run")
    traj.add_argument("-o", "--output", default="trajectories.png", help="image file to write (default trajectories.png)")
    traj.add_argument("--reference", default="GoldModel", help="unlearner whose final accuracies are drawn dashed")
    args = parser.parse_args(argv)
    try:
        names = plot_trajectories(args.results, args.output, args.reference)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}")
        return 2
    print(f"wrote {args.output} ({len(names)} panel(s): {', '.join(names)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
