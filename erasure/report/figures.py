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
from erasure.results.summary import FLAGGED, GOLD_GAP, ROLE_GOLD, ROLE_IDENTITY, final_values, seed_gold_gaps
from erasure.results.targets import lookup

# methods' colours; none is black or grey, which the references use
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22"]
SYMBOLS = ("circle", "diamond", "square", "triangle-up")  # methods 10-18 get the second shape, and so on
GOLD_COLOR, IDENTITY_COLOR = "#000000", "#8c8c8c"
# the seed paper's figure: one colour per quantity, Î on the left axis and the accuracies on the right
QUANTITY_COLORS = {"mutual_information": "#000000", "mutual_information_batches": "#8c8c8c",
                   "accuracy_retain": "#1f77b4", "accuracy_forget": "#d62728", "accuracy_test": "#2ca02c"}
QUANTITY_NAMES = {"mutual_information": "Î(Ŷ;Z)", "mutual_information_batches": "Î(Ŷ;Z) per batch",
                  "accuracy_retain": "remain accuracy", "accuracy_forget": "unlearn accuracy",
                  "accuracy_test": "test accuracy"}
MIN_SPAN = 0.1  # a metric in [0, 1] gets an axis at least this wide: seed noise of 0.002 must not fill the panel
OVERLAP = 0.02  # two means closer than this share of both axes are said to overlap
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
    axis: Literal["y", "y2"] = "y"  # y2: the panel's right-hand axis
    hollow: bool = False  # an outlined marker, so that a point under it stays visible


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
    y2_label: str | None = None  # set when traces use the right-hand axis
    y2_range: tuple[float, float] | None = None
    min_span: dict[str, float] = field(default_factory=dict)  # per axis ("x", "y", "y2"): the narrowest range
    flagged: tuple[str, ...] = ()  # axes whose metric fails the self-check (drawn grey)
    notes: list[str] = field(default_factory=list)  # said in the figure's caption (e.g. overlapping points)


@dataclass
class Figure:
    key: str  # file stem
    title: str
    caption: str
    panels: list[Panel]
    columns: int = 2

    def __post_init__(self) -> None:
        notes = [n for p in self.panels for n in p.notes]
        if notes:
            self.caption += " " + " ".join(dict.fromkeys(notes))


def axis_range(panel: Panel, axis: str) -> list[float] | None:
    """The range both renderers give an axis ("x", "y" or "y2"): the data's (points, lines and
    their bands; not the intervals, which are cut at the edge rather than squeeze the points) with
    6% padding, at least ``panel.min_span`` wide; on a log axis in decades; None for a categorical
    axis or one without data."""
    fixed = {"y": panel.y_range, "y2": panel.y2_range}.get(axis)
    if fixed:
        return list(fixed)
    if axis == "x" and panel.categorical_x:
        return None
    log = axis == "x" and panel.x_log
    values: list[float] = []
    for t in panel.traces:
        if t.kind == "distribution" or (t.kind == "hline" and axis == "x"):
            continue
        if axis != "x" and t.axis != axis:
            continue
        values += [v for v in (t.x if axis == "x" else t.y) if v is not None]
        if t.band is not None and axis != "x":
            values += [v for side in t.band for v in side]
    values = [float(v) for v in values if isinstance(v, (int, float)) and math.isfinite(v) and (v > 0 or not log)]
    if not values:
        return None
    if log:
        values = [math.log10(v) for v in values]
    low, high = min(values), max(values)
    pad = 0.06 * (high - low) or 0.05 * max(abs(high), 1e-9)
    low, high = low - pad, high + pad
    span = panel.min_span.get(axis, 0.0)
    if high - low < span:
        middle = (low + high) / 2
        low, high = middle - span / 2, middle + span / 2
        if low < 0 <= min(values):  # a metric in [0, 1] stays inside [0, 1]
            low, high = 0.0 - 0.06 * span, span
        elif high > 1 >= max(values):
            low, high = 1 - span, 1 + 0.06 * span
    return [low, high]


def styles(labels: Sequence[str], run: RunSummary) -> dict[str, tuple[str, str]]:
    """(colour, symbol) per unlearner label, stable across figures: the references get their own
    (black star, grey cross), methods cycle through nine colours and then through the next marker
    shape."""
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
    unlearner; GoldModel (an outlined star) and Identity drawn first, so that a method on the same
    spot stays visible (and the caption names it). A metric in [0, 1] gets an axis at least
    :data:`MIN_SPAN` wide; a metric that fails the self-check is marked on its axis."""
    xs, ys = run.seed_values(x_metric), run.seed_values(y_metric)
    labels = [u for u in run.unlearners if u in xs and u in ys]
    if not labels:
        return None
    style = styles(run.unlearners, run)
    flagged = tuple(axis for axis, m in (("x", x_metric), ("y", y_metric)) if run.self_check(m) in FLAGGED)
    x_label, y_label = (metric_label(m) + (" (fails the self-check)" if a in flagged else "")
                        for a, m in (("x", x_metric), ("y", y_metric)))
    panel = Panel(title, x_label, y_label, x_log=x_log, flagged=flagged,
                  min_span={a: MIN_SPAN for a, m in (("x", x_metric), ("y", y_metric)) if _unit_interval(run, m)})
    labels.sort(key=lambda u: _role(run, u) == "method")  # references underneath
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
            legend=legend, hollow=role == "gold",
            x_error=([rx["ci95_low"]], [rx["ci95_high"]]) if not math.isnan(rx["ci95_low"]) else None,
            y_error=([ry["ci95_low"]], [ry["ci95_high"]]) if not math.isnan(ry["ci95_low"]) else None,
            text=[f"{label}: mean over {rx['n']} seed(s)"]))
    panel.notes += overlaps(panel)
    if flagged:
        panel.notes.append(f"{' and '.join(m for a, m in (('x', x_metric), ('y', y_metric)) if a in flagged)} "
                           f"fails the self-check here (it does not separate {run.reference} from {run.identity}).")
    return panel


def _unit_interval(run: RunSummary, metric: str) -> bool:
    target = lookup(metric, run.targets)
    return target is not None and target.low == 0 and target.high == 1


def overlaps(panel: Panel) -> list[str]:
    """Sentences naming the means that sit on the same spot (within :data:`OVERLAP` of both axes'
    ranges), e.g. "In forget vs retain accuracy, SCRUB and GoldModel overlap."."""
    means = [t for t in panel.traces if t.kind == "points" and t.opacity == 1 and len(t.x) == 1]
    ranges = [axis_range(panel, a) for a in ("x", "y")]
    if None in ranges:
        return []

    def position(t: Trace, axis: int, r: list[float]) -> float:
        v = (t.x if axis == 0 else t.y)[0]
        if axis == 0 and panel.x_log:
            v = math.log10(max(v, 1e-12))
        return (v - r[0]) / ((r[1] - r[0]) or 1.0)

    groups: list[list[str]] = []
    for i, a in enumerate(means):
        near = [b.name for b in means[i + 1:]
                if all(abs(position(a, k, r) - position(b, k, r)) < OVERLAP for k, r in enumerate(ranges))]
        if near and not any(a.name in g for g in groups):
            groups.append([a.name, *near])
    return [f"In {panel.title}, {', '.join(g[:-1])} and {g[-1]} overlap." for g in groups]


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
                  f"means with 95% intervals (cut at the panel's edge). {gold} (outlined black ★) is the target, "
                  f"{run.identity} (grey ✕) the model before unlearning.", panels)


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


def trajectories(run: RunSummary, by: Literal["unlearner", "metric"] = "unlearner") -> Figure | None:
    """Per-epoch trajectories (rows with a step), mean ± std over the trials present at each epoch
    (trials that stop early drop out). ``by="unlearner"`` (default) is the style of Xu & Strohmer's
    figures: one panel per unlearner, Î on the left axis and remain / unlearn / test accuracy on the
    right, the reference's final unlearn and test accuracy dashed. ``by="metric"``: one panel per
    metric with one line per unlearner, and a panel counting the trials per epoch."""
    table = run.trajectories()
    if not table:
        return None
    return _trajectories_by_metric(run, table) if by == "metric" else _trajectories_by_unlearner(run, table)


def _reference_finals(run: RunSummary, metrics: Sequence[str]) -> dict[str, float]:
    finals = {}
    for metric in metrics:
        gold = run.seed_values(metric).get(run.reference)
        if gold:
            finals[metric] = float(np.mean(list(gold.values())))
    return finals


def _trajectories_by_unlearner(run: RunSummary, table: dict) -> Figure:
    accuracies = [m for m in TRAJECTORY_ORDER[1:]]
    finals = _reference_finals(run, ("accuracy_forget", "accuracy_test"))
    panels = []
    for label, by_metric in table.items():
        information = "mutual_information" in by_metric
        trials = max(len(v) for series in by_metric.values() for v in series.values())
        panel = Panel(f"{label} (n={trials})", "epoch", QUANTITY_NAMES["mutual_information"] + " (nats)" if information
                      else "accuracy", x_integer=True, y2_label="accuracy" if information else None)
        acc_axis = "y2" if information else "y"
        panel.min_span[acc_axis] = MIN_SPAN
        for metric in ["mutual_information", *accuracies, *sorted(set(by_metric) - set(TRAJECTORY_ORDER))]:
            if metric not in by_metric:
                continue
            steps, mean, std, _ = step_stats(by_metric[metric])
            color = QUANTITY_COLORS.get(metric, PALETTE[len(panel.traces) % len(PALETTE)])
            panel.traces.append(Trace(QUANTITY_NAMES.get(metric, metric), steps, mean, kind="line", color=color,
                                      band=(list(mean - std), list(mean + std)), legend=len(panels) == 0,
                                      axis="y" if metric.startswith("mutual_information") else acc_axis))
        for metric, value in finals.items():
            panel.traces.append(Trace(f"{run.reference}: final {QUANTITY_NAMES[metric]}", [], [value], kind="hline",
                                      role="gold", color=QUANTITY_COLORS[metric], dash=True, legend=len(panels) == 0,
                                      axis=acc_axis))
        panels.append(panel)
    return Figure("trajectories", "Per-epoch trajectories",
                  "Per unlearner (n: trials, i.e. seeds): Î(Ŷ;Z) on the left axis, remain, unlearn and test accuracy "
                  "on the right, mean ± std over the trials that reached each epoch (a trial stopped early leaves "
                  f"the mean); dashed: {run.reference}'s final unlearn and test accuracy.", panels, columns=2)


def _trajectories_by_metric(run: RunSummary, table: dict) -> Figure:
    style = styles(run.unlearners, run)
    metrics = [m for m in TRAJECTORY_ORDER if any(m in t for t in table.values())]
    metrics += sorted({m for t in table.values() for m in t} - set(metrics))
    panels = []
    for metric in metrics:
        panel = Panel(metric_label(metric), "epoch", metric_label(metric), x_integer=True,
                      min_span={"y": MIN_SPAN} if _unit_interval(run, metric) else {})
        for label, by_metric in table.items():
            if metric not in by_metric:
                continue
            steps, mean, std, _ = step_stats(by_metric[metric])
            panel.traces.append(Trace(label, steps, mean, kind="line", color=style[label][0],
                                      band=(list(mean - std), list(mean + std)), legend=metric == metrics[0]))
        gold = _reference_finals(run, [metric])
        if gold:
            panel.traces.append(Trace(f"{run.reference} (final)", [], [gold[metric]], kind="hline", role="gold",
                                      color=GOLD_COLOR, dash=True, legend=metric == metrics[0]))
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
