"""``erasure report``: the HTML page, its figures' data, the Markdown/LaTeX tables, the PNG/PDF
figures, per-example artifacts, several runs on one page, and the page rendered in a real browser."""
from __future__ import annotations

import csv
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from conftest import make_runner, tiny_config
from erasure.report import build_report, main
from erasure.report import figures as F
from erasure.report import html
from erasure.report.data import load_run
from erasure.report.tables import mean_cell
from erasure.results.directory import read_artifacts, save_artifact

UNLEARNERS = [{"class": "Identity"}, {"class": "GoldModel"},
              {"class": "NegGrad", "parameters": {"epochs": 1, "lr": 0.5}},
              {"class": "MIRegularized", "label": "MI", "parameters": {"gamma": 3.5, "epochs": 2}}]
EVALUATORS = [{"class": "Accuracy"}, {"class": "RunTime"}, {"class": "UMIA", "parameters": {"n_splits": 3}},
              {"class": "MutualInformation"}]


class Node:
    def __init__(self, tag: str, attrs: dict[str, str], parent: "Node | None"):
        self.tag, self.attrs, self.parent, self.children, self.text = tag, attrs, parent, [], ""

    def find_all(self, tag: str, **attrs: str) -> list["Node"]:
        out = []
        for child in self.children:
            if child.tag == tag and all(a in child.attrs.get(k.rstrip("_"), "").split() or child.attrs.get(k.rstrip("_")) == a
                                        for k, a in attrs.items()):
                out.append(child)
            out += child.find_all(tag, **attrs)
        return out

    def all_text(self) -> str:
        return self.text + "".join(c.all_text() for c in self.children)


class Tree(HTMLParser):
    """A tiny DOM from the standard library's parser."""

    VOID = {"meta", "br", "img", "link", "input", "hr"}

    def __init__(self, text: str):
        super().__init__()
        self.root = self.node = Node("root", {}, None)
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        node = Node(tag, {k: v or "" for k, v in attrs}, self.node)
        self.node.children.append(node)
        if tag not in self.VOID:
            self.node = node

    def handle_endtag(self, tag):
        node = self.node
        while node is not None and node.tag != tag:
            node = node.parent
        if node is not None and node.parent is not None:
            self.node = node.parent

    def handle_data(self, data):
        self.node.text += data


def run_tiny(out: Path, unlearners=UNLEARNERS) -> Path:
    make_runner(tiny_config(out, seeds=[0, 1], unlearners=unlearners, evaluators=EVALUATORS)).run()
    return out / "out"


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """Two tiny runs, the second a rerun of a copy of the first with NegGrad's parameters changed
    and MI dropped (so its results file holds rows of jobs that are no longer in its config),
    synthetic per-example artifacts in the first, and one report over both."""
    first = run_tiny(tmp_path_factory.mktemp("first"))
    values = {"NegGrad": np.array([0.5, 1.5, np.inf, 2.0]), "GoldModel": np.array([0.1, 0.2, 0.3])}
    for label, array in values.items():
        (first / "artifacts" / "seed0" / label).mkdir(parents=True)
        np.save(first / "artifacts" / "seed0" / label / "epsilon.npy", array)
    (first / "artifacts" / "index.csv").write_text(
        "seed,unlearner,name,path\n0,NegGrad,epsilon,artifacts/seed0/NegGrad/epsilon.npy\n"
        f"0,GoldModel,epsilon,{first}/artifacts/seed0/GoldModel/epsilon.npy\n"
        "1,NegGrad,epsilon,artifacts/seed1/NegGrad/missing.npy\n")
    second_dir = tmp_path_factory.mktemp("second")
    shutil.copytree(first, second_dir / "out", ignore=shutil.ignore_patterns("artifacts"))
    changed = [dict(u) for u in UNLEARNERS[:3]]
    changed[2] = {"class": "NegGrad", "parameters": {"epochs": 1, "lr": 0.05}}
    second = run_tiny(second_dir, changed)  # reruns NegGrad only; Identity and GoldModel are found finished
    html = tmp_path_factory.mktemp("report") / "report.html"
    files = build_report([first, second], html, titles=["first", "rerun"], static=False)
    return files, first, second


def test_page_is_one_offline_file_with_plotly_embedded_once(report):
    files, _, _ = report
    text = files.html.read_text()
    assert text.count("* plotly.js v") == 1, "plotly.js is embedded exactly once"
    tree = Tree(text).root
    assert not [s for s in tree.find_all("script") if s.attrs.get("src")], "no script is loaded from elsewhere"
    assert not tree.find_all("link") and "<iframe" not in text
    keys = [f.attrs["data-figure"] for f in tree.find_all("figure", class_="report-figure")]
    assert keys == ["forget_vs_utility", "privacy_vs_utility", "cost_vs_quality", "trajectories", "distribution_epsilon",
                    "forget_vs_utility", "privacy_vs_utility", "cost_vs_quality", "comparison"]
    assert len(tree.find_all("div", class_="plotly-graph-div")) == len(keys)


def test_leaderboard_is_sortable_and_matches_the_summary(report):
    files, first, _ = report
    run = load_run(first)
    tree = Tree(files.html.read_text()).root
    table = tree.find_all("table", id="leaderboard-0")[0]
    assert "sortable" in table.attrs["class"]
    headers = [th.attrs.get("data-metric") for th in table.find_all("th") if th.attrs.get("data-metric")]
    assert headers[:3] == ["gold_gap", "accuracy_forget", "umia_accuracy"]
    rows = table.find_all("tr", class_="method") + table.find_all("tr", class_="ref")
    order = [r.attrs["data-unlearner"] for r in table.find_all("tr") if r.attrs.get("data-unlearner")]
    assert order[:2] == ["GoldModel", "Identity"] and set(order) == {"GoldModel", "Identity", "NegGrad", "MI"}
    assert len(rows) == 4
    col = [th.attrs.get("data-metric") for th in table.find_all("th")].index("gold_gap")
    for row in table.find_all("tr"):
        if row.attrs.get("data-unlearner"):
            cell = row.find_all("td")[col]
            record = run.record(row.attrs["data-unlearner"], "gold_gap")
            assert float(cell.attrs["data-v"]) == pytest.approx(record["mean"])
            assert cell.all_text() == mean_cell(run, row.attrs["data-unlearner"], "gold_gap").text
            assert ("best" in cell.attrs.get("class", "")) == bool(record["best"])
    check = tree.find_all("table", class_="self-check")[0]
    verdicts = {r.attrs["data-metric"]: r.all_text() for r in check.find_all("tr") if r.attrs.get("data-metric")}
    assert verdicts["accuracy_forget"].endswith("separates")


def test_stale_rows_are_left_out_as_in_the_run_table(report):
    files, _, second = report
    run = load_run(second)
    assert run.results.excluded > 0
    own = {(r["unlearner"], r["metric"]): r for r in csv.DictReader(open(second / "summary.csv"))}
    for r in run.records:
        assert r["n"] == int(own[(r["unlearner"], r["metric"])]["n"])
        assert r["mean"] == pytest.approx(float(own[(r["unlearner"], r["metric"])]["mean"]))
    assert "left out, as in the run" in files.html.read_text()


def test_figure_data(report):
    _, first, _ = report
    run = load_run(first)
    figures = {f.key: f for f in F.run_figures(run)}
    scatter = figures["forget_vs_utility"].panels[0]
    means = {t.name: t for t in scatter.traces if not t.name.endswith("(seeds)")}
    seeds = {t.group: t for t in scatter.traces if t.name.endswith("(seeds)")}
    for label in ("GoldModel", "Identity", "NegGrad", "MI"):
        assert means[label].x == [run.record(label, "accuracy_retain")["mean"]]
        assert means[label].y == [run.record(label, "accuracy_forget")["mean"]]
        assert len(seeds[label].x) == 2
    assert means["GoldModel"].role == "gold" and means["Identity"].role == "identity"
    cost = figures["cost_vs_quality"].panels[0]
    assert cost.x_log and cost.y_label == "gold gap"
    traj = figures["trajectories"]  # the seed paper's style: a panel per unlearner, Î left, accuracies right
    assert [p.title for p in traj.panels] == ["MI (n=2)"]
    panel = traj.panels[0]
    assert panel.y_label == "Î(Ŷ;Z) (nats)" and panel.y2_label == "accuracy" and panel.x_integer
    lines = {t.name: t for t in panel.traces if t.kind == "line"}
    assert set(lines) == {"Î(Ŷ;Z)", "Î(Ŷ;Z) per batch", "remain accuracy", "unlearn accuracy", "test accuracy"}
    assert {lines[n].axis for n in lines} == {"y", "y2"}
    assert {n for n in lines if lines[n].axis == "y"} == {"Î(Ŷ;Z)", "Î(Ŷ;Z) per batch"}
    assert lines["unlearn accuracy"].x == [0, 1, 2]
    dashed = [t for t in panel.traces if t.kind == "hline"]
    assert {t.name for t in dashed} == {"GoldModel: final unlearn accuracy", "GoldModel: final test accuracy"}
    assert all(t.axis == "y2" for t in dashed)
    right = F.axis_range(panel, "y2")
    assert right[1] - right[0] >= F.MIN_SPAN and right != [0.0, 1.02], "accuracies scaled to the data, not flattened"
    by_metric = F.trajectories(run, by="metric")
    titles = [p.title for p in by_metric.panels]
    assert titles[0] == "Î(Ŷ;Z) (nats)" and titles[-1] == "trials per epoch"
    assert all(p.x_integer for p in by_metric.panels)
    counts = by_metric.panels[-1].traces[0]
    assert counts.name == "MI" and counts.x == [0, 1, 2] and counts.y == [2.0, 2.0, 2.0]
    dist = figures["distribution_epsilon"]
    values = {t.name: t.y for t in dist.panels[0].traces}
    assert values == {"GoldModel": pytest.approx([0.1, 0.2, 0.3]), "NegGrad": [0.5, 1.5, 2.0]}
    assert "NegGrad: 1 of 4 infinite" in dist.caption


def test_artifact_index_reader_and_writer(tmp_path):
    assert read_artifacts(tmp_path) == []
    path = save_artifact(tmp_path, 2, "NegGrad lr=1e-3", "ulira ratio", [1.0, 2.0])
    assert path == tmp_path / "artifacts" / "seed2" / "NegGrad_lr=1e-3" / "ulira_ratio.npy"
    save_artifact(tmp_path, 3, "NegGrad lr=1e-3", "ulira ratio", [3.0])
    found = read_artifacts(tmp_path)
    assert [(a.seed, a.unlearner, a.name) for a in found] == [("2", "NegGrad lr=1e-3", "ulira ratio"),
                                                              ("3", "NegGrad lr=1e-3", "ulira ratio")]
    assert list(found[0].load()) == [1.0, 2.0]
    with open(tmp_path / "artifacts" / "index.csv") as f:
        assert next(csv.reader(f)) == ["seed", "unlearner", "name", "path"]


def test_markdown_and_latex_tables(report):
    files, first, _ = report
    run = load_run(first, title="first")
    md = files.markdown.read_text()
    section = md.split("## first")[1].split("###")[0]
    table = [line for line in section.splitlines() if line.startswith("|")]
    header = [c.strip() for c in table[0].strip("|").split("|")]
    assert header[:4] == ["rank", "unlearner", "gold_gap", "accuracy_forget"]
    body = {cells[1]: cells for cells in ([c.strip() for c in line.strip("|").split("|")] for line in table[2:])}
    assert set(body) == {"GoldModel", "Identity", "NegGrad", "MI"}
    assert body["GoldModel"][0] == "ref" and body["NegGrad"][0] in ("1", "2")
    cell = body["NegGrad"][header.index("accuracy_forget")]
    assert cell.strip("*") == mean_cell(run, "NegGrad", "accuracy_forget").text
    assert "## Runs compared" in md and "| unlearner | first | rerun |" in md
    tex = files.latex.read_text()
    assert tex.count(r"\begin{tabular}") == 2 == tex.count(r"\end{tabular}")
    assert tex.count("{") == tex.count("}")
    assert r"accuracy\_forget" in tex and "_" not in tex.replace(r"\_", "") and "Δ" not in tex, "escaped for LaTeX"
    first_table = tex.split(r"\midrule")[1].split(r"\bottomrule")[0]
    rows = [line for line in first_table.strip().splitlines() if line.endswith(r"\\")]
    assert len(rows) == 4 and all(len(r.split(" & ")) == len(rows[0].split(" & ")) for r in rows)
    assert r"\textbf{" in first_table


def test_the_latex_tables_compile(report, tmp_path):
    """summary.tex goes into a paper as it is: pdflatex builds a document around it without an error."""
    if shutil.which("pdflatex") is None:
        pytest.skip("no pdflatex: install TeX Live (apt-get install texlive-latex-recommended) to compile summary.tex")
    files, _, _ = report
    document = tmp_path / "paper.tex"
    document.write_text("\\documentclass{article}\n\\usepackage{booktabs}\n\\usepackage{graphicx}\n\\begin{document}\n"
                        f"\\input{{{files.latex.as_posix()}}}\n\\end{{document}}\n")
    done = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", document.name], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-2000:]
    assert (tmp_path / "paper.pdf").stat().st_size > 0


def test_cli_writes_the_page_tables_and_static_figures(report, tmp_path, capsys):
    _, first, _ = report
    out = tmp_path / "one" / "page.html"
    assert main([str(first / "results.csv"), "-o", str(out)]) == 0
    assert out.is_file() and (out.parent / "summary.md").is_file() and (out.parent / "summary.tex").is_file()
    figures = sorted((out.parent / "page_figures").iterdir())
    keys = [f.key for f in F.run_figures(load_run(first))]
    assert [p.name for p in figures] == sorted(f"{k}.{ext}" for k in keys for ext in ("pdf", "png"))
    for path in figures:
        assert path.read_bytes()[:4] == (b"\x89PNG" if path.suffix == ".png" else b"%PDF"), path
    assert "Figures: 10 files" in capsys.readouterr().out
    assert main([str(tmp_path / "nothing"), "-o", str(out)]) == 2
    assert "no results file" in capsys.readouterr().err


def test_references_are_outlined_underneath_and_a_hidden_method_is_named(report):
    _, first, _ = report
    run = load_run(first)
    panel = F.scatter_panel(run, "accuracy_retain", "accuracy_forget", "forget vs retain")
    means = [t for t in panel.traces if t.opacity == 1]
    roles = [t.role for t in means]
    assert roles.index("method") > max(i for i, r in enumerate(roles) if r != "method"), "references drawn first"
    assert all(t.hollow == (t.role == "gold") for t in means), "gold's star is outlined: a method under it shows"
    gold = next(t for t in means if t.role == "gold")
    method = next(t for t in means if t.role == "method")
    method.x, method.y = list(gold.x), list(gold.y)  # a method exactly on gold's mark
    panel.notes = F.overlaps(panel)
    assert f"In forget vs retain, GoldModel and {method.name} overlap." in panel.notes
    figure = F.Figure("x", "x", "Caption.", [panel])
    assert f"GoldModel and {method.name} overlap." in figure.caption and figure.caption.startswith("Caption. In ")


def test_reference_colours_stand_apart_from_every_method_colour():
    def rgb(color):
        return np.array([int(color[i:i + 2], 16) for i in (1, 3, 5)], float)

    assert min(np.linalg.norm(rgb(F.GOLD_COLOR) - rgb(c)) for c in F.PALETTE) > 150, "gold is black, no method is"
    assert np.ptp(rgb(F.IDENTITY_COLOR)) == 0 and all(np.ptp(rgb(c)) > 40 for c in F.PALETTE), "only Identity is grey"


def test_axes_follow_the_points_not_the_intervals_and_never_zoom_into_seed_noise():
    wide = F.Panel("p", "x", "y", traces=[F.Trace("a", [0.4], [0.5], y_error=([0.0], [1.0])),
                                          F.Trace("b", [0.6], [0.6])])
    low, high = F.axis_range(wide, "y")
    assert 0.45 < low < 0.5 and 0.6 < high < 0.65, "a 3-seed interval does not stretch the axis"
    noise = F.Panel("p", "x", "y", min_span={"y": F.MIN_SPAN},
                    traces=[F.Trace("a", [0.0], [0.995]), F.Trace("b", [1.0], [0.999])])
    low, high = F.axis_range(noise, "y")
    assert high - low >= F.MIN_SPAN and low <= 0.9 and high < 1.01, "0.995 and 0.999 look close, as they are"


def test_a_metric_that_fails_the_self_check_is_marked_in_the_figures(report):
    _, first, _ = report
    run = load_run(first)
    flagged = [m for m in ("accuracy_retain", "accuracy_test") if run.self_check(m) in F.FLAGGED]
    passing = [m for m in ("accuracy_retain", "accuracy_test") if m not in flagged]
    for metric in flagged:
        panel = F.scatter_panel(run, metric, "accuracy_forget", "p")
        assert panel.flagged == ("x",) and panel.x_label.endswith("(fails the self-check)")
        assert any("fails the self-check" in n for n in panel.notes)
        layout = html.plotly_figure(F.Figure("k", "t", "c", [panel])).layout
        assert layout.xaxis.title.font.color == "#999999"
    for metric in passing:
        assert F.scatter_panel(run, metric, "accuracy_forget", "p").flagged == ()


def test_log_axes_use_one_tick_style(report):
    _, first, _ = report
    cost = next(f for f in F.run_figures(load_run(first)) if f.key == "cost_vs_quality")
    layout = html.plotly_figure(cost).layout
    assert layout.xaxis.type == "log" and layout.xaxis.exponentformat == "power" and layout.xaxis.dtick == 1


def test_a_lighter_page_shares_one_plotly_file(report, tmp_path):
    _, first, second = report
    a = build_report([first], tmp_path / "a.html", static=False, plotly_js="file")
    script = tmp_path / "plotly.min.js"
    stamp = script.stat().st_mtime_ns
    build_report([second], tmp_path / "b.html", static=False, plotly_js="file")
    assert script.stat().st_mtime_ns == stamp, "the shared file is written once"
    text = a.html.read_text()
    assert "* plotly.js v" not in text and '<script type="text/javascript" src="plotly.min.js">' in text
    assert len(text) < 500_000 < script.stat().st_size


def test_trajectory_plot_rejects_an_unknown_reference(report, tmp_path, capsys):
    from erasure.plot import main as plot_main

    _, first, _ = report
    assert plot_main(["trajectories", str(first), "-o", str(tmp_path / "t.png"), "--reference", "Gold"]) == 2
    assert "unknown --reference 'Gold'" in capsys.readouterr().out
    assert plot_main(["trajectories", str(first), "-o", str(tmp_path / "t.png")]) == 0


def test_the_page_renders_in_a_browser(report):
    """Headless Chromium runs the page's scripts: every figure draws its SVG and no script fails."""
    browser = next((b for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)
    if browser is None:
        pytest.skip("no headless browser: install Debian's chromium (apt-get install chromium) to render the report")
    files, first, _ = report
    page = files.html.with_name("clicked.html")  # the page, plus two clicks on the gold-gap header: descending
    click = "document.querySelector('#leaderboard-0 th[data-metric=\"gold_gap\"]').click();"
    page.write_text(files.html.read_text().replace("</body>", f"<script>{click}{click}</script></body>"))
    profile = files.html.parent / "browser-profile"
    done = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
         "--enable-logging=stderr", "--v=0", "--virtual-time-budget=20000", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    tree = Tree(done.stdout).root
    body = tree.find_all("body")[0]
    assert body.attrs.get("data-script-errors") == "0", tree.find_all("pre", id="script-errors")[0].all_text()
    assert not re.findall(r"Uncaught .*", done.stderr), done.stderr
    plots = tree.find_all("div", class_="plotly-graph-div")
    assert len(plots) == 9
    for plot in plots:
        svgs = plot.find_all("svg", class_="main-svg")
        assert svgs, f"figure {plot.attrs['id']} drew no SVG"
        assert plot.find_all("g", class_="trace") or plot.find_all("g", class_="violinlayer"), plot.attrs["id"]
    run = load_run(first)
    table = tree.find_all("table", id="leaderboard-0")[0]
    order = [r.attrs["data-unlearner"] for r in table.find_all("tr") if r.attrs.get("data-unlearner")]
    assert order[-1] == "GoldModel" and order == sorted(run.unlearners, key=lambda u: -run.record(u, "gold_gap")["mean"])
