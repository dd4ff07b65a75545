"""Statistics over seeds, the gold-gap ranking, the metric self-check and the end-of-run table.

Per (unlearner, metric): mean, standard deviation, 95% confidence interval (Student's t, clipped
to the metric's range) and n, plus the paired difference to the gold reference (GoldModel) with
its interval. Per unlearner: the gold gap (:func:`erasure.results.targets.gold_gap`, seed by seed,
then mean and interval) and its rank among the methods (the references GoldModel and Identity
are not ranked; nothing is ranked when every ranked metric fails the self-check). Per metric: the
self-check, whether it separates GoldModel from Identity on this experiment (one 95% test per
metric, with no correction for testing many metrics: see docs/results.md). ``summary.csv`` holds
all of it; the terminal table shows the headline metrics.
``python -m erasure.summarize`` rebuilds both from any results file or directory.
"""
from __future__ import annotations

import csv
import io
import math
import textwrap
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from erasure.results.targets import DEFAULT_RANKING, Ranking, Target, gold_gap, ideal, lookup
from erasure.results.files import atomic_write_text, escape_cell

REFERENCE = "GoldModel"
IDENTITY = "Identity"
GOLD_GAP = "gold_gap"
GOLD_GAP_TARGET = ideal(0)
ROLE_GOLD, ROLE_IDENTITY, ROLE_METHOD = "gold reference", "no-unlearning reference", "method"
SEPARATES, NO_SEPARATION, WRONG_WAY, UNCHECKED = "separates", "no separation", "wrong way", "n/a"
FLAGGED = (NO_SEPARATION, WRONG_WAY)
SUMMARY_COLUMNS = ["unlearner", "metric", "mean", "std", "ci95_low", "ci95_high", "n", "diff_vs_reference",
                   "diff_ci95_low", "diff_ci95_high", "n_paired", "reference", "target", "role", "rank", "best", "self_check",
                   "std_unlearning"]
# The end-of-run table's candidate columns, most important first; what does not fit goes to summary.csv.
HEADLINE = ("accuracy_forget", "umia_accuracy", "accuracy_test", "accuracy_retain", "entropy_mia_member_rate",
            "mia_efficacy", "ulira_auc", "forgetting_quality", "probe_accuracy", "task_accuracy", "wall_seconds")
TABLE_WIDTH = 120

Seeds = dict[Any, float]


def mean_ci(values: Iterable[float], confidence: float = 0.95) -> tuple[float, float, float, float, int]:
    """(mean, sample std, CI low, CI high, n): the t-interval mean ± t_{(1+c)/2, n−1}·std/√n (NaN for n < 2)."""
    from scipy import stats

    arr = np.asarray(list(values), float)
    n = len(arr)
    if n == 0:
        return (math.nan,) * 4 + (0,)
    mean = float(arr.mean())
    if n < 2:
        return mean, math.nan, math.nan, math.nan, n
    std = float(arr.std(ddof=1))
    half = float(stats.t.ppf((1 + confidence) / 2, n - 1)) * std / math.sqrt(n)
    return mean, std, mean - half, mean + half, n


def _final_runs(rows: Iterable[dict[str, Any]]) -> dict[tuple[str, str], dict[tuple, dict[str, float]]]:
    """Final (non-trajectory) finite ``ok`` values by (unlearner, metric), (config, seed) and
    unlearning seed ("" without unlearning seeds), after the last deletion request where there are
    several; a later row for the same key, e.g. from a rerun, replaces an earlier one."""
    runs: dict[tuple[str, str], dict[tuple, dict[str, float]]] = defaultdict(lambda: defaultdict(dict))
    rows = list(rows)
    last_request: dict[tuple, int] = {}  # with several deletion requests, the state after the last one
    for row in rows:
        if row.get("request") not in (None, ""):
            job = (row.get("config_hash", ""), str(row.get("seed")), row["unlearner"])
            last_request[job] = max(last_request.get(job, -1), int(row["request"]))
    for row in rows:
        if row.get("status") != "ok" or row.get("step") not in (None, ""):
            continue
        if row.get("request") not in (None, "") and \
                int(row["request"]) != last_request[(row.get("config_hash", ""), str(row.get("seed")), row["unlearner"])]:
            continue
        try:
            value = float(row["value"])
        except (TypeError, ValueError):
            continue
        seed = (row.get("config_hash", ""), str(row.get("seed")))
        unlearning = "" if row.get("unlearning_seed") in (None, "") else str(row["unlearning_seed"])
        by_unlearning = runs[(row["unlearner"], row["metric"])][seed]
        if math.isfinite(value):
            by_unlearning[unlearning] = value
        else:
            by_unlearning.pop(unlearning, None)
    return runs


def final_values(rows: Iterable[dict[str, Any]]) -> dict[tuple[str, str], Seeds]:
    """Final values by (unlearner, metric) and (config, seed); with ``unlearning_seeds``, the mean
    over a seed's unlearning runs, so seeds (originals) stay the units of intervals and pairing."""
    grouped: dict[tuple[str, str], Seeds] = defaultdict(dict)
    for key, by_seed in _final_runs(rows).items():
        for seed, values in by_seed.items():
            if values:
                grouped[key][seed] = float(np.mean(list(values.values())))
    return grouped


def unlearning_spread(rows: Iterable[dict[str, Any]]) -> dict[tuple[str, str], float]:
    """The variance from the unlearning seed alone: per (unlearner, metric), the pooled standard
    deviation across each original's unlearning runs (NaN with fewer than two runs per original)."""
    out = {}
    for key, by_seed in _final_runs(rows).items():
        variances = [np.var(list(v.values()), ddof=1) for v in by_seed.values() if len(v) >= 2]
        out[key] = float(np.sqrt(np.mean(variances))) if variances else math.nan
    return out


def trajectory_table(rows: Iterable[dict[str, Any]]) -> dict[str, dict[str, dict[int, list[float]]]]:
    """unlearner → metric → step → values over seeds, from the ``ok`` rows that carry a step."""
    table: dict[str, dict[str, dict[int, list[float]]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    for row in rows:
        if row.get("status") != "ok" or row.get("step") in (None, ""):
            continue
        try:
            value = float(row["value"])
        except (TypeError, ValueError):
            continue
        if math.isfinite(value):
            table[row["unlearner"]][row["metric"]][int(float(row["step"]))].append(value)
    return table


def check_metric(gold: Seeds, identity: Seeds, target: Target | None) -> str:
    """The self-check of one metric on one experiment: does it separate GoldModel from Identity?

    Over the seeds both have (at least two), the paired per-seed difference d is taken: for an
    "as gold" target d = m_Identity − m_Gold, for an ideal one d = |m_Identity − ideal| −
    |m_Gold − ideal|. "separates" when d's 95% t-interval excludes 0 (for an ideal: lies above
    0; for a one-sided gold target such as ForgettingQuality's: lies on the worse side), "wrong
    way" when Identity is significantly closer to the ideal (or beyond gold) than GoldModel, "no
    separation" otherwise, "n/a" when it cannot be checked, "" for a metric without target.
    """
    if target is None or target.kind == "none":
        return ""
    shared = [s for s in gold if s in identity]
    if len(shared) < 2:
        return UNCHECKED
    if target.kind == "gold":
        d = [identity[s] - gold[s] for s in shared]
    else:
        d = [abs(identity[s] - target.value) - abs(gold[s] - target.value) for s in shared]
    _, _, low, high, _ = mean_ci(d)
    if target.kind == "gold" and target.direction is not None:  # one-sided: Identity should fall short of gold
        short, beyond = (high < 0, low > 0) if target.direction == "higher" else (low > 0, high < 0)
        return SEPARATES if short else WRONG_WAY if beyond else NO_SEPARATION
    if low > 0 or (target.kind == "gold" and high < 0):
        return SEPARATES
    return WRONG_WAY if high < 0 else NO_SEPARATION


def seed_gold_gaps(grouped: Mapping[tuple[str, str], Seeds], reference: str,
                   targets: Mapping[str, Target], ranking: Ranking = DEFAULT_RANKING) -> dict[str, Seeds]:
    """Each unlearner's gold gap per seed, over the metrics with a gold target (those ``ranking``
    names) that the reference has on that seed (a seed where the unlearner lacks one of them is
    left out)."""
    gold_metrics = {m: by_seed for (u, m), by_seed in grouped.items()
                    if u == reference and ranking.ranks_on(m, lookup(m, targets))}
    seeds = {s for by_seed in gold_metrics.values() for s in by_seed}
    by_unlearner: dict[str, dict[Any, dict[str, float]]] = defaultdict(lambda: defaultdict(dict))
    for (u, m), by_seed in grouped.items():
        if m in gold_metrics:
            for s, v in by_seed.items():
                by_unlearner[u][s][m] = v
    out: dict[str, Seeds] = {}
    for u, values in by_unlearner.items():
        gaps = {}
        for s in seeds:
            gap = gold_gap(values.get(s, {}), {m: g[s] for m, g in gold_metrics.items() if s in g}, targets, ranking)
            if math.isfinite(gap):
                gaps[s] = gap
        if gaps:
            out[u] = gaps
    return out


def _clip_pair(low: float, high: float, target: Target | None, diff: bool = False) -> tuple[float, float]:
    if target is None:
        return low, high
    if diff:  # a difference of two values in [low, high] lies in [−width, width]
        width = target.width
        return (max(low, -width), min(high, width)) if math.isfinite(width) else (low, high)
    return target.clip(low), target.clip(high)


def _record(unlearner: str, metric: str, by_seed: Seeds, ref: Seeds | None, target: Target | None,
            reference: str) -> dict[str, Any]:
    mean, std, low, high, n = mean_ci(by_seed.values())
    low, high = _clip_pair(low, high, target)
    record = {"unlearner": unlearner, "metric": metric, "target": target.describe() if target else "",
              "mean": mean, "std": std, "ci95_low": low, "ci95_high": high, "n": n, "reference": reference,
              "diff_vs_reference": math.nan, "diff_ci95_low": math.nan, "diff_ci95_high": math.nan, "n_paired": 0}
    if ref is not None and unlearner != reference:
        shared = [s for s in by_seed if s in ref]
        if shared:
            d_mean, _, d_low, d_high, d_n = mean_ci(by_seed[s] - ref[s] for s in shared)
            d_low, d_high = _clip_pair(d_low, d_high, target, diff=True)
            record.update(diff_vs_reference=d_mean, diff_ci95_low=d_low, diff_ci95_high=d_high, n_paired=d_n)
    return record


def ranked_metrics(metrics: Iterable[str], targets: Mapping[str, Target], ranking: Ranking = DEFAULT_RANKING) -> list[str]:
    """The terms of the gold gap among ``metrics``."""
    return [m for m in metrics if ranking.ranks_on(m, lookup(m, targets))]


def summarize(rows: Iterable[dict[str, Any]], reference: str = REFERENCE, targets: Mapping[str, Target] | None = None,
              identity: str = IDENTITY, ranking: Ranking = DEFAULT_RANKING) -> list[dict[str, Any]]:
    """One record per (unlearner, metric) and one per unlearner for ``gold_gap``; see
    :data:`SUMMARY_COLUMNS`. The paired difference (this unlearner − ``reference``) is taken seed
    by seed over the seeds both have. Without ``targets`` nothing is ranked or checked. When every
    metric of the gold gap fails the self-check, nothing is ranked and the gold gap's self-check
    says "no separation"."""
    targets = targets or {}
    rows = list(rows)
    grouped = {k: v for k, v in final_values(rows).items() if v}  # drop keys with only non-finite values
    spread = unlearning_spread(rows)
    unlearners = list(dict.fromkeys(u for u, _ in grouped))
    metrics = list(dict.fromkeys(m for _, m in grouped))
    records = {(u, m): _record(u, m, by_seed, grouped.get((reference, m)), lookup(m, targets), reference)
               for (u, m), by_seed in grouped.items()}
    for u, gaps in seed_gold_gaps(grouped, reference, targets, ranking).items():
        records[(u, GOLD_GAP)] = _record(u, GOLD_GAP, gaps, None, GOLD_GAP_TARGET, reference)
    checks = {m: check_metric(grouped.get((reference, m), {}), grouped.get((identity, m), {}), lookup(m, targets))
              for m in metrics}
    terms = ranked_metrics([m for m in metrics if (reference, m) in grouped], targets, ranking)
    if terms and all(checks[m] in FLAGGED for m in terms):
        checks[GOLD_GAP] = NO_SEPARATION  # nothing to rank on: every term fails the self-check
    role = {u: ROLE_GOLD if u == reference else ROLE_IDENTITY if u == identity else ROLE_METHOD for u in unlearners}
    gaps = {u: r["mean"] for (u, m), r in records.items() if m == GOLD_GAP and role[u] == ROLE_METHOD
            and checks.get(GOLD_GAP) not in FLAGGED}
    rank = {u: 1 + sum(other < g for other in gaps.values()) for u, g in gaps.items()}
    for (u, m), r in records.items():
        r.update(role=role[u], rank=rank.get(u, ""), self_check=checks.get(m, ""), best=False,
                 std_unlearning=spread.get((u, m), math.nan))
    _mark_best(records, reference, targets, identity)
    order = sorted(unlearners, key=lambda u: (role[u] == ROLE_METHOD, role[u] == ROLE_IDENTITY, u not in rank,
                                              rank.get(u, 0), unlearners.index(u)))
    return [records[(u, m)] for u in order for m in [GOLD_GAP, *metrics] if (u, m) in records]


def _mark_best(records: dict[tuple[str, str], dict[str, Any]], reference: str, targets: Mapping[str, Target],
               identity: str = IDENTITY) -> None:
    """Set ``best`` on the method(s) closest to each metric's target (not for flagged metrics), and
    only where strictly closer than Identity's value: no unlearning is never the best one can do."""
    by_metric: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for (_, m), r in records.items():
        if r["role"] == ROLE_METHOD and r["self_check"] not in FLAGGED and math.isfinite(r["mean"]):
            by_metric[m].append(r)
    for m, candidates in by_metric.items():
        target = GOLD_GAP_TARGET if m == GOLD_GAP else lookup(m, targets)
        if target is None:
            continue
        gold = records.get((reference, m), {}).get("mean")
        scores = [target.distance(r["mean"], gold) for r in candidates]
        finite = [s for s in scores if math.isfinite(s)]
        bar = target.distance(records[(identity, m)]["mean"], gold) if (identity, m) in records else math.nan
        if finite:
            for r, s in zip(candidates, scores):
                r["best"] = s <= min(finite) + 1e-12 and not s >= bar - 1e-12


def write_summary(records: list[dict[str, Any]], path: str | Path) -> None:
    """``summary.csv``, written atomically; text cells escaped as in the results CSV."""
    out = io.StringIO()
    writer = csv.DictWriter(out, SUMMARY_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows([{k: escape_cell(v) for k, v in r.items()} for r in records])
    atomic_write_text(path, out.getvalue())


# ------------------------------------------------------------------------------ formatting
def _bounded(target: Target | None) -> bool:
    return target is not None and math.isfinite(target.width) and max(abs(target.low), abs(target.high)) <= 10


def fmt(value: Any, target: Target | None = None, digits: int = 3, rounding: str = "nearest", tiny: bool = True) -> str:
    """One number: fixed ``digits`` decimals for a metric with a small finite range (0.000 to 1.000),
    ``digits`` significant digits otherwise or, with ``tiny``, where fixed decimals would show a
    non-zero value as 0 (a mutual information of 7e-05 nats); "-" for a missing value. ``rounding``
    "down" or "up" rounds fixed decimals outwards (for interval bounds, so they hold the mean)."""
    if value is None or value == "" or (isinstance(value, float) and math.isnan(value)):
        return "-"
    value = float(value)
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if _bounded(target) and (value == 0 or abs(value) >= 0.5 * 10 ** -digits or not tiny):
        if rounding != "nearest":
            scale = 10 ** digits
            value = (math.floor if rounding == "down" else math.ceil)(round(value * scale, 6)) / scale
        text = f"{value:.{digits}f}"
    else:
        text = f"{value:.{digits}g}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text


def fmt_interval(low: float, high: float, target: Target | None = None, digits: int = 3) -> str:
    """``[low, high]``, fixed decimals rounded outwards (significant digits when both ends are tiny)."""
    if math.isnan(low):
        return ""
    tiny = max(abs(low), abs(high)) < 0.5 * 10 ** -digits
    return f"[{fmt(low, target, digits, 'down', tiny)}, {fmt(high, target, digits, 'up', tiny)}]"


def fmt_diff(value: float, target: Target | None = None, digits: int = 3) -> str:
    """A signed difference, in the metric's fixed decimals (a difference too small to show is +0.000)."""
    text = fmt(value, target, digits, tiny=False)
    return text if text in ("-", "inf", "-inf") or text.startswith("-") else "+" + text


def format_table(records: list[dict[str, Any]], targets: Mapping[str, Target] | None = None) -> str:
    """The long table: one block per metric (its target and self-check in the block's title), one
    line per unlearner: rank, mean, 95% CI, n, the paired difference to the reference and its 95% CI."""
    if not records:
        return "(no results)"
    targets = targets or {}
    by_metric: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        by_metric[r["metric"]].append(r)
    reference = records[0].get("reference", REFERENCE)
    header = ["unlearner", "rank", "mean", "95% CI", "n", f"Δ vs {reference}", "95% CI of Δ"]
    blocks: list[tuple[str, list[list[str]]]] = []
    for m, group in by_metric.items():
        target = GOLD_GAP_TARGET if m == GOLD_GAP else lookup(m, targets)
        check = group[0].get("self_check", "")
        title = " · ".join(x for x in (m, group[0].get("target") or "no target declared",
                                       f"self-check: {check}" if check else "") if x)
        body = [[r["unlearner"], "ref" if r.get("role", ROLE_METHOD) != ROLE_METHOD else str(r.get("rank", "")),
                 fmt(r["mean"], target) + ("*" if r.get("best") else ""), fmt_interval(r["ci95_low"], r["ci95_high"], target),
                 str(r["n"]), "" if r["unlearner"] == reference else fmt_diff(r.get("diff_vs_reference", math.nan), target),
                 fmt_interval(r.get("diff_ci95_low", math.nan), r.get("diff_ci95_high", math.nan), target)]
                for r in group]
        blocks.append((title, body))
    widths = [max(len(row[i]) for _, body in blocks for row in [header, *body]) for i in range(len(header))]

    def line(row: list[str]) -> str:
        return ("  " + "  ".join(v.ljust(w) for v, w in zip(row, widths))).rstrip()

    lines = []
    for title, body in blocks:
        lines += [title, line(header), *map(line, body), ""]
    lines.append(f"* best method per metric; rank: by gold gap; ref: the references; Δ: paired difference to {reference}")
    return "\n".join(lines)


def column_order(metrics: Iterable[str], headline: Iterable[str], check: Mapping[str, str]) -> list[str]:
    """The order in which the end-of-run table fills its columns: the metrics that pass (or skip) the
    self-check before those it flags, each group in :data:`HEADLINE` priority (forget, MIA, test,
    retain, ...) and then in the results' order."""
    metrics = list(metrics)
    priority = [h for h in headline if h in metrics] + [m for m in metrics if m not in headline]
    return sorted(priority, key=lambda m: check.get(m, "") in FLAGGED)


def _clip_text(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def ranking_notes(metrics: Iterable[str], targets: Mapping[str, Target], ranking: Ranking = DEFAULT_RANKING,
                  reference: str = REFERENCE) -> list[str]:
    """What the gold gap is made of, and a warning when one evaluator supplies most of its terms."""
    terms = ranked_metrics(metrics, targets, ranking)
    if not terms:
        return []
    weighing = "each evaluator's terms averaged first, then the evaluators" if ranking.weights == "evaluator" \
        else "every metric alike"
    notes = [f"Rank by gold gap: |m − m_{reference}| / range over {', '.join(terms)} ({weighing}; 0 = as {reference})."]
    by_family = Ranking(ranking.metrics, "evaluator").families(terms, targets)
    family, members = max(by_family.items(), key=lambda kv: len(kv[1]))
    if len(by_family) > 1 and 2 * len(members) > len(terms):
        weight = (f"it weighs as 1 of {len(by_family)} evaluators" if ranking.weights == "evaluator"
                  else "it decides most of the gap; \"ranking\": {\"weights\": \"evaluator\"} weighs evaluators alike")
        notes.append(f"Warning: {family} supplies {len(members)} of the {len(terms)} gold-gap terms ({weight}); "
                     "\"ranking\": {\"metrics\": [...]} names the metrics to rank on.")
    return notes


def format_wide(records: list[dict[str, Any]], targets: Mapping[str, Target] | None = None,
                max_width: int = TABLE_WIDTH, headline: Iterable[str] = HEADLINE,
                ranking: Ranking = DEFAULT_RANKING) -> str:
    """The end-of-run table: one row per unlearner (references first, then by gold-gap rank), the
    gold gap and as many headline metrics as fit in ``max_width`` characters, each as
    "mean [95% CI]" (and the paired Δ to gold for an "as gold" metric); ``*`` marks the best
    method per column, ``!`` a metric that fails the self-check. Never wider than ``max_width``."""
    if not records:
        return "(no results)"
    targets = targets or {}
    reference = records[0].get("reference", REFERENCE)
    cells = {(r["unlearner"], r["metric"]): r for r in records}
    role = {r["unlearner"]: r.get("role", ROLE_METHOD) for r in records}
    check = {r["metric"]: r.get("self_check", "") for r in records}
    unlearners = list(role)
    identity = next((u for u, ro in role.items() if ro == ROLE_IDENTITY), IDENTITY)
    metrics = [m for m in check if m != GOLD_GAP]
    ranked = GOLD_GAP in check

    def mean_cell(u: str, m: str, target: Target | None, interval: bool = True) -> str:
        r = cells.get((u, m))
        if r is None:
            return "-"
        text = fmt(r["mean"], target) + ("*" if r.get("best") else " ")
        return f"{text} {fmt_interval(r['ci95_low'], r['ci95_high'], target, digits=2) if interval else ''}".rstrip()

    def column(header: str, sub: str, values: list[str]) -> tuple[list[str], int]:
        texts = [header, sub, *values]
        return texts, max(len(t) for t in texts)

    ranks = ["ref" if role[u] != ROLE_METHOD else str(cells.get((u, GOLD_GAP), {}).get("rank") or "-") for u in unlearners]
    columns = [column("rank", "", ranks), column("unlearner", "", [_clip_text(u, 24) for u in unlearners])]
    if ranked:
        columns.append(column("gold gap", "ideal 0", [mean_cell(u, GOLD_GAP, GOLD_GAP_TARGET, False) for u in unlearners]))
    width = sum(w for _, w in columns) + 2 * (len(columns) - 1)
    shown = []
    for m in column_order(metrics, headline, check):
        target = lookup(m, targets)
        new = [column(m + (" !" if check[m] in FLAGGED else ""), target.describe() if target else "",
                      [mean_cell(u, m, target) for u in unlearners])]
        if target is not None and target.kind == "gold":
            new.append(column("", "Δ gold", ["" if u == reference or (u, m) not in cells
                                             else fmt_diff(cells[(u, m)]["diff_vs_reference"], target) for u in unlearners]))
        extra = sum(w + 2 for _, w in new)
        if width + extra > max_width:
            break  # never let a later (lower-priority, or flagged) metric take the place of this one
        columns += new
        width += extra
        shown.append(m)
    lines = ["  ".join(texts[i].ljust(w) for texts, w in columns).rstrip() for i in range(len(unlearners) + 2)]
    lines.insert(2, "  ".join("-" * w for _, w in columns))
    seeds = max(r["n"] for r in records)
    notes = [f"Cells: mean over {seeds} seed(s) [95% CI, clipped to the metric's range]; Δ: paired difference to "
             f"{reference}; * best method per column; ref: the references ({reference}: the target, "
             f"{identity}: no unlearning)."]
    if ranked:
        notes += ranking_notes(metrics, targets, ranking, reference)
        if check[GOLD_GAP] in FLAGGED:
            notes.append(f"Not ranked: every metric of the gold gap fails the self-check (none separates {reference} "
                         f"from {identity} here), so a rank would order noise.")
        elif (identity, GOLD_GAP) in cells:
            bar = cells[(identity, GOLD_GAP)]["mean"]
            gaps = [r["mean"] for (u, m), r in cells.items() if m == GOLD_GAP and role[u] == ROLE_METHOD]
            notes.append(f"{identity} (no unlearning) has gold gap {fmt(bar, GOLD_GAP_TARGET)}: "
                         f"{sum(g < bar for g in gaps)} of {len(gaps)} method(s) are closer to {reference}.")
    flagged = [m for m in metrics if check[m] in FLAGGED]
    if flagged:
        notes.append(f"! self-check: these metrics do not separate {reference} from {identity} here, do not rank on "
                     f"them alone: {', '.join(flagged)}.")
    elif any(check[m] == UNCHECKED for m in metrics):
        notes.append(f"Self-check not run: it needs {reference} and {identity} on at least two seeds.")
    rest = [m for m in metrics if m not in shown]
    if rest:
        notes.append(f"Also in summary.csv: {', '.join(rest)}.")
    lines.append("")
    for note in notes:
        lines += textwrap.wrap(note, max_width)
    return "\n".join(lines)


def headline(rows: Iterable[dict[str, Any]], targets: Mapping[str, Target] | None = None, limit: int = 4) -> str:
    """One job's headline metrics on one line, e.g. ``accuracy_forget 0.000, umia_accuracy 0.957``
    (final ``ok`` values in :data:`HEADLINE` order, then the job's errors), for a log line."""
    rows = list(rows)
    targets = targets or {}
    values = {r["metric"]: r["value"] for r in rows if r.get("status") == "ok" and r.get("step") in (None, "")}
    parts = [f"{m} {fmt(float(values[m]), lookup(m, targets))}" for m in HEADLINE if m in values][:limit]
    errors = [r["metric"] for r in rows if r.get("status") == "error"]
    if errors:
        parts.append(f"{len(errors)} error(s): {', '.join(errors)}")
    return ", ".join(parts) if parts else "no metrics"
