"""Plots from results: ``python -m erasure.plot trajectories RESULTS -o out.png [--reference GoldModel] [--by metric]``.

``trajectories`` draws the per-epoch trajectories of every unlearner that logged rows with a
``step`` (MIRegularized), in the style of Xu & Strohmer's figures: one panel per unlearner (its
label and γ), Î(Ŷ;Z) on the left axis and remain / unlearn / test accuracy on the right, mean ± std
over the trials present at each epoch (trials that stop early leave the mean; n in the title), and
the reference's final unlearn and test accuracy dashed. ``--by metric`` draws one panel per metric
with one line per unlearner instead, and a panel with the number of trials per epoch. It is the
same figure as in ``erasure report``. RESULTS is a results CSV or its output directory.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

import numpy as np

from erasure.core.errors import ConfigError
from erasure.results.summary import trajectory_table  # noqa: F401  (re-exported)


def mean_std(by_step: dict[int, list[float]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Steps, mean and (population) standard deviation over the trials present at each step."""
    from erasure.report.figures import step_stats

    steps, mean, std, _ = step_stats(by_step)
    return np.array(steps), mean, std


def plot_trajectories(results: str | Path, output: str | Path, reference: str | None = None,
                      by: str = "unlearner") -> list[str]:
    """Write the trajectories figure (format from the suffix of ``output``; ``by`` "unlearner": a panel
    per unlearner with Î and the accuracies on twin axes, or "metric": a panel per metric); returns
    the unlearners drawn."""
    from erasure.report.data import load_run
    from erasure.report.figures import trajectories
    from erasure.report.static import save

    run = load_run(results, reference=reference)
    if reference is not None and reference not in run.unlearners:
        raise ValueError(f"unknown --reference {reference!r}; the labels in {results} are: {', '.join(run.unlearners)}")
    figure = trajectories(run, by=by)
    if figure is None:
        raise ValueError(f"{results} has no trajectory rows (rows with a step)")
    save(figure, [Path(output)])
    return list(run.trajectories())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m erasure.plot", description="Plots from an erasure results CSV.")
    sub = parser.add_subparsers(dest="command", required=True)
    traj = sub.add_parser("trajectories", help="per-epoch Î and accuracies of each unlearner, mean ± std over seeds")
    traj.add_argument("results", help="results CSV written by a run, or its output directory")
    traj.add_argument("-o", "--output", default="trajectories.png", help="image file to write (default trajectories.png)")
    traj.add_argument("--reference", help="label whose final values are drawn dashed (default: the GoldModel entry)")
    traj.add_argument("--by", choices=("unlearner", "metric"), default="unlearner",
                      help="a panel per unlearner, Î and the accuracies on twin axes (default), or a panel per metric")
    args = parser.parse_args(argv)
    try:
        names = plot_trajectories(args.results, args.output, args.reference, args.by)
    except (OSError, ValueError, ConfigError) as exc:
        print(f"error: {exc}")
        return 2
    print(f"wrote {args.output} ({len(names)} unlearner(s): {', '.join(names)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
