"""The report's figures as plain data (panels of traces), drawn by both renderers.

Each builder takes summarised results and returns a :class:`Figure` (or ``None`` when the results
lack what it needs); :mod:`erasure.report.html` draws it with Plotly and
:mod:`erasure.report.static` with matplotlib, so the page and the PDF/PNG files show the same data.
"""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Literal, Sequence

import numpy as np

from erasure.report.data import RunSummary
from erasure.results.summary import GOLD_GAP, ROLE_GOLD, ROLE_IDENTITY, final_values, seed_gold_gaps
from erasure.results.targets import lookup

PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f"]
SYMBOLS = ("circle", "diamond", "square", "triangle-up")  # methods 11-20 get the second shape, and so on
GOLD_COLOR, IDENTITY_COLOR = "#b8860b", "#555555"
# the membership attack drawn against test accuracy: the first of these that the results have
PRIVACY_METRICS = ("umia_accuracy", "entropy_mia_member_rate", "mia_efficacy", "ulira_auc", "ulira_accuracy")
TRAJECTORY_ORDER = ("mutual_information", "accuracy_forget", "accuracy_retain", "accuracy_test")
MAIN_PARAMETERS = ("lr", "alpha", "sigma", "gamma", "ratio", "k")  # the tuning figure's sensitivity axis, first found
LABELS = {"mutual_information": "Î(Ŷ;Z) (nats)", "wall_seconds": "unlearning time (s, log)", GOLD_GAP: "gold gap"}


def metric_label(metric: str) -> str:
    """How a metric is named on axes and in headers."""
    return LABELS.get(metric, metric)

Role = Literal["method", "gold", "identity"]


@dataclass
class Trace:
    """One series: ``kind`` "points" (markers), "line" (with an optional ``band``), "hline"
    (a horizontal reference line at ``y[0]``) or "distribution" (the values ``y`` of one group)."""

    name: str
    x: list[Any]
    y: list[float]
    kind: Literal["points", "line", "hline", "distribution"] = "points"
    role: Role = "method"
    color: str = PALETTE[0]
    size: float = 9
    opacity: float = 1.0
    x_error: tuple[list[float], list[float]] | None = None  # (low, high) absolute bounds
    y_error: tuple[list[float], list[float]] | None = None
    band: tuple[list[float], list[float]] | None = None
    dash: bool = False
    legend: bool = True
    symbol: str = "circle"  # for a method's points: one of SYMBOLS
    text: list[str] | None = None  # hover text per point
    group: str | None = None  # legend group (toggled together); default: the name


@dataclass
class Panel:
    title: str
    x_label: str
    y_label: str
    traces: list[Trace] = field(default_factory=list)
    x_log: bool = False
    x_integer: bool = False
    y_integer: bool = False
    categorical_x: bool = False
    y_range: tuple[float, float] | None = None


@dataclass
class Figure:
    key: str  # file stem
    title: str
    caption: str
    panels: list[Panel]
    columns: int = 2


def styles(labels: Sequence[str], run: RunSummary) -> dict[str, tuple[str, str]]:
    """(colour, symbol) per unlearner label, stable across figures: the references get their own
    colours, methods cycle through ten colours and then through the next marker shape."""
    out, i = {}, 0
    for label in labels:
        role = run.role(label)
        if role == ROLE_GOLD:
            out[label] = (GOLD_COLOR, "star")
        elif role == ROLE_IDENTITY:
            out[label] = (IDENTITY_COLOR, "x")
        else:
            out[label] = (PALETTE[i % len(PALETTE)], SYMBOLS[(i // len(PALETTE)) % len(SYMBOLS)])
            i += 1
    return out


def _role(run: RunSummary, label: str) -> Role:
    role = run.role(label)
    return "gold" if role == ROLE_GOLD else "identity" if role == ROLE_IDENTITY else "method"


def scatter_panel(run: RunSummary, x_metric: str, y_metric: str, title: str, x_log: bool = False,
                  legend: bool = True) -> Panel | None:
    """Per-seed points (small, faint) and means with 95% intervals on both axes, one colour per
    unlearner; GoldModel and Identity drawn as reference marks."""
    xs, ys = run.seed_values(x_metric), run.seed_values(y_metric)
    labels = [u for u in run.unlearners if u in xs and u in ys]
    if not labels:
        return None
    style = styles(run.unlearners, run)
    panel = Panel(title, metric_label(x_metric), metric_label(y_metric), x_log=x_log)
    for label in labels:
        seeds = [s for s in xs[label] if s in ys[label]]
        if not seeds:
            continue
        role = _role(run, label)
        x_seed = [xs[label][s] for s in seeds]
        y_seed = [ys[label][s] for s in seeds]
        color, symbol = style[label]  # the references: star (gold) and x (no unlearning)
        panel.traces.append(Trace(f"{label} (seeds)", x_seed, y_seed, role=role, color=color, symbol=symbol, size=6,
                                  opacity=0.35, legend=False, text=[f"{label}, seed {s[1]}" for s in seeds], group=label))
        rx, ry = run.record(label, x_metric), run.record(label, y_metric)
        panel.traces.append(Trace(
            label, [rx["mean"]], [ry["mean"]], role=role, color=color, symbol=symbol, size=13 if role != "method" else 10,
            legend=legend,
            x_error=([rx["ci95_low"]], [rx["ci95_high"]]) if not math.isnan(rx["ci95_low"]) else None,
            y_error=([ry["ci95_low"]], [ry["ci95_high"]]) if not math.isnan(ry["ci95_low"]) else None,
            text=[f"{label}: mean over {rx['n']} seed(s)"]))
    return panel


def forget_vs_utility(run: RunSummary) -> Figure | None:
    """Forget accuracy against retain and test accuracy."""
    panels = [p for p in (scatter_panel(run, "accuracy_retain", "accuracy_forget", "forget vs retain accuracy"),
                          scatter_panel(run, "accuracy_test", "accuracy_forget", "forget vs test accuracy",
                                        legend=False)) if p]
    if not panels:
        return None
    gold = run.reference
    return Figure("forget_vs_utility", "Forgetting against utility",
                  f"Forget accuracy against retain and test accuracy: faint points are single seeds, large ones the "
                  f"means with 95% intervals. {gold} (★) is the target, {run.identity} (✕) the model before unlearning.",
                  panels)


def privacy_vs_utility(run: RunSummary) -> Figure | None:
    """The chosen membership attack against test accuracy."""
    metric = next((m for m in PRIVACY_METRICS if m in run.metrics), None)
    if metric is None or "accuracy_test" not in run.metrics:
        return None
    panel = scatter_panel(run, "accuracy_test", metric, f"{metric} vs test accuracy")
    if panel is None:
        return None
    target = lookup(metric, run.targets)
    return Figure("privacy_vs_utility", "Privacy against utility",
                  f"{metric} ({target.describe() if target else 'no target'}) against test accuracy; a method should "
                  f"sit on {run.reference}'s mark, not at an extreme.", [panel], columns=1)


def cost_vs_quality(run: RunSummary) -> Figure | None:
    """Unlearning time (log axis) against the gold gap."""
    if "wall_seconds" not in run.metrics or GOLD_GAP not in run.metrics:
        return None
    panel = scatter_panel(run, "wall_seconds", GOLD_GAP, "cost vs quality", x_log=True)
    if panel is None:
        return None
    for trace in panel.traces:  # a log axis cannot show 0 s, nor an interval reaching below 0: the seeds show the spread
        trace.x = [max(v, 1e-6) for v in trace.x]
        trace.x_error = None
    return Figure("cost_vs_quality", "Cost against quality",
                  f"Wall-clock seconds of the unlearn call (log axis; faint points are single seeds) against the gold "
                  f"gap with its 95% interval (0 = {run.reference}); lower left is better.", [panel], columns=1)


def deletion_stream(run: RunSummary) -> Figure | None:
    """With several deletion requests: each unlearner's cumulative CPU seconds over the requests
    against its gold gap (and ``exact_gap``, the distance to the gold model of its own training
    scheme) after each one; means over seeds, one line per method, one point per request."""
    rows = run.results.rows
    requests = sorted({int(r["request"]) for r in rows if r.get("request") not in (None, "")})
    if len(requests) < 2 or "cpu_seconds" not in run.metrics:
        return None
    after = {q: final_values([r for r in rows if r.get("request") not in (None, "") and int(r["request"]) == q])
             for q in requests}
    gaps = {q: seed_gold_gaps(after[q], run.reference, run.targets) for q in requests}
    style = styles(run.unlearners, run)
    panels = []
    for metric in (GOLD_GAP, "exact_gap"):
        panel = Panel(f"{metric_label(metric)} over the requests", "cumulative CPU seconds (log)", metric_label(metric),
                      x_log=True)
        for label in run.unlearners:
            cost, xs, ys = 0.0, [], []
            for q in requests:
                seconds = after[q].get((label, "cpu_seconds"))
                value = gaps[q].get(label) if metric == GOLD_GAP else after[q].get((label, metric))
                if not seconds or not value:
                    break
                cost += float(np.mean(list(seconds.values())))
                xs.append(max(cost, 1e-6))
                ys.append(float(np.mean(list(value.values()))))
            if xs:
                panel.traces.append(Trace(label, xs, ys, kind="line", role=_role(run, label), color=style[label][0],
                                          legend=not panels, text=[f"{label}, after request {q}" for q in requests]))
        if panel.traces:
            panels.append(panel)
    if not panels:
        return None
    return Figure("deletion_stream", "Deletion requests: cumulative cost against the gap to gold",
                  f"After each of the {len(requests)} deletion requests (one point each, in order): the unlearning "
                  f"calls' CPU seconds so far against the gold gap (to {run.reference}) and, where measured, exact_gap "
                  "(to the gold model retrained under the method's own training scheme; 0 = exact). Lower left is "
                  "better.", panels)


def trajectories(run: RunSummary) -> Figure | None:
    """Per-epoch trajectories (rows with a step): one panel per metric with one line per unlearner
    (mean ± std over the trials present at that step), the reference's final value dashed, and a
    last panel with the number of trials per epoch (trials that stop early drop out)."""
    table = run.trajectories()
    if not table:
        return None
    style = styles(run.unlearners, run)
    metrics = [m for m in TRAJECTORY_ORDER if any(m in t for t in table.values())]
    metrics += sorted({m for t in table.values() for m in t} - set(metrics))
    panels = []
    for metric in metrics:
        target = lookup(metric, run.targets)
        y_range = (0.0, 1.02) if target is not None and target.low == 0 and target.high == 1 else None
        panel = Panel(metric_label(metric), "epoch", metric_label(metric), x_integer=True, y_range=y_range)
        for label, by_metric in table.items():
            if metric not in by_metric:
                continue
            steps, mean, std, _ = step_stats(by_metric[metric])
            panel.traces.append(Trace(label, steps, mean, kind="line", color=style[label][0],
                                      band=(list(mean - std), list(mean + std)), legend=metric == metrics[0]))
        gold = run.seed_values(metric).get(run.reference)
        if gold:
            panel.traces.append(Trace(f"{run.reference} (final)", [], [float(np.mean(list(gold.values())))],
                                      kind="hline", role="gold", color=GOLD_COLOR, dash=True, legend=metric == metrics[0]))
        panels.append(panel)
    counts = Panel("trials per epoch", "epoch", "trials", x_integer=True, y_integer=True)
    for label, by_metric in table.items():
        steps, _, _, n = step_stats(next(iter(by_metric.values())))
        counts.traces.append(Trace(label, steps, [float(v) for v in n], kind="line", color=style[label][0], legend=False))
    counts.y_range = (0.0, max(max(t.y) for t in counts.traces) + 0.5)
    panels.append(counts)
    return Figure("trajectories", "Per-epoch trajectories",
                  "Mean ± std over the trials (seeds) that reached each epoch; the dashed line is the final value of "
                  f"{run.reference}. The last panel counts the trials per epoch: a trial that stops early leaves the mean.",
                  panels, columns=2)


def step_stats(by_step: dict[int, list[float]]) -> tuple[list[int], np.ndarray, np.ndarray, np.ndarray]:
    """Steps, mean, population std and count of the values at each step."""
    steps = sorted(by_step)
    values = [np.asarray(by_step[s], float) for s in steps]
    return steps, np.array([v.mean() for v in values]), np.array([v.std() for v in values]), np.array([len(v) for v in values])


def distributions(run: RunSummary) -> list[Figure]:
    """One figure per artifact name (per-example values, e.g. ForgettingQuality's ε): the
    distribution of each unlearner's values, pooled over seeds; infinite values are counted."""
    by_name: dict[str, dict[str, list[np.ndarray]]] = defaultdict(lambda: defaultdict(list))
    for artifact in run.artifacts:
        by_name[artifact.name][artifact.unlearner].append(np.asarray(artifact.load(), float).ravel())
    style = styles(run.unlearners, run)
    figures = []
    for name, groups in by_name.items():
        order = [u for u in run.unlearners if u in groups] + [u for u in groups if u not in run.unlearners]
        panel = Panel(name, "unlearner", name, categorical_x=True)
        notes = []
        for label in order:
            values = np.concatenate(groups[label])
            finite = values[np.isfinite(values)]
            if len(finite) < len(values):
                notes.append(f"{label}: {len(values) - len(finite)} of {len(values)} infinite")
            panel.traces.append(Trace(label, [label] * len(finite), list(map(float, finite)), kind="distribution",
                                      role=_role(run, label), color=style.get(label, (PALETTE[0], ""))[0], legend=False))
        caption = (f"Per-example {name} of each unlearner, pooled over {len({a.seed for a in run.artifacts})} seed(s); "
                   f"compare each distribution with {run.reference}'s.")
        if notes:
            caption += " Not drawn: " + "; ".join(notes) + "."
        figures.append(Figure(f"distribution_{name}", f"Per-example {name}", caption, [panel], columns=1))
    return figures


def tuning(run: RunSummary) -> Figure | None:
    """The tuning protocol: per method the best objective so far against the trial number, and the
    objective against each method's main searched parameter (its learning rate, else the first of
    :data:`MAIN_PARAMETERS`, else its first): how sensitive it is."""
    import json

    trials, best = run.tuning
    done = [t for t in trials if t["state"] == "COMPLETE"]
    if not done:
        return None
    methods = list(dict.fromkeys(t["method"] for t in trials))
    style = styles(methods, run)
    curve = Panel("best so far", "trial", "objective (lower is better)", x_integer=True)
    panels = [curve]
    for method in methods:
        mine = sorted((int(t["trial"]), float(t["value"]), json.loads(t["parameters"])) for t in done if t["method"] == method)
        if not mine:
            continue
        best_so_far = list(np.minimum.accumulate([v for _, v, _ in mine]))
        curve.traces.append(Trace(method, [n for n, _, _ in mine], best_so_far, kind="line", color=style[method][0]))
        main = next((p for p in MAIN_PARAMETERS if p in mine[0][2]), next(iter(mine[0][2]), None))
        xs = [p.get(main) for _, _, p in mine]
        if main is None or not all(isinstance(x, (int, float)) for x in xs):
            continue
        positive = all(x > 0 for x in xs)
        panel = Panel(f"{method}: {main}", main, "objective",
                      x_log=positive and max(xs) / min(xs) > 20, x_integer=all(isinstance(x, int) for x in xs))
        panel.traces.append(Trace(method, xs, [v for _, v, _ in mine], color=style[method][0], legend=False,
                                  text=[f"trial {n}: {p}" for n, _, p in mine]))
        chosen = best.get(method, {}).get("parameters", {}).get(main)
        if isinstance(chosen, (int, float)):
            panel.traces.append(Trace("chosen", [chosen], [best[method]["value"]], role="gold", color=GOLD_COLOR,
                                      size=14, legend=False))
        panels.append(panel)
    chosen = "; ".join(f"{m}: " + ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                                              for k, v in b["parameters"].items() if k in json.loads(
                                                  next(t["parameters"] for t in trials if t["method"] == m)))
                       + f" (objective {b['value']:.3g}, trial {b['best_trial']})" for m, b in best.items())
    objective = next(iter(best.values()), {}).get("objective", "the objective")
    return Figure("tuning", "Tuning (equal budget per method)",
                  f"{len(trials) // max(len(methods), 1)} trials per method on the tuning seeds' validation split, "
                  f"objective {objective}. First: the best value so far; then each method's value against its main "
                  f"searched parameter (the chosen trial marked). Chosen: {chosen}.", panels, columns=2)


def run_figures(run: RunSummary) -> list[Figure]:
    """Every figure the results support, in page order."""
    figures = [forget_vs_utility(run), privacy_vs_utility(run), cost_vs_quality(run), deletion_stream(run),
               trajectories(run), tuning(run)]
    return [f for f in figures if f is not None] + distributions(run)


def comparison(runs: Sequence[RunSummary], metrics: Sequence[str]) -> Figure | None:
    """Several runs on one figure: per metric a panel, unlearners on the x axis, one marker series
    per run (mean with 95% interval)."""
    if len(runs) < 2:
        return None
    panels = []
    for metric in metrics:
        panel = Panel(metric_label(metric), "unlearner", metric_label(metric), categorical_x=True)
        for i, run in enumerate(runs):
            labels = [u for u in run.unlearners if run.record(u, metric)]
            if not labels:
                continue
            recs = [run.record(u, metric) for u in labels]
            panel.traces.append(Trace(run.title, labels, [r["mean"] for r in recs], color=PALETTE[i % len(PALETTE)],
                                      y_error=([r["ci95_low"] for r in recs], [r["ci95_high"] for r in recs]),
                                      legend=metric == metrics[0]))
        if panel.traces:
            panels.append(panel)
    if not panels:
        return None
    return Figure("comparison", "Runs compared",
                  "The same metric in each run (mean with 95% interval); one colour per run.", panels, columns=1)
