"""The report page: one self-contained HTML file (plotly.js embedded once, no network at view
time) with a sortable leaderboard, the self-check and the figures of each run, and, for several
runs, the comparison. Script errors are caught into ``#script-errors`` so that a headless browser
(and a reader) can see them."""
from __future__ import annotations

import datetime
import html
import json
import math
from typing import Any, Sequence

import numpy as np

from erasure import __version__
from erasure.report import figures as F
from erasure.report import tables as T
from erasure.report.data import RunSummary
from erasure.report.meta_eval import meta_eval_html
from erasure.results.summary import FLAGGED, GOLD_GAP, SEPARATES, UNCHECKED, fmt, fmt_diff, fmt_interval, ranked_metrics

PANEL_HEIGHT = 380
LEGEND_ENTRY = 30  # pixels per legend entry: the figure grows so that its legend never scrolls

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;max-width:1280px;padding:0 24px 48px;color:#222;line-height:1.45}
h1{margin:24px 0 4px}h2{margin-top:40px;border-bottom:2px solid #ddd;padding-bottom:4px}h3{margin-top:28px}
nav a{margin-right:14px}.meta{color:#555;font-size:.9em}.note{color:#444;font-size:.9em;max-width:1000px}
.table-wrap{display:inline-block;max-width:100%;overflow:auto;border:1px solid #ddd;max-height:80vh;vertical-align:top}
table{border-collapse:collapse;font-size:.82em;white-space:nowrap}
th,td{padding:4px 8px;border-bottom:1px solid #eee;text-align:right}
th{background:#f6f6f6;position:sticky;top:0;z-index:2;vertical-align:bottom}
table.sortable th{cursor:pointer}table.sortable th:hover{background:#e9eef6}
th .sub{display:block;font-weight:normal;color:#666;font-size:.9em}
td.label,th.label{text-align:left;position:sticky;left:0;background:#fff;z-index:1}th.label{z-index:3;background:#f6f6f6}
td.best{font-weight:bold;background:#e6f4ea}td.flagged,th.flagged{color:#888}
tr.ref td{background:#fbf7ea}tr.ref td.label{background:#fbf7ea}
.badge{display:inline-block;padding:0 6px;border-radius:8px;font-size:.85em;font-weight:normal}
.ok{background:#e6f4ea;color:#1e6b34}.warn{background:#fdecd2;color:#8a4b00}.bad{background:#fbe0e0;color:#9b1c1c}.na{background:#eee;color:#555}
figure{margin:16px 0 28px}figcaption{color:#444;font-size:.9em;max-width:1000px}
#script-errors:empty{display:none}#script-errors{color:#9b1c1c;border:1px solid #9b1c1c;padding:8px}
"""

CATCH_ERRORS = """window.reportErrors=[];
window.addEventListener('error',function(e){window.reportErrors.push(String(e.message||e));});
window.addEventListener('unhandledrejection',function(e){window.reportErrors.push('unhandled rejection: '+String(e.reason));});"""

SORT_AND_REPORT = """
document.querySelectorAll('table.sortable').forEach(function(table){
  table.querySelectorAll('th[data-col]').forEach(function(th){
    th.addEventListener('click',function(){
      var col=+th.dataset.col, asc=th.dataset.dir!=='asc', body=table.tBodies[0];
      table.querySelectorAll('th[data-col]').forEach(function(h){delete h.dataset.dir;});
      th.dataset.dir=asc?'asc':'desc';
      var rows=Array.prototype.slice.call(body.rows);
      rows.sort(function(a,b){
        var x=a.cells[col].dataset.v, y=b.cells[col].dataset.v, fx=parseFloat(x), fy=parseFloat(y);
        if(isNaN(fx)&&isNaN(fy)) return asc?String(x).localeCompare(y):String(y).localeCompare(x);
        if(isNaN(fx)) return 1; if(isNaN(fy)) return -1;
        return asc?fx-fy:fy-fx;});
      rows.forEach(function(r){body.appendChild(r);});
    });
  });
});
window.addEventListener('load',function(){
  var box=document.getElementById('script-errors');
  box.textContent=window.reportErrors.join('\\n');
  document.body.setAttribute('data-script-errors',String(window.reportErrors.length));
});"""


def esc(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _num(value: float) -> str:
    return "" if value is None or (isinstance(value, float) and not math.isfinite(value)) else repr(float(value))


def _json_list(values: Any) -> list:
    return [None if isinstance(v, float) and not math.isfinite(v) else v for v in values]


# ---------------------------------------------------------------------------- figures
def _rgba(color: str, alpha: float) -> str:
    """``#rrggbb`` → ``rgba(r,g,b,alpha)``."""
    r, g, b = (int(color[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def _plotly_traces(trace: F.Trace, panel: F.Panel) -> list[Any]:
    import plotly.graph_objects as go

    group = trace.group or trace.name
    common = dict(name=trace.name, legendgroup=group, showlegend=trace.legend)
    if trace.kind == "points":
        def error(center, bounds):
            if bounds is None:
                return None
            c = np.asarray(center, float)
            hi, lo = np.asarray(bounds[1], float) - c, c - np.asarray(bounds[0], float)
            return dict(type="data", symmetric=False, array=_json_list(hi.clip(min=0)),
                        arrayminus=_json_list(lo.clip(min=0)), color=trace.color, thickness=1.2, width=3)

        outline = dict(width=2, color=trace.color) if trace.hollow else dict(width=0.5, color="white")
        return [go.Scatter(x=trace.x, y=_json_list(trace.y), mode="markers", opacity=trace.opacity,
                           marker=dict(symbol=trace.symbol + ("-open" if trace.hollow else ""), color=trace.color,
                                       size=trace.size * (1.6 if trace.role == "gold" else 1), line=outline),
                           error_x=error(trace.x, trace.x_error), error_y=error(trace.y, trace.y_error),
                           hovertext=trace.text, **common)]
    if trace.kind == "line":
        out = [go.Scatter(x=trace.x, y=_json_list(trace.y), mode="lines+markers", line=dict(color=trace.color),
                          marker=dict(size=5), **common)]
        if trace.band is not None:
            out.append(go.Scatter(x=list(trace.x) + list(trace.x)[::-1], y=_json_list(list(trace.band[1]) + list(trace.band[0])[::-1]),
                                  mode="lines", fill="toself", fillcolor=_rgba(trace.color, 0.15), line=dict(width=0),
                                  hoverinfo="skip", showlegend=False, legendgroup=group, name=trace.name))
        return out
    if trace.kind == "hline":
        xs = [x for t in panel.traces if t.kind == "line" for x in t.x] or [0, 1]
        return [go.Scatter(x=[min(xs), max(xs)], y=[trace.y[0]] * 2, mode="lines",
                           line=dict(color=trace.color, dash="dash", width=1.5), **common)]
    return [go.Violin(x=trace.x, y=_json_list(trace.y), line_color=trace.color, fillcolor=_rgba(trace.color, 0.5),
                      spanmode="hard", box=dict(visible=True, width=0.12, fillcolor="rgba(255,255,255,0.8)"),
                      meanline_visible=True, points=False, **common)]


def _integer_step(panel: F.Panel, axis: str) -> int | None:
    """A whole-number tick step (about ten ticks) for an integer axis, else None (Plotly's choice)."""
    if not getattr(panel, f"{axis}_integer"):
        return None
    values = [float(v) for t in panel.traces for v in getattr(t, axis) if v is not None] or [0.0, 1.0]
    return max(1, math.ceil((max(values) - min(values)) / 10))


def plotly_figure(figure: F.Figure) -> Any:
    """The Plotly figure of a :class:`~erasure.report.figures.Figure`."""
    from plotly.subplots import make_subplots

    n = len(figure.panels)
    cols = max(1, min(figure.columns, n))
    rows = math.ceil(n / cols)
    titles = [p.title for p in figure.panels] if n > 1 else None  # one panel: the section heading names it
    categorical = any(p.categorical_x for p in figure.panels)  # rotated labels below each panel need room
    height = (PANEL_HEIGHT + (120 if categorical else 0)) * rows
    twin = any(p.y2_label for p in figure.panels)
    specs = [[{"secondary_y": True} for _ in range(cols)] for _ in range(rows)] if twin else None
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=titles, specs=specs,
                        horizontal_spacing=(0.16 if twin else 0.12) if cols > 1 else 0.02,
                        vertical_spacing=min(0.3, (200 if categorical else 90) / height) if rows > 1 else 0.1)
    for i, panel in enumerate(figure.panels):
        r, c = i // cols + 1, i % cols + 1
        where = dict(row=r, col=c)
        for trace in panel.traces:
            for t in _plotly_traces(trace, panel):
                fig.add_trace(t, **where, **({"secondary_y": trace.axis == "y2"} if twin else {}))
        grey = dict(title_font_color="#999999")
        fig.update_xaxes(title_text=None if panel.categorical_x else panel.x_label, type="log" if panel.x_log else None,
                         range=F.axis_range(panel, "x"), dtick=1 if panel.x_log else _integer_step(panel, "x"),
                         **(grey if "x" in panel.flagged else {}), **where)
        fig.update_yaxes(title_text=panel.y_label, range=F.axis_range(panel, "y"), dtick=_integer_step(panel, "y"),
                         **(grey if "y" in panel.flagged else {}), **where, **({"secondary_y": False} if twin else {}))
        if panel.y2_label:
            fig.update_yaxes(title_text=panel.y2_label, range=F.axis_range(panel, "y2"), showgrid=False,
                             secondary_y=True, **where)
    entries = len({t.name for p in figure.panels for t in p.traces if t.legend})
    # one tick style everywhere: 10⁻³ on log axes (no SI prefixes such as 10µ beside 0.001)
    fig.update_xaxes(exponentformat="power", showexponent="all")
    fig.update_yaxes(exponentformat="power", showexponent="all")
    fig.update_layout(height=max(height + 40, LEGEND_ENTRY * entries + 100), template="plotly_white",
                      margin=dict(l=60, r=20, t=40, b=60),
                      # side by side only on category axes: on a numeric one it would move points off their values
                      scattermode="group" if categorical else "overlay", scattergap=0.7,
                      legend=dict(x=1.02, y=1, xanchor="left", yanchor="top", font=dict(size=11), itemsizing="constant"),
                      violinmode="overlay", font=dict(size=12))
    return fig


def figure_html(figure: F.Figure, div_id: str) -> str:
    import plotly.io as pio

    plot = pio.to_html(plotly_figure(figure), full_html=False, include_plotlyjs=False, div_id=div_id,
                       config={"displaylogo": False, "responsive": True})
    return (f'<figure class="report-figure" data-figure="{esc(figure.key)}"><h3>{esc(figure.title)}</h3>{plot}'
            f"<figcaption>{esc(figure.caption)}</figcaption></figure>")


# ----------------------------------------------------------------------------- tables
def _check_badge(check: str) -> str:
    if not check:
        return ""
    kind = "ok" if check == SEPARATES else "bad" if check == "wrong way" else "warn" if check in FLAGGED else "na"
    return f'<span class="badge {kind}" title="self-check">{esc(check)}</span>'


def leaderboard_html(run: RunSummary, index: int) -> str:
    """The sortable leaderboard: every metric, mean [95% CI], Δ to the reference [95% CI] for gold
    targets, best per column highlighted, flagged metrics greyed."""
    metrics = T.metric_order(run)
    heads = ['<th data-col="0">rank</th>', '<th class="label" data-col="1">unlearner</th>']
    col = 2
    for m in metrics:
        flagged = " flagged" if run.self_check(m) in FLAGGED else ""
        note = T.target_of(run, m)
        heads.append(f'<th class="metric{flagged}" data-col="{col}" data-metric="{esc(m)}">{esc(F.metric_label(m))}'
                     f'<span class="sub">{esc(note.describe() if note else "no target declared")} '
                     f"{_check_badge(run.self_check(m))}</span></th>")
        col += 1
        if T.diff_cell(run, run.reference, m) is not None:
            heads.append(f'<th class="diff{flagged}" data-col="{col}">Δ {esc(run.reference)}<span class="sub">{esc(m)}</span></th>')
            col += 1
    body = []
    for label in run.unlearners:
        rank = T.rank_text(run, label)
        role = run.role(label)
        ref = role != "method"
        cells = [f'<td data-v="{0 if ref else esc(rank)}">{esc(rank)}</td>',
                 f'<td class="label" data-v="{esc(label)}">{esc(label)}'
                 + (f' <span class="badge na">{esc(T.ROLE_NAMES.get(role, role))}</span>' if ref else "") + "</td>"]
        for m in metrics:
            flagged = " flagged" if run.self_check(m) in FLAGGED else ""
            c = T.mean_cell(run, label, m)
            cells.append(f'<td class="{"best" if c.best else ""}{flagged}" data-v="{_num(c.value)}">{esc(c.text)}</td>')
            d = T.diff_cell(run, label, m)
            if d is not None:
                cells.append(f'<td class="diff{flagged}" data-v="{_num(d.value)}">{esc(d.text)}</td>')
        body.append(f'<tr class="{"ref" if ref else "method"}" data-unlearner="{esc(label)}">{"".join(cells)}</tr>')
    return (f'<div class="table-wrap"><table class="sortable leaderboard" id="leaderboard-{index}">'
            f'<thead><tr>{"".join(heads)}</tr></thead><tbody>{"".join(body)}</tbody></table></div>')


def self_check_html(run: RunSummary) -> str:
    """Per metric with a target: the reference's and Identity's means, their paired difference and the verdict."""
    rows = []
    for m in T.metric_order(run):
        check = run.self_check(m)
        if not check:
            continue
        target = T.target_of(run, m)
        gold, ident = run.record(run.reference, m), run.record(run.identity, m)
        diff = (f"{fmt_diff(ident['diff_vs_reference'], target)} "
                f"{fmt_interval(ident['diff_ci95_low'], ident['diff_ci95_high'], target)}") if ident else "-"
        rows.append(f'<tr data-metric="{esc(m)}"><td class="label">{esc(m)}</td><td>{esc(target.describe())}</td>'
                    f"<td>{esc(fmt(gold['mean'], target) if gold else '-')}</td>"
                    f"<td>{esc(fmt(ident['mean'], target) if ident else '-')}</td><td>{esc(diff)}</td>"
                    f"<td>{_check_badge(check)}</td></tr>")
    if not rows:
        return '<p class="note">No metric with a target: nothing to check.</p>'
    head = (f'<tr><th class="label">metric</th><th>target</th><th>{esc(run.reference)}</th><th>{esc(run.identity)}</th>'
            f"<th>Δ {esc(run.identity)} − {esc(run.reference)} [95% CI]</th><th>verdict</th></tr>")
    return f'<div class="table-wrap"><table class="self-check"><thead>{head}</thead><tbody>{"".join(rows)}</tbody></table></div>'


def self_check_note(run: RunSummary, flagged: list[str]) -> str:
    checks = {run.self_check(m) for m in run.metrics} - {""}
    if flagged:
        return (f"Greyed in the leaderboard and not marked best: {esc(', '.join(flagged))}. Do not rank methods on them "
                "alone; a utility metric (retain or test accuracy) is expected here: it guards against damage, it does "
                "not measure forgetting.")
    if checks == {UNCHECKED}:
        return f"Not run: it needs {esc(run.reference)} and {esc(run.identity)} on at least two seeds."
    return "Every checked metric separates them."


def comparison_html(runs: Sequence[RunSummary]) -> str:
    """One table per metric shared by the runs: one row per unlearner, one column per run."""
    parts = []
    for metric in T.comparison_metrics(runs):
        labels = list(dict.fromkeys(u for run in runs for u in run.unlearners))
        body = []
        for label in labels:
            cells = []
            for run in runs:
                c = T.mean_cell(run, label, metric)
                cells.append(f'<td class="{"best" if c.best else ""}" data-v="{_num(c.value)}">{esc(c.text)}</td>')
            body.append(f'<tr><td class="label" data-v="{esc(label)}">{esc(label)}</td>{"".join(cells)}</tr>')
        parts.append(f'<h3>{esc(metric)}</h3><div class="table-wrap"><table class="sortable compare" data-metric="{esc(metric)}">'
                     f'<thead><tr><th class="label" data-col="0">unlearner</th>'
                     + "".join(f'<th data-col="{i + 1}">{esc(run.title)}</th>' for i, run in enumerate(runs))
                     + f"</tr></thead><tbody>{''.join(body)}</tbody></table></div>")
    return "".join(parts)


def describe_config(run: RunSummary) -> str:
    """One line on what the run was: data, forget set, model, training, seeds."""
    config = run.results.config
    if not config:
        return f"Results file {run.results.path} (no config.resolved.json beside it)."

    def spec(s: Any) -> str:
        if not isinstance(s, dict):
            return str(s)
        params = {k: v for k, v in (s.get("parameters") or {}).items() if v is not None}
        return f"{s.get('class')} {json.dumps(params)}" if params else str(s.get("class"))

    data = config.get("data", {})
    training = config.get("training", {})
    parts = [f"data {spec(data.get('source'))}", f"forget {spec(data.get('forget'))}", f"model {spec(config.get('model'))}",
             f"training {training.get('epochs', '?')} epochs", f"seeds {config.get('seeds')}",
             f"evaluators {', '.join(str(e.get('class')) for e in config.get('evaluators', []))}"]
    return " · ".join(parts)


# ------------------------------------------------------------------------------ page
PLOTLY_FILE = "plotly.min.js"


def page(runs: Sequence[RunSummary], run_figures: Sequence[Sequence[F.Figure]], comparison: F.Figure | None,
         plotly_js: str = "inline") -> str:
    """The whole HTML document; ``plotly_js`` "inline" embeds plotly.js (one self-contained file,
    ~4.8 MB), "file" loads it from :data:`PLOTLY_FILE` beside the page (shared by several reports)."""
    from plotly.offline import get_plotlyjs

    script = (f'<script type="text/javascript">{get_plotlyjs()}</script>' if plotly_js == "inline"
              else f'<script type="text/javascript" src="{PLOTLY_FILE}"></script>')

    title = "erasure report: " + ", ".join(run.title for run in runs)
    nav = [f'<a href="#run-{i}">{esc(run.title)}</a>' for i, run in enumerate(runs)]
    if len(runs) > 1:
        nav.append('<a href="#compare">runs compared</a>')
    sections = []
    for i, (run, figs) in enumerate(zip(runs, run_figures)):
        notes = []
        if run.results.excluded:
            notes.append(f"{run.results.excluded} row(s) of earlier jobs (other parameters, seeds or labels than "
                         "config.resolved.json) are left out, as in the run's own table.")
        for label in run.results.relabelled:
            notes.append(f"{label!r} was run with several parameter sets; each set is its own row.")
        if run.self_check(GOLD_GAP) in FLAGGED:
            notes.append(f"Not ranked: every metric of the gold gap fails the self-check (none separates "
                         f"{run.reference} from {run.identity} here), so a rank would order noise.")
        flagged = [m for m in run.metrics if run.self_check(m) in FLAGGED]
        gold_metrics = ranked_metrics([m for m in run.metrics if m != GOLD_GAP], run.targets, run.results.ranking)
        sections.append(
            f'<section class="run" id="run-{i}"><h2>{esc(run.title)}</h2>'
            f'<p class="meta">{esc(describe_config(run))}<br>{esc(run.results.path)} · {run.seeds} seed(s)</p>'
            + "".join(f'<p class="note">{esc(n)}</p>' for n in notes)
            + f'<h3 id="leaderboard-{i}-title">Leaderboard</h3>'
            f'<p class="note">Mean [95% interval over seeds, clipped to the metric\'s range]; Δ: paired difference to '
            f"{esc(run.reference)} [95% interval]; green: best method per column. Rank by the gold gap: the mean "
            f"({'each evaluator alike' if run.results.ranking.weights == 'evaluator' else 'each metric alike'}) over "
            f"{esc(', '.join(gold_metrics) or 'no metric')} of |m − m_{esc(run.reference)}| divided by the metric's range "
            f"(0 = as {esc(run.reference)}). {esc(run.reference)} and {esc(run.identity)} are the references and are not "
            "ranked. Click a column header to sort.</p>"
            + leaderboard_html(run, i)
            + f'<h3 id="self-check-{i}">Self-check</h3><p class="note">Does each metric separate {esc(run.reference)} '
            f"(the target) from {esc(run.identity)} (no unlearning) beyond the seed noise (paired 95% interval)? "
            + self_check_note(run, flagged)
            + "</p>" + self_check_html(run) + meta_eval_html(run.results.directory)
            + "".join(figure_html(f, f"fig-{i}-{f.key}") for f in figs)
            + "</section>")
    if len(runs) > 1:
        sections.append('<section id="compare"><h2>Runs compared</h2><p class="note">The same metric in each run, '
                        "one column per run (mean [95% interval]).</p>" + comparison_html(runs)
                        + (figure_html(comparison, "fig-compare") if comparison else "") + "</section>")
    generated = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>'
            f"<script>{CATCH_ERRORS}</script><style>{CSS}</style>"
            f"{script}</head><body>"
            f"<h1>{esc(title)}</h1><p class=\"meta\">erasure {esc(__version__)} · generated {generated}</p>"
            f"<nav>{''.join(nav)}</nav>{''.join(sections)}"
            f'<pre id="script-errors"></pre><script>{SORT_AND_REPORT}</script></body></html>')
