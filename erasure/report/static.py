"""The report's figures as PNG and PDF files, drawn with matplotlib from the same
:class:`~erasure.report.figures.Figure` data as the HTML page."""
from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import numpy as np

from erasure.report.figures import Figure, Panel, axis_range
from erasure.results.files import atomic_write_bytes

MARKERS = {"star": "*", "x": "X", "circle": "o", "diamond": "D", "square": "s", "triangle-up": "^"}


def _categories(panel: Panel) -> list[str]:
    return list(dict.fromkeys(x for t in panel.traces for x in t.x))


def _errors(center: list[float], bounds: tuple[list[float], list[float]] | None) -> Any:
    if bounds is None:
        return None
    low, high = (np.asarray(b, float) for b in bounds)
    c = np.asarray(center, float)
    return np.nan_to_num(np.vstack([c - low, high - c]).clip(min=0))


def draw_panel(ax: Any, panel: Panel) -> None:
    """Draw one panel's traces on a matplotlib axis (and a twin axis on the right for ``y2``)."""
    from matplotlib.ticker import MaxNLocator

    categories = _categories(panel) if panel.categorical_x else []
    position = {c: i for i, c in enumerate(categories)}
    series = [t for t in panel.traces if t.kind in ("points", "line")]
    distributions = [t for t in panel.traces if t.kind == "distribution"]
    right = ax.twinx() if panel.y2_label else None
    for t in panel.traces:
        label = t.name if t.legend else None
        x = [position[v] + 0.12 * (series.index(t) - (len(series) - 1) / 2) for v in t.x] if categories and t in series else t.x
        on = right if t.axis == "y2" and right is not None else ax
        if t.kind == "points":
            marker = MARKERS.get(t.symbol, "o")
            face = "none" if t.hollow and marker != "X" else t.color
            edge = t.color if t.hollow else "white" if t.opacity == 1 else "none"
            on.scatter(x, t.y, s=(t.size * (1.8 if t.role == "gold" else 1)) ** 2 * 0.6, facecolors=face, alpha=t.opacity,
                       marker=marker, label=label, zorder=3, edgecolors=edge, linewidths=1.6 if t.hollow else 0.5)
            if t.x_error is not None or t.y_error is not None:
                on.errorbar(x, t.y, xerr=_errors(t.x, t.x_error), yerr=_errors(t.y, t.y_error), fmt="none",
                            ecolor=t.color, elinewidth=1, capsize=2, zorder=2)
        elif t.kind == "line":
            on.plot(x, t.y, color=t.color, marker=".", label=label, linestyle="--" if t.dash else "-")
            if t.band is not None:
                on.fill_between(x, t.band[0], t.band[1], color=t.color, alpha=0.15, linewidth=0)
        elif t.kind == "hline":
            on.axhline(t.y[0], color=t.color, linestyle="--", linewidth=1.2, label=label)
    if distributions:
        drawable = [(np.asarray(t.y, float), position[t.x[0]], t) for t in distributions if len(t.y) > 1]
        if drawable:
            parts = ax.violinplot([d for d, _, _ in drawable], positions=[p for _, p, _ in drawable], widths=0.8,
                                  showmedians=True)
            for body, (_, _, t) in zip(parts["bodies"], drawable):
                body.set_facecolor(t.color)
                body.set_alpha(0.5)
            for key in ("cbars", "cmins", "cmaxes", "cmedians"):
                parts[key].set_color("#333333")
        for t in distributions:
            if len(t.y) == 1:
                ax.scatter([position[t.x[0]]], t.y, c=t.color)
    if categories:
        ax.set_xticks(range(len(categories)))
        ax.set_xticklabels(categories, rotation=30, ha="right", fontsize=8)
    if panel.x_log:
        ax.set_xscale("log")
    if panel.x_integer:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if panel.y_integer:
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    for axis, target in (("x", ax), ("y", ax), ("y2", right)):
        limits = axis_range(panel, axis) if target is not None else None
        if limits is not None:
            if axis == "x":
                target.set_xlim(*(10 ** v for v in limits) if panel.x_log else limits)
            else:
                target.set_ylim(*limits)
    ax.set_title(panel.title, fontsize=10)
    grey = {"color": "#999999"}
    if not categories:
        ax.set_xlabel(panel.x_label, **(grey if "x" in panel.flagged else {}))
    ax.set_ylabel(panel.y_label, **(grey if "y" in panel.flagged else {}))
    if right is not None:
        right.set_ylabel(panel.y2_label)
    ax.grid(alpha=0.3)


def draw(figure: Figure) -> Any:
    """The matplotlib figure of a :class:`~erasure.report.figures.Figure` (legend outside the panels)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(figure.panels)
    cols = max(1, min(figure.columns, n))
    rows = math.ceil(n / cols)
    categories = max((len(_categories(p)) for p in figure.panels if p.categorical_x), default=0)
    width = max(5.2, 0.45 * categories)  # a panel with many categories gets room for their labels
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, 4.0 * rows), squeeze=False)
    for ax, panel in zip(axes.flat, figure.panels):
        draw_panel(ax, panel)
        if n == 1:
            ax.set_title("")  # the figure's title names it
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    handles: dict[str, Any] = {}
    for ax in fig.axes:  # the panels and their twin axes
        for h, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, h)
    fig.suptitle(figure.title)
    fig.tight_layout()
    if handles:
        fig.legend(handles.values(), handles.keys(), loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8,
                   frameon=False)
    return fig


def save(figure: Figure, paths: list[Path]) -> list[Path]:
    """Write the figure to each path (the format follows the suffix: .png, .pdf, .svg)."""
    import matplotlib.pyplot as plt

    fig = draw(figure)
    try:
        for path in paths:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            image = io.BytesIO()
            fig.savefig(image, format=Path(path).suffix.lstrip(".").lower() or "png", dpi=150, bbox_inches="tight")
            atomic_write_bytes(path, image.getvalue())  # never through a symbolic link (docs/security.md)
    finally:
        plt.close(fig)
    return [Path(p) for p in paths]


def render(figure: Figure, directory: str | Path, formats: tuple[str, ...] = ("png", "pdf")) -> list[Path]:
    """Write ``<directory>/<figure.key>.<format>`` for each format."""
    return save(figure, [Path(directory) / f"{figure.key}.{fmt}" for fmt in formats])
