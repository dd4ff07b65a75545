"""Plots from results: ``python -m erasure.plot trajectories RESULTS -o out.png [--reference GoldModel]``.

``trajectories`` draws the per-epoch trajectories of every unlearner that logged rows with a
``step`` (MIRegularized): one panel per metric (Î on one scale, then the accuracies on forget,
retain and test), one line per unlearner (mean ± std over the trials present at each epoch), the
reference's final value dashed, integer epochs, the legend outside the panels, and a last panel
with the number of trials per epoch (trials that stop early leave the mean). It is the same
figure as in ``erasure report``. RESULTS is a results CSV or its output directory.
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


def plot_trajectories(results: str | Path, output: str | Path, reference: str | None = None) -> list[str]:
    """Write the trajectories figure (format from the suffix of ``output``); returns the unlearners drawn."""
    from erasure.report.data import load_run
    from erasure.report.figures import trajectories
    from erasure.report.static import save

    run = load_run(results, reference=reference)
    if reference is not None and reference not in run.unlearners:
        raise ValueError(f"unknown --reference {reference!r}; the labels in {results} are: {', '.join(run.unlearners)}")
    figure = trajectories(run)
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
    args = parser.parse_args(argv)
    try:
        names = plot_trajectories(args.results, args.output, args.reference)
    except (OSError, ValueError, ConfigError) as exc:
        print(f"error: {exc}")
        return 2
    print(f"wrote {args.output} ({len(names)} unlearner(s): {', '.join(names)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
