"""The end-of-run table: references first, ranked by gold gap, headline metrics that fit in 120 columns."""
import math

import pytest

from erasure.results.summary import format_wide, headline, summarize
from erasure.results.targets import as_gold, ideal, informational

TARGETS = {"accuracy_forget": as_gold(), "accuracy_test": as_gold(), "umia_accuracy": as_gold(),
           "accuracy_retain": ideal(1), "wall_seconds": informational("lower")}


def rows(unlearner: str, metric: str, values: list[float]) -> list[dict]:
    return [{"unlearner": unlearner, "metric": metric, "value": str(v), "status": "ok", "step": "", "seed": str(i)}
            for i, v in enumerate(values)]


def experiment(extra_metrics: int = 0, label: str = "NegGrad") -> list[dict]:
    data = []
    for u, forget, umia, retain in [("GoldModel", 0.0, 0.95, 0.99), ("Identity", 0.99, 0.49, 0.99),
                                    (label, 0.01, 0.9, 0.97), ("FineTuning", 0.7, 0.65, 0.99)]:
        data += rows(u, "accuracy_forget", [forget, forget + 0.01, forget])
        data += rows(u, "umia_accuracy", [umia, umia + 0.02, umia - 0.01])
        data += rows(u, "accuracy_retain", [retain, min(1.0, retain + 0.01), retain])
        data += rows(u, "accuracy_test", [retain - 0.05, retain - 0.04, retain - 0.05])
        data += rows(u, "wall_seconds", [0.1, 0.2, 0.15])
        for m in range(extra_metrics):
            data += rows(u, f"contributed_metric_{m}", [1.0, 2.0, 3.0])
    return data


def test_references_first_then_rank_with_best_and_flags():
    table = format_wide(summarize(experiment(), targets=TARGETS), TARGETS)
    lines = table.splitlines()
    assert lines[0].split()[:3] == ["rank", "unlearner", "gold"]
    body = [line.split() for line in lines[3:7]]
    assert [b[:2] for b in body] == [["ref", "GoldModel"], ["ref", "Identity"], ["1", "NegGrad"], ["2", "FineTuning"]]
    assert "accuracy_forget" in lines[0] and "umia_accuracy" in lines[0] and "as gold" in lines[1] and "Δ gold" in lines[1]
    neggrad = lines[5]
    assert "0.013* [0.00, 0.03]" in neggrad and "+0.010" in neggrad, "best forget accuracy marked, paired Δ to gold shown"
    assert "accuracy_retain !" in lines[0] or "accuracy_retain" not in lines[0]
    assert "! self-check" in table and "accuracy_retain" in table.split("! self-check")[1]
    assert "Rank by gold gap" in table and "GoldModel" in table


def test_never_wider_than_120_columns_and_the_rest_goes_to_summary_csv():
    table = format_wide(summarize(experiment(12, label="a rather long label for one unlearner=1e-3"), targets=TARGETS),
                        TARGETS)
    assert all(len(line) <= 120 for line in table.splitlines()), max(map(len, table.splitlines()))
    assert "\n\n" not in table.split("Cells:")[0].strip(), "one block, never wrapped"
    assert "a rather long label for…" in table
    rest = table.split("Also in summary.csv:")[1]
    assert "contributed_metric_11" in rest
    header = table.splitlines()[0]
    assert header.index("accuracy_forget") < header.index("umia_accuracy"), "headline metrics in priority order"


def test_intervals_are_clipped_to_the_metric_range():
    records = {(r["unlearner"], r["metric"]): r for r in summarize(experiment(), targets=TARGETS)}
    retain = records[("Identity", "accuracy_retain")]
    assert retain["ci95_high"] == 1.0 and retain["mean"] + 1.0 > 1.0
    unclipped = {(r["unlearner"], r["metric"]): r for r in summarize(experiment())}[("Identity", "accuracy_retain")]
    assert unclipped["ci95_high"] > 1.0, "without a declared range nothing is clipped"
    forget = records[("GoldModel", "accuracy_forget")]
    assert forget["ci95_low"] == 0.0 and forget["ci95_low"] >= 0
    diff = records[("Identity", "accuracy_forget")]
    assert -1 <= diff["diff_ci95_low"] <= diff["diff_ci95_high"] <= 1


def test_headline_of_one_job():
    job = (rows("A", "wall_seconds", [0.123456]) + rows("A", "accuracy_forget", [0.0]) + rows("A", "umia_accuracy", [0.9567])
           + [{"unlearner": "A", "metric": "UMIA", "value": "", "status": "error", "step": "", "seed": "0"},
              {"unlearner": "A", "metric": "accuracy_forget", "value": "0.5", "status": "ok", "step": "3", "seed": "0"}])
    assert headline(job, TARGETS) == "accuracy_forget 0.000, umia_accuracy 0.957, wall_seconds 0.123, 1 error(s): UMIA"
    assert headline(job, TARGETS, limit=1) == "accuracy_forget 0.000, 1 error(s): UMIA"
    assert headline([]) == "no metrics"


def test_no_targets_still_prints_every_metric_unranked():
    records = summarize(rows("A", "m", [1.0, 2.0]) + rows("B", "m", [3.0]))
    table = format_wide(records)
    assert "gold gap" not in table and "Rank by" not in table
    lines = table.splitlines()
    assert lines[0].split() == ["rank", "unlearner", "m"]
    assert "1.5  [-4.9, 7.9]" in lines[3] and math.isnan(records[1]["std"])
    assert lines[4].split() == ["-", "B", "3"]


@pytest.mark.parametrize("value,expected", [(0.0, "0.000"), (-0.0, "0.000"), (0.98765, "0.988"), (1.0, "1.000"),
                                            (7.2e-05, "7.2e-05")])
def test_bounded_metrics_use_three_decimals_unless_that_shows_zero(value, expected):
    from erasure.results.summary import fmt, fmt_interval

    assert fmt(value, as_gold()) == expected
    assert fmt(1.05e-05, informational("lower")) == "1.05e-05"
    assert fmt(math.nan) == "-"
    assert fmt_interval(0.98551, 0.98649, as_gold(), 2) == "[0.98, 0.99]", "bounds rounded outwards hold the mean"


def test_without_identity_the_table_says_the_self_check_did_not_run():
    data = [r for r in experiment() if r["unlearner"] != "Identity"]
    table = format_wide(summarize(data, targets=TARGETS), TARGETS)
    assert "Self-check not run" in table and "! self-check" not in table
    assert "Identity (no unlearning) has gold gap" not in table


def test_long_labels_keep_the_priority_order_and_never_swap_in_a_flagged_metric():
    """With a long label, accuracy_test (wider: it has a Δ gold column) may not fit; then neither does
    anything after it, and the flagged accuracy_retain never takes its place."""
    records = summarize(experiment(label="a rather long label for one unlearner=1e-3"), targets=TARGETS)
    full = format_wide(records, TARGETS, max_width=400).splitlines()[0]
    order = [m for m in ("accuracy_forget", "umia_accuracy", "accuracy_test", "accuracy_retain") if m in full]
    assert order == ["accuracy_forget", "umia_accuracy", "accuracy_test", "accuracy_retain"]
    assert full.index("accuracy_test") < full.index("accuracy_retain !"), "flagged metrics come last"
    for width in range(60, 200, 5):
        header = format_wide(records, TARGETS, max_width=width).splitlines()[0]
        shown = [m for m in ("accuracy_forget", "umia_accuracy", "accuracy_test", "accuracy_retain") if m in header]
        assert shown == order[:len(shown)], (width, header)
