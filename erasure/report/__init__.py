"""``erasure report``: results → one offline HTML page, PNG/PDF figures and Markdown/LaTeX tables.

    python -m erasure.report RESULTS... [-o report.html] [--title NAME]... [--no-static]

RESULTS are results CSVs or output directories; several are compared on one page. Beside the
HTML file go ``<stem>_figures/*.png|pdf`` (the same figures through matplotlib), ``summary.md``
and ``summary.tex``. See docs/results.md.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from erasure.core.errors import ConfigError
from erasure.results.files import atomic_write_text

COMPARED = ("gold_gap", "accuracy_forget", "umia_accuracy", "accuracy_test")


@dataclass
class ReportFiles:
    html: Path
    markdown: Path
    latex: Path
    figures: list[Path] = field(default_factory=list)


def unique_titles(titles: Sequence[str]) -> list[str]:
    """Titles made distinct by numbering repeats: ``x``, ``x (2)``."""
    seen: dict[str, int] = {}
    out = []
    for t in titles:
        seen[t] = seen.get(t, 0) + 1
        out.append(t if seen[t] == 1 else f"{t} ({seen[t]})")
    return out


def build_report(results: Sequence[str | Path], output: str | Path, titles: Sequence[str] | None = None,
                 static: bool = True, plotly_js: str = "inline") -> ReportFiles:
    """Write the report of one or several results files or directories; returns the files written.
    ``plotly_js`` "file": the page loads plotly.js from a ``plotly.min.js`` written once beside it
    (several reports in one folder share it) instead of embedding its 4.8 MB."""
    from erasure.report import figures as F
    from erasure.report import html, tables
    from erasure.report.data import load_run

    runs = [load_run(path) for path in results]
    names = list(titles or []) + [run.title for run in runs[len(titles or []):]]
    for run, name in zip(runs, unique_titles(names)):
        run.title = name
    per_run = [F.run_figures(run) for run in runs]
    compare = F.comparison(runs, [m for m in COMPARED if m in tables.comparison_metrics(runs)])
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    if plotly_js == "file":
        _write_plotly_js(output.with_name(html.PLOTLY_FILE))
    files = ReportFiles(output, output.with_name("summary.md"), output.with_name("summary.tex"))
    for path, text in ((files.html, html.page(runs, per_run, compare, plotly_js)), (files.markdown, tables.markdown(runs)),
                       (files.latex, tables.latex(runs))):
        atomic_write_text(path, text)  # never through a symbolic link (docs/security.md)
    if static:
        from erasure.report.static import render

        directory = output.with_name(f"{output.stem}_figures")
        for i, (run, figs) in enumerate(zip(runs, per_run)):
            prefix = f"run{i + 1}_" if len(runs) > 1 else ""
            for fig in figs:
                fig.key = prefix + fig.key
                files.figures += render(fig, directory)
        if compare is not None:
            files.figures += render(compare, directory)
    return files


def _write_plotly_js(path: Path) -> None:
    """plotly.js beside the page, unless the same file is already there."""
    from plotly.offline import get_plotlyjs

    script = get_plotlyjs()
    if path.is_file() and not path.is_symlink() and path.stat().st_size == len(script.encode("utf-8")) \
            and path.read_text(encoding="utf-8") == script:
        return
    atomic_write_text(path, script)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="erasure report", description=__doc__.split("\n\n")[0])
    parser.add_argument("results", nargs="+", help="results CSVs or output directories (several: compared on one page)")
    parser.add_argument("-o", "--output", default="report.html", help="HTML file to write (default: %(default)s)")
    parser.add_argument("--title", action="append", default=[], help="a name per results argument, in order "
                        "(default: the experiment's name)")
    parser.add_argument("--no-static", action="store_true", help="skip the PNG/PDF figures (faster)")
    parser.add_argument("--plotly-js", choices=("inline", "file"), default="inline",
                        help="embed plotly.js in the page (one self-contained file, default), or load it from "
                        "plotly.min.js written once beside the page (a lighter page; reports in one folder share it)")
    args = parser.parse_args(argv)
    try:
        files = build_report(args.results, args.output, args.title, static=not args.no_static, plotly_js=args.plotly_js)
    except (OSError, ValueError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"Report: {files.html}\nTables: {files.markdown}, {files.latex}")
    if files.figures:
        print(f"Figures: {len(files.figures)} files in {files.figures[0].parent}")
    return 0
