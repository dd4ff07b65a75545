"""Metric targets: every metric declares one, the gold gap, the self-check and the ranking built on them."""
from __future__ import annotations

import json
import math

import pytest

from conftest import make_workspace, tiny_config
from erasure.core.factory import build
from erasure.core.registry import load_builtins, registry
from erasure.results.summary import (NO_SEPARATION, SEPARATES, UNCHECKED, WRONG_WAY, check_metric, summarize)
from erasure.results.targets import (Target, as_gold, gold_gap, ideal, informational, lookup, normalised_gap,
                                     read_targets, registered_targets, targets_of, write_targets)

load_builtins()
CUDA_ONLY = {"peak_cuda_mb"}  # RunTime reports it only on a CUDA device


@pytest.fixture(scope="module")
def produced(tmp_path_factory) -> dict[str, set[str]]:
    """Every metric each registered evaluator produces on the tiny world (its contract parameters),
    judging an Identity job; evaluators that read other metrics run after them, as in a run."""
    evaluators = registry("evaluator")
    by_world: dict[str, list[str]] = {}
    for name, cls in evaluators.items():
        forget = cls.contract_config.get("forget", {"class": "ClassForget", "parameters": {"classes": [0]}})
        by_world.setdefault(json.dumps([cls.tasks[0], forget], sort_keys=True), []).append(name)
    out: dict[str, set[str]] = {}
    for world, names in by_world.items():
        task, forget = json.loads(world)
        config = tiny_config(tmp_path_factory.mktemp("targets"), task=task)
        config["data"]["forget"] = forget
        runner = make_workspace(config)
        state = runner.prepare_seeds()[0]
        runner.train_references(state)
        unlearner = build({"class": "Identity"}, "unlearner", "u")
        ctx = runner.make_context(state, "Identity")
        model = unlearner.unlearn(state.original, ctx)
        outcome = runner.make_outcome(state, "Identity", unlearner, model, ctx, runner.reference(state, "gold")[1])
        built = [build({"class": n, "parameters": dict(evaluators[n].contract_config.get("parameters", {}))},
                       "evaluator", n) for n in names]
        for evaluator in sorted(built, key=lambda e: bool(e.requires)):
            metrics = runner.evaluate(outcome, evaluator)
            outcome.metrics.update(metrics)
            out[type(evaluator).__name__] = (evaluator, set(metrics))
    return out


def test_every_metric_of_every_registered_evaluator_declares_a_target(produced):
    assert set(produced) == set(registry("evaluator")), "every registered evaluator ran"
    for name, (evaluator, metrics) in produced.items():
        declared = targets_of([evaluator])
        missing = sorted(m for m in metrics if lookup(m, declared) is None)
        assert not missing, f"{name} produces {missing} without a target in {name}.metric_targets"
        for key, target in declared.items():
            assert isinstance(target, Target)
            pattern = any(c in key for c in "*?[")
            used = any(lookup(m, {key: target}) is not None for m in metrics) if pattern else key in metrics
            assert used or key in CUDA_ONLY, f"{name}.metric_targets declares {key!r}, which it never produces"


def test_the_issue_metrics_point_the_right_way():
    targets = registered_targets()
    for metric in ("accuracy_forget", "accuracy_forget_test", "umia_accuracy", "entropy_mia_member_rate",
                   "mia_efficacy", "aus", "nomus", "ulira_auc", "forgetting_quality", "zrf"):
        assert lookup(metric, targets).kind == "gold", metric
    assert lookup("accuracy_retain", targets) == ideal(1)
    assert lookup("gold_kl_forget", targets).better == "lower"
    assert lookup("wall_seconds", targets).kind == "none" and lookup("wall_seconds", targets).direction == "lower"
    assert lookup("speedup_vs_gold", targets).direction == "higher"


def test_target_semantics_and_json_round_trip(tmp_path):
    assert ideal(1).better == "higher" and ideal(0).better == "lower" and ideal(0.5).better == "closer"
    assert as_gold().better == "closer" and informational().better is None
    assert (ideal(1).describe(), as_gold().describe(), informational("lower").describe()) == \
        ("ideal 1", "as gold", "lower is better")
    assert ideal(1).clip(1.2) == 1 and ideal(1).clip(-0.1) == 0 and as_gold(0, None).clip(7.0) == 7.0
    assert math.isnan(ideal(1).clip(math.nan))
    targets = {"accuracy_*": as_gold(), "accuracy_retain": ideal(1)}
    assert lookup("accuracy_retain", targets) == ideal(1), "an exact key wins over a pattern"
    assert lookup("accuracy_test", targets) == as_gold() and lookup("loss", targets) is None
    write_targets(targets, tmp_path / "t.json")
    assert read_targets(tmp_path / "t.json") == targets

    class A:
        metric_targets = {"m": ideal(1)}

    class B:
        metric_targets = {"m": ideal(0), "n": as_gold()}

    assert targets_of([A, B()]) == {"m": ideal(0), "n": as_gold()}


def test_gold_gap_normalises_by_range_and_skips_other_targets():
    targets = {"a": as_gold(0, 1), "b": as_gold(0, 10), "c": ideal(1), "open": as_gold(0, None)}
    gold = {"a": 0.25, "b": 2.0, "c": 1.0}
    assert gold_gap({"a": 0.5, "b": 4.0, "c": 0.0}, gold, targets) == pytest.approx((0.25 + 0.2) / 2)
    assert gold_gap(gold, gold, targets) == 0
    assert math.isnan(gold_gap({"a": 0.5}, gold, targets)), "a missing gold-target metric gives NaN, not a smaller mean"
    assert math.isnan(gold_gap({"a": math.nan, "b": 1.0}, gold, targets))
    assert math.isnan(gold_gap({"c": 0.0}, {"c": 1.0}, targets)), "no metric with a gold target"
    # an open range: relative to |gold|, capped at 1
    assert normalised_gap(6.0, 4.0, targets["open"]) == pytest.approx(0.5)
    assert normalised_gap(40.0, 4.0, targets["open"]) == 1.0
    assert normalised_gap(0.0, 0.0, targets["open"]) == 0.0 and normalised_gap(3.0, 0.0, targets["open"]) == 1.0
    assert normalised_gap(1.0, 0.0, as_gold()) == 1.0


def test_self_check_catches_a_metric_that_points_the_wrong_way():
    """The issue's example: UMIA declared "ideal 0.5" ranks no unlearning best (Identity 0.486,
    GoldModel 0.957); the self-check says so, and "as gold" separates them."""
    gold = {0: 0.957, 1: 0.95, 2: 0.963}
    identity = {0: 0.486, 1: 0.47, 2: 0.50}
    assert check_metric(gold, identity, ideal(0.5)) == WRONG_WAY
    assert check_metric(gold, identity, as_gold()) == SEPARATES
    noisy = {0: 0.95, 1: 0.97, 2: 0.949}
    assert check_metric(gold, noisy, as_gold()) == NO_SEPARATION
    assert check_metric({0: 0.99, 1: 0.98, 2: 0.99}, {0: 0.8, 1: 0.82, 2: 0.81}, ideal(1)) == SEPARATES
    assert check_metric({0: 0.9}, {0: 0.1}, as_gold()) == UNCHECKED, "one seed cannot show seed noise"
    assert check_metric(gold, identity, informational()) == "" and check_metric(gold, identity, None) == ""


def _rows(values: dict[str, dict[str, list[float]]]) -> list[dict]:
    return [{"config_hash": "h", "seed": str(seed), "unlearner": u, "metric": m, "value": str(v), "status": "ok", "step": ""}
            for u, metrics in values.items() for m, vs in metrics.items() for seed, v in enumerate(vs)]


def test_ranking_by_gold_gap_with_references_apart():
    targets = {"accuracy_forget": as_gold(), "umia_accuracy": as_gold(), "accuracy_retain": ideal(1)}
    rows = _rows({
        "Identity": {"accuracy_forget": [0.99, 1.0, 0.99], "umia_accuracy": [0.49, 0.47, 0.50], "accuracy_retain": [0.99] * 3},
        "GoldModel": {"accuracy_forget": [0.0, 0.01, 0.0], "umia_accuracy": [0.95, 0.96, 0.96], "accuracy_retain": [0.99] * 3},
        "Close": {"accuracy_forget": [0.02, 0.0, 0.01], "umia_accuracy": [0.93, 0.95, 0.94], "accuracy_retain": [0.98] * 3},
        "Overshoot": {"accuracy_forget": [0.0, 0.0, 0.0], "umia_accuracy": [0.50, 0.52, 0.49], "accuracy_retain": [0.6] * 3},
    })
    records = summarize(rows, targets=targets)
    by = {(r["unlearner"], r["metric"]): r for r in records}
    assert by[("Close", "gold_gap")]["rank"] == 1 and by[("Overshoot", "gold_gap")]["rank"] == 2
    assert by[("Identity", "gold_gap")]["rank"] == "" and by[("Identity", "gold_gap")]["role"] == "no-unlearning reference"
    assert by[("GoldModel", "gold_gap")]["mean"] == 0 and by[("GoldModel", "gold_gap")]["role"] == "gold reference"
    expected = [abs(0.02 - 0.0) / 2 + abs(0.93 - 0.95) / 2, abs(0.0 - 0.01) / 2 + abs(0.95 - 0.96) / 2,
                abs(0.01 - 0.0) / 2 + abs(0.94 - 0.96) / 2]
    assert by[("Close", "gold_gap")]["mean"] == pytest.approx(sum(expected) / 3), "per seed, then averaged"
    assert by[("Close", "umia_accuracy")]["best"] and not by[("Overshoot", "umia_accuracy")]["best"]
    assert by[("Close", "accuracy_retain")]["self_check"] == NO_SEPARATION
    assert not by[("Close", "accuracy_retain")]["best"], "a flagged metric marks no best method"
    assert [r["unlearner"] for r in records if r["metric"] == "gold_gap"] == ["GoldModel", "Identity", "Close", "Overshoot"]
    assert by[("Overshoot", "accuracy_retain")]["ci95_low"] == pytest.approx(0.6)
