"""The report's "metrics tested as metrics" section: ``meta_eval.csv`` of a results directory
(written by ``python -m erasure.meta_eval``), as an HTML table and a Markdown one."""
from __future__ import annotations

import csv
import html
from pathlib import Path

META_EVAL_FILE = "meta_eval.csv"  # the name erasure.meta_eval writes (that module sits above the report)
SHOWN = ("faithfulness", "robustness_quantized", "robustness_relearned")
HEADERS = ("faithfulness (AUC)", "after int8 quantization", "after relearning")


def read_meta_eval(directory: str | Path) -> list[dict[str, str]]:
    """The rows of ``directory/meta_eval.csv`` (none when the file is missing)."""
    path = Path(directory) / META_EVAL_FILE
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _cell(value: str) -> str:
    try:
        return f"{float(value):.2f}"
    except (TypeError, ValueError):
        return "-"


NOTE = ("Pools of models trained with and without D_f (python -m erasure.meta_eval): faithfulness is max(AUC, 1 − AUC) "
        "of each metric between the pools (1: separates them, 0.5: blind); the other columns are the AUC after an "
        "attack, in the direction the metric separated before.")


def meta_eval_html(directory: str | Path) -> str:
    """An HTML section body for the run's ``meta_eval.csv``, or "" without one."""
    rows = read_meta_eval(directory)
    if not rows:
        return ""
    esc = html.escape
    head = "".join(f"<th>{esc(h)}</th>" for h in ("metric", "target", *HEADERS))
    body = "".join("<tr>" + f'<td class="label">{esc(r["metric"])}</td><td>{esc(r.get("target", ""))}</td>'
                   + "".join(f"<td>{_cell(r.get(k, ''))}</td>" for k in SHOWN) + "</tr>" for r in rows)
    return (f'<h3>Metrics tested as metrics</h3><p class="note">{esc(NOTE)}</p><div class="table-wrap">'
            f'<table class="meta-eval"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>')


def meta_eval_markdown(directory: str | Path) -> str:
    """The same table in Markdown, or "" without ``meta_eval.csv``."""
    rows = read_meta_eval(directory)
    if not rows:
        return ""
    lines = ["| metric | target | " + " | ".join(HEADERS) + " |", "| --- | --- |" + " --- |" * len(HEADERS)]
    lines += [f"| `{r['metric']}` | {r.get('target', '')} | " + " | ".join(_cell(r.get(k, "")) for k in SHOWN) + " |"
              for r in rows]
    return "\n".join(lines)
