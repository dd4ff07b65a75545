"""Robustness probes (Robustness, FeatureProbe), metrics tested as metrics (meta_eval), and a
ranking that one evaluator cannot dominate (per-evaluator gold gap, named ranking metrics, the
one-sided ForgettingQuality target, no rank on flagged metrics, no best at Identity's value)."""
from __future__ import annotations

import copy
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import ROOT, make_workspace
from erasure.core.errors import ConfigError
from erasure.core.factory import build
from erasure.core.registry import load_builtins, registry
from erasure.evaluators.feature_probe import linear_cka
from erasure.evaluators.robustness import add_weight_noise_, fake_quantize_
from erasure.meta_eval import faithfulness_table, meta_evaluate, pool_auc
from erasure.models.training import TrainingRecipe, train_model
from erasure.results.summary import NO_SEPARATION, SEPARATES, WRONG_WAY, check_metric, format_wide, summarize
from erasure.results.targets import (Ranking, as_gold, at_least_gold, gold_gap, ideal, lookup, normalised_gap,
                                     registered_targets, targets_of)

load_builtins()

DIGITS = {
    "name": "digits_2025b", "seeds": [0], "device": "cpu",
    "data": {"source": {"class": "SklearnDigits"}, "split": {"test_fraction": 0.2},
             "forget": {"class": "ClassForget", "parameters": {"classes": [3]}}},
    "model": {"class": "MLP", "parameters": {"hidden": [32]}},
    "training": {"epochs": 8, "batch_size": 64, "optimizer": {"class": "Adam", "parameters": {"lr": 0.003}}},
    "unlearners": [{"class": "Identity"}], "evaluators": [{"class": "Accuracy"}],
    "output": {"writers": [{"class": "CSVWriter"}]}, "cache": {"enabled": False},
}


def digits_config(tmp: Path, **changes) -> dict:
    config = copy.deepcopy(DIGITS)
    config["output"]["dir"] = str(tmp / "out")
    config.update(changes)
    return config


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """Digits with class 3 forgotten: the workspace, its seed state and outcomes of Identity,
    GoldModel and a head-only unlearner (the head re-initialised and retrained on D_r, the
    features left as they are)."""
    workspace = make_workspace(digits_config(tmp_path_factory.mktemp("digits")))
    state = workspace.prepare_seeds()[0]
    workspace.train_references(state)

    def outcome(label: str, model: torch.nn.Module):
        ctx = workspace.make_context(state, label)
        return workspace.make_outcome(state, label, build({"class": "Identity"}, "unlearner", "u"), model, ctx,
                                      workspace.reference(state, "gold")[1])

    head_only = copy.deepcopy(state.original)
    head_only.head.reset_parameters()
    for name, p in head_only.named_parameters():
        p.requires_grad_(name.startswith("head."))
    ctx = workspace.make_context(state, "head only")
    train_model(head_only, ctx.partitions, "retain", TrainingRecipe(epochs=10, batch_size=64), ctx.generator)
    return {"identity": outcome("Identity", state.original), "gold": outcome("GoldModel", workspace.reference(state, "gold")[0]),
            "head_only": outcome("head only", head_only), "workspace": workspace, "state": state}


def _evaluate(outcome, spec: dict) -> dict[str, float]:
    evaluator = build(spec, "evaluator", "e")
    return evaluator.evaluate(outcome)


# ------------------------------------------------------------------------------ FeatureProbe
def test_linear_cka_matches_the_hsic_formula_and_its_invariances():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(50, 6)), rng.normal(size=(50, 4))
    n = len(x)
    h = np.eye(n) - np.ones((n, n)) / n  # independent: CKA = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)), K = X Xᵀ

    def hsic(k, l):
        return np.trace(k @ h @ l @ h)

    k, l = x @ x.T, y @ y.T
    assert linear_cka(x, y) == pytest.approx(hsic(k, l) / math.sqrt(hsic(k, k) * hsic(l, l)), rel=1e-9)
    q, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    assert linear_cka(x, 3 * x @ q + 1) == pytest.approx(1.0), "invariant to rotation, scale and shift"
    assert math.isnan(linear_cka(x[:1], y[:1]))


def test_a_head_only_unlearner_forgets_in_its_logits_but_not_in_its_features(digits):
    spec = {"class": "FeatureProbe"}
    head, identity, gold = (_evaluate(digits[k], spec) for k in ("head_only", "identity", "gold"))
    head_accuracy = _evaluate(digits["head_only"], {"class": "Accuracy"})
    assert head_accuracy["accuracy_forget_test"] < 0.05 and head_accuracy["accuracy_retain_test"] > 0.8
    assert head["feature_probe_accuracy_forget_test"] > 0.8, "a linear probe still reads the forgotten class"
    assert head["feature_probe_accuracy_forget_test"] == identity["feature_probe_accuracy_forget_test"]
    assert head["cka_gold_test"] == pytest.approx(identity["cka_gold_test"]) and head["cka_gold_test"] < 0.99
    assert gold["cka_gold_test"] == pytest.approx(1.0) and gold["cka_gold_forget"] == pytest.approx(1.0)


# ------------------------------------------------------------------------------ Robustness
def test_fake_quantization_is_torchs_per_tensor_symmetric_int8_grid():
    torch.manual_seed(0)
    layer = torch.nn.Linear(20, 7)
    ref = layer.weight.detach().clone()
    scale = float(ref.abs().max() / 127)
    expected = torch.fake_quantize_per_tensor_affine(ref, scale, 0, -127, 127)
    bias = layer.bias.detach().clone()
    fake_quantize_(layer)
    assert torch.allclose(layer.weight, expected, atol=1e-7) and torch.equal(layer.bias, bias)
    assert len(torch.unique(torch.round(layer.weight / scale))) <= 255
    noisy = add_weight_noise_(copy.deepcopy(layer), 0.0, torch.Generator().manual_seed(0))
    assert torch.equal(noisy.weight, layer.weight)


def test_robustness_accuracies_after_quantization_and_noise(digits):
    identity = digits["identity"]
    plain = _evaluate(identity, {"class": "Accuracy"})
    fake = _evaluate(identity, {"class": "Robustness", "parameters": {"noise_scale": 0.0, "noise_draws": 1}})
    dynamic = _evaluate(identity, {"class": "Robustness", "parameters": {"quantization": "dynamic", "noise_draws": 1,
                                                                         "noise_scale": 1.0}})
    for p in ("forget", "retain", "test", "forget_test", "retain_test"):
        assert fake[f"noisy_accuracy_{p}"] == plain[f"accuracy_{p}"], "no noise: the model's own accuracy"
        assert abs(fake[f"quantized_accuracy_{p}"] - plain[f"accuracy_{p}"]) < 0.05, "int8 barely moves a small MLP"
        assert abs(dynamic[f"quantized_accuracy_{p}"] - plain[f"accuracy_{p}"]) < 0.05
    assert dynamic["noisy_accuracy_test"] < plain["accuracy_test"] - 0.1, "noise as large as the weights hurts"


# ------------------------------------------------------------------------------ meta-evaluation
def test_pool_auc_is_the_mann_whitney_auc():
    from sklearn.metrics import roc_auc_score

    a, b = [0.9, 0.8, 0.8, 0.3], [0.1, 0.8, 0.2]
    assert pool_auc(a, b) == pytest.approx(roc_auc_score([1] * 4 + [0] * 3, a + b))
    assert math.isnan(pool_auc([math.nan], b))


def test_meta_eval_gives_forget_accuracy_an_auc_near_one_on_class_forgetting(tmp_path, capsys):
    from erasure.cli import console
    from erasure.execution.experiment import build_experiment

    config = digits_config(tmp_path, cache={"enabled": True, "dir": str(tmp_path / "cache")},
                           training={"epochs": 4, "batch_size": 64, "optimizer": {"class": "Adam", "parameters": {"lr": 0.003}}})
    rows = meta_evaluate(build_experiment(copy.deepcopy(config)), pool_size=2, relearn_steps=3)
    table = {r["metric"]: r for r in faithfulness_table(rows, registered_targets())}
    assert table["accuracy_forget"]["auc"] == 1.0 and table["accuracy_forget"]["faithfulness"] == 1.0
    assert table["accuracy_forget"]["robustness_quantized"] == 1.0 and table["accuracy_forget"]["n_with"] == 2
    assert 0 <= table["accuracy_forget"]["robustness_relearned"] <= 1
    assert table["accuracy_forget"]["target"] == "as gold"
    # the command line: the same pools, now from the cache, and meta_eval.csv
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    assert console(["meta-eval", str(path), "--pool-size", "2", "--relearn-steps", "3", "--out", str(tmp_path / "me")]) == 0
    written = (tmp_path / "me" / "meta_eval.csv").read_text().splitlines()
    assert written[0].startswith("metric,target,auc,faithfulness") and any(l.startswith("accuracy_forget,") for l in written)
    assert "accuracy_forget" in capsys.readouterr().out
    from erasure.report.meta_eval import meta_eval_html, meta_eval_markdown

    page, md = meta_eval_html(tmp_path / "me"), meta_eval_markdown(tmp_path / "me")
    assert "Metrics tested as metrics" in page and "<td class=\"label\">accuracy_forget</td>" in page
    assert "| `accuracy_forget` | as gold | 1.00 | 1.00 |" in md
    assert meta_eval_html(tmp_path) == "" == meta_eval_markdown(tmp_path), "no meta_eval.csv, no section"


# ------------------------------------------------------------------------------ ranking
def _rows(values: dict[str, dict[str, list[float]]]) -> list[dict]:
    return [{"config_hash": "h", "seed": str(seed), "unlearner": u, "metric": m, "value": str(v), "status": "ok", "step": ""}
            for u, metrics in values.items() for m, vs in metrics.items() for seed, v in enumerate(vs)]


def _family(target, name):
    return targets_of([type(name, (), {"metric_targets": {"x": target}})()])["x"]


def test_gold_gap_weighs_every_evaluator_alike_unless_asked_otherwise():
    targets = {"forget": _family(as_gold(), "Accuracy"), "distance_*": _family(as_gold(0, None), "ModelDistance")}
    gold = {"forget": 0.0, "distance_a": 2.0, "distance_b": 2.0, "distance_c": 2.0}
    identity = {"forget": 0.02, "distance_a": 0.0, "distance_b": 0.0, "distance_c": 0.0}  # within 0.02 of gold behaviourally
    assert gold_gap(identity, gold, targets) == pytest.approx((0.02 + 1.0) / 2)
    assert gold_gap(identity, gold, targets, Ranking(weights="metric")) == pytest.approx((0.02 + 3.0) / 4)
    assert gold_gap(identity, gold, targets, Ranking(("forget",))) == pytest.approx(0.02)
    assert gold_gap(identity, gold, targets, Ranking(("distance_[ab]",))) == pytest.approx(1.0)
    assert targets["forget"] == as_gold(), "the family takes no part in comparisons"


def test_forgetting_quality_is_higher_is_better_with_gold_as_a_noisy_ceiling():
    target = lookup("forgetting_quality", registered_targets())
    assert target == at_least_gold() and target.better == "higher" and target.family == "ForgettingQuality"
    assert normalised_gap(0.9, 0.6, target) == 0 and normalised_gap(0.4, 0.6, target) == pytest.approx(0.2)
    assert target.describe() == "higher, gold as ceiling"
    gold = {0: 0.6, 1: 0.62, 2: 0.61}
    assert check_metric(gold, {0: 0.1, 1: 0.12, 2: 0.08}, target) == SEPARATES
    assert check_metric(gold, {0: 0.9, 1: 0.92, 2: 0.95}, target) == WRONG_WAY
    assert check_metric(gold, {0: 0.62, 1: 0.58, 2: 0.63}, target) == NO_SEPARATION


def test_no_rank_when_every_ranked_metric_fails_the_self_check_and_no_best_at_identitys_value():
    targets = {"accuracy_forget": as_gold(), "accuracy_retain": ideal(1)}
    same = [0.5, 0.52, 0.49]
    rows = _rows({"GoldModel": {"accuracy_forget": same, "accuracy_retain": [0.99] * 3},
                  "Identity": {"accuracy_forget": [0.51, 0.5, 0.5], "accuracy_retain": [0.9] * 3},
                  "A": {"accuracy_forget": [0.3, 0.3, 0.3], "accuracy_retain": [0.9] * 3},
                  "B": {"accuracy_forget": [0.1, 0.1, 0.1], "accuracy_retain": [0.95] * 3}})
    records = summarize(rows, targets=targets)
    by = {(r["unlearner"], r["metric"]): r for r in records}
    assert by[("A", "gold_gap")]["rank"] == "" and by[("B", "gold_gap")]["rank"] == ""
    assert by[("A", "gold_gap")]["self_check"] == NO_SEPARATION and not by[("A", "gold_gap")]["best"]
    assert "Not ranked: every metric of the gold gap fails the self-check" in format_wide(records, targets)
    assert by[("B", "accuracy_retain")]["best"], "retain accuracy separates; B is better than Identity"
    assert not by[("A", "accuracy_retain")]["best"], "A ties Identity: no best mark"
    # a method no better than Identity on a separating metric is never marked best
    rows = _rows({"GoldModel": {"accuracy_forget": [0.0, 0.01, 0.0]},
                  "Identity": {"accuracy_forget": [0.99, 1.0, 0.99]},
                  "Worse": {"accuracy_forget": [1.0, 1.0, 1.0]}})
    by = {(r["unlearner"], r["metric"]): r for r in summarize(rows, targets=targets)}
    assert by[("Worse", "gold_gap")]["rank"] == 1 and not by[("Worse", "accuracy_forget")]["best"]
    assert not by[("Worse", "gold_gap")]["best"]


def test_the_table_warns_when_one_evaluator_supplies_most_terms():
    targets = {"accuracy_forget": _family(as_gold(), "Accuracy"), "distance_*": _family(as_gold(0, None), "ModelDistance")}
    values = {"GoldModel": {"accuracy_forget": [0.0, 0.0], **{f"distance_{i}": [1.0, 1.1] for i in range(3)}},
              "Identity": {"accuracy_forget": [1.0, 1.0], **{f"distance_{i}": [0.0, 0.0] for i in range(3)}},
              "M": {"accuracy_forget": [0.1, 0.0], **{f"distance_{i}": [0.9, 1.0] for i in range(3)}}}
    text = " ".join(format_wide(summarize(_rows(values), targets=targets), targets, max_width=200).split())
    assert "ModelDistance supplies 3 of the 4 gold-gap terms (it weighs as 1 of 2 evaluators)" in text
    records = summarize(_rows(values), targets=targets, ranking=Ranking(("accuracy_forget",)))
    text = " ".join(format_wide(records, targets, max_width=200, ranking=Ranking(("accuracy_forget",))).split())
    assert "supplies" not in text and "over accuracy_forget (" in text


def test_a_config_names_its_ranking_metrics(tmp_path):
    from erasure.execution.experiment import build_experiment
    from erasure.results.directory import summarize_run

    config = digits_config(tmp_path, ranking={"metrics": ["accuracy_forget"], "weights": "metric"})
    experiment = build_experiment(copy.deepcopy(config))
    for bad, path in (({"metrics": ["accuracy_retain"]}, "ranking.metrics[0]"), ({"metrics": ["umia_*"]}, "ranking.metrics[0]"),
                      ({"weights": "loudest"}, "ranking.weights")):
        with pytest.raises(ConfigError) as err:
            build_experiment(digits_config(tmp_path, ranking=bad))
        assert err.value.path == path
    rows = _rows({"GoldModel": {"accuracy_forget": [0.0, 0.0], "accuracy_test": [0.9, 0.9]},
                  "Identity": {"accuracy_forget": [1.0, 1.0], "accuracy_test": [0.9, 0.9]},
                  "M": {"accuracy_forget": [0.2, 0.2], "accuracy_test": [0.5, 0.5]}})
    resolved = experiment.resolved_config()
    resolved["unlearners"] = [{"class": "GoldModel"}, {"class": "Identity"}, {"class": "M"}]
    records, _ = summarize_run(rows, tmp_path, resolved, experiment.evaluators)
    gap = next(r for r in records if r["unlearner"] == "M" and r["metric"] == "gold_gap")
    assert gap["mean"] == pytest.approx(0.2), "only accuracy_forget ranks"
    assert resolved["ranking"] == {"metrics": ["accuracy_forget"], "weights": "metric"}, "kept for summarize and report"


def test_docs_results_lists_the_target_of_every_built_in_metric():
    """docs/results.md's table of declarations names every key of every registered evaluator's
    ``metric_targets`` (an instance's, for evaluators whose names depend on parameters) on the
    evaluator's row, with the target it declares."""
    text = (ROOT / "docs" / "results.md").read_text()
    rows: dict[str, str] = {}
    for line in text.splitlines():
        m = re.match(r"\| `(\w+)` \|(.*)\|\s*$", line)
        if m:
            rows[m.group(1)] = rows.get(m.group(1), "") + m.group(2)
    missing = []
    for name, cls in registry("evaluator").items():
        if cls.__module__.split(".")[0] != "erasure":
            continue
        evaluator = build({"class": name, "parameters": dict(cls.contract_config.get("parameters", {}))}, "evaluator", name)
        for key, target in targets_of([evaluator]).items():
            if f"`{key}`" not in rows.get(name, "") or target.describe() not in rows.get(name, ""):
                missing.append(f"{name}: `{key}` ({target.describe()})")
    assert not missing, f"docs/results.md does not list: {missing}"
