"""The leaderboard and the cross-run comparison as Markdown and LaTeX tables (``summary.md``,
``summary.tex``); the HTML page builds its sortable table from the same cells."""
from __future__ import annotations

import html
import math
import re
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from erasure.report.data import RunSummary
from erasure.report.meta_eval import meta_eval_markdown
from erasure.results.summary import (FLAGGED, GOLD_GAP, GOLD_GAP_TARGET, HEADLINE, ROLE_METHOD, fmt, fmt_diff,
                                     fmt_interval)
from erasure.results.targets import Target, lookup

MAX_LATEX_METRICS = 4
ROLE_NAMES = {"gold reference": "reference: target", "no-unlearning reference": "reference: no unlearning"}


@dataclass
class Cell:
    text: str
    value: float  # what the column sorts by
    best: bool = False


def target_of(run: RunSummary, metric: str) -> Target | None:
    return GOLD_GAP_TARGET if metric == GOLD_GAP else lookup(metric, run.targets)


def metric_order(run: RunSummary, headline_only: bool = False) -> list[str]:
    """The gold gap, the headline metrics present, then (unless ``headline_only``) the others."""
    metrics = [m for m in run.metrics if m != GOLD_GAP]
    ordered = [m for m in HEADLINE if m in metrics]
    rest = [] if headline_only else [m for m in metrics if m not in ordered]
    return ([GOLD_GAP] if GOLD_GAP in run.metrics else []) + ordered + rest


def rank_text(run: RunSummary, label: str) -> str:
    if run.role(label) != ROLE_METHOD:
        return "ref"
    r = run.record(label, GOLD_GAP)
    return str(r["rank"]) if r and r.get("rank") not in ("", None) else "-"


def mean_cell(run: RunSummary, label: str, metric: str, digits: int = 3) -> Cell:
    r = run.record(label, metric)
    if r is None:
        return Cell("-", math.nan)
    target = target_of(run, metric)
    interval = fmt_interval(r["ci95_low"], r["ci95_high"], target, digits)
    return Cell(f"{fmt(r['mean'], target, digits)} {interval}".strip(), r["mean"], bool(r.get("best")))


def diff_cell(run: RunSummary, label: str, metric: str, digits: int = 3) -> Cell | None:
    """Δ to the reference with its interval, for a metric with a gold target (None otherwise)."""
    target = target_of(run, metric)
    if target is None or target.kind != "gold":
        return None
    r = run.record(label, metric)
    if r is None or label == run.reference or r.get("n_paired", 0) == 0:
        return Cell("", math.nan)
    interval = fmt_interval(r["diff_ci95_low"], r["diff_ci95_high"], target, digits)
    return Cell(f"{fmt_diff(r['diff_vs_reference'], target, digits)} {interval}".strip(), r["diff_vs_reference"])


def header_note(run: RunSummary, metric: str) -> str:
    """``as gold``, ``ideal 1``, ... plus a warning when the metric fails the self-check."""
    target = target_of(run, metric)
    note = target.describe() if target else "no target declared"
    check = run.self_check(metric)
    return f"{note}; self-check: {check}" if check in FLAGGED else note


# ------------------------------------------------------------------------ Markdown
def md_escape(text: Any) -> str:
    """Text for a Markdown table cell or heading: ``&``, ``<`` and ``>`` as HTML entities (viewers
    that render HTML in Markdown show a label ``<script>`` as text), ``|`` escaped, line breaks as spaces."""
    return " ".join(html.escape(str(text), quote=False).replace("|", "\\|").splitlines())


def _md_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]], escape: Callable[[str], str] = str) -> list[str]:
    """A Markdown table; ``rows`` come escaped, ``header`` goes through ``escape``."""
    return [_md_row([escape(h) for h in header]), _md_row(["---"] * len(header)), *(_md_row(r) for r in rows)]


def leaderboard_rows(run: RunSummary, metrics: Sequence[str], mark: Callable[[str, bool], str],
                     escape: Callable[[str], str] = str, digits: int = 3) -> list[list[str]]:
    """Rows of rank, unlearner, then per metric the mean [CI] (``mark(text, best)``) and, for a
    gold target, Δ [CI]; every text goes through ``escape``."""
    rows = []
    for label in run.unlearners:
        row = [rank_text(run, label), escape(label)]
        for m in metrics:
            c = mean_cell(run, label, m, digits)
            row.append(mark(escape(c.text), c.best))
            d = diff_cell(run, label, m, digits)
            if d is not None:
                row.append(escape(d.text))
        rows.append(row)
    return rows


def leaderboard_header(run: RunSummary, metrics: Sequence[str], escape=lambda s: s) -> list[str]:
    header = ["rank", "unlearner"]
    for m in metrics:
        flag = " (!)" if run.self_check(m) in FLAGGED else ""
        header.append(f"{escape(m)}{flag}")
        if diff_cell(run, run.reference, m) is not None:
            header.append(escape(f"Δ {run.reference}"))
    return header


def markdown(runs: Sequence[RunSummary]) -> str:
    """``summary.md``: per run the leaderboard (headline metrics) and every metric in long form;
    for several runs, a comparison table per headline metric."""
    lines = []
    for run in runs:
        metrics = metric_order(run, headline_only=True)
        title, reference, identity = md_escape(run.title), md_escape(run.reference), md_escape(run.identity)
        lines += [f"## {title}", "",
                  f"Mean [95% interval] over {run.seeds} seed(s); Δ: paired difference to {reference} "
                  f"[95% interval]; **bold**: best method; rank: by gold gap (0 = as {reference}); "
                  f"ref: {reference} (target) and {identity} (no unlearning); (!): the metric does not "
                  f"separate {reference} from {identity} in this experiment (self-check).", ""]
        lines += _md_table(leaderboard_header(run, metrics, md_escape),
                           leaderboard_rows(run, metrics, lambda s, best: f"**{s}**" if best else s, md_escape))
        lines += ["", f"### Every metric ({title})", ""]
        rows = []
        for m in metric_order(run):
            for label in run.unlearners:
                c, d = mean_cell(run, label, m), diff_cell(run, label, m)
                if c.text != "-":
                    rows.append([m, header_note(run, m), label, c.text + (" (best)" if c.best else ""), d.text if d else ""])
        lines += _md_table(["metric", "target", "unlearner", "mean [95% CI]", f"Δ {run.reference} [95% CI]"],
                           [[md_escape(c) for c in row] for row in rows], md_escape)
        lines.append("")
        meta = meta_eval_markdown(run.results.directory)
        if meta:
            lines += [f"### Metrics tested as metrics ({run.title})", "", meta, ""]
    if len(runs) > 1:
        lines += ["## Runs compared", ""]
        for metric in comparison_metrics(runs):
            labels = list(dict.fromkeys(u for run in runs for u in run.unlearners))
            rows = [[md_escape(label), *(md_escape(mean_cell(run, label, metric).text) for run in runs)] for label in labels]
            lines += [f"### {md_escape(metric)}", ""] + _md_table(["unlearner", *(run.title for run in runs)], rows,
                                                                  md_escape) + [""]
    return "\n".join(lines)


def comparison_metrics(runs: Sequence[RunSummary]) -> list[str]:
    """Headline metrics (and the gold gap) present in at least two runs."""
    counts: dict[str, int] = {}
    for run in runs:
        for m in metric_order(run, headline_only=True):
            counts[m] = counts.get(m, 0) + 1
    return [m for m, c in counts.items() if c > 1]


# --------------------------------------------------------------------------- LaTeX
_TEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
        "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "Δ": r"$\Delta$", "−": "-"}


def tex_escape(text: Any) -> str:
    return "".join(_TEX.get(ch, ch) for ch in str(text))


def latex(runs: Sequence[RunSummary]) -> str:
    """``summary.tex``: per run a booktabs table of the gold gap and up to four headline metrics
    (mean [95% CI], best in bold, Δ to the reference for gold targets), scaled to the line width;
    needs the ``booktabs`` and ``graphicx`` packages."""
    out = ["% generated by erasure report; needs \\usepackage{booktabs} and \\usepackage{graphicx}"]
    for run in runs:
        metrics = metric_order(run, headline_only=True)[: MAX_LATEX_METRICS + 1]
        header = leaderboard_header(run, metrics, tex_escape)
        rows = leaderboard_rows(run, metrics, lambda s, best: f"\\textbf{{{s}}}" if best else s, tex_escape)
        out += [r"\begin{table}[ht]", r"\centering", r"\resizebox{\linewidth}{!}{%",
                r"\begin{tabular}{" + "r" + "l" + "c" * (len(header) - 2) + "}", r"\toprule",
                " & ".join(header) + r" \\", r"\midrule"]
        out += [" & ".join(row) + r" \\" for row in rows]
        caption = (f"{tex_escape(run.title)}: mean [95\\% interval] over {run.seeds} seed(s); $\\Delta$: paired difference to "
                   f"{tex_escape(run.reference)}; bold: best method; rank by gold gap; ref: the references "
                   f"({tex_escape(run.reference)}, {tex_escape(run.identity)}); (!): fails the self-check.")
        out += [r"\bottomrule", r"\end{tabular}}", f"\\caption{{{caption}}}",
                f"\\label{{tab:{re.sub(r'[^A-Za-z0-9]+', '-', run.title)}}}", r"\end{table}", ""]
    return "\n".join(out)
