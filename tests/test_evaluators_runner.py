"""Every new evaluator through the runner on a tiny digits config: no errors, sane extremes,
replicas reused through the model cache, and missing requirements reported by name."""
import json

import pytest

from erasure.execution.experiment import build_experiment
from erasure.execution.runner import Runner
from erasure.results.writers import read_rows

EVALUATORS = [
    {"class": "Accuracy"}, {"class": "UMIA", "parameters": {"n_splits": 3}}, {"class": "EntropyMIA"},
    {"class": "MIAEfficacy"}, {"class": "ForgettingQuality", "parameters": {"num_models": 4}},
    {"class": "ULiRA", "parameters": {"num_models": 4}}, {"class": "GoldDistance"}, {"class": "ZRF"},
    {"class": "RelearnTime", "parameters": {"max_steps": 30}}, {"class": "Scores"},
]


def _config(tmp_path, evaluators, unlearners=None):
    return {
        "name": "tiny_eval", "seeds": [0], "device": "cpu",
        "data": {"source": {"class": "SklearnDigits"}, "split": {"test_fraction": 0.3},
                 "forget": {"class": "ClassForget", "parameters": {"classes": [3]}}},
        "model": {"class": "MLP", "parameters": {"hidden": [16]}},
        "training": {"epochs": 3, "batch_size": 128},
        "unlearners": unlearners or [{"class": "Identity"}, {"class": "GoldModel"},
                                     {"class": "NegGrad", "parameters": {"epochs": 1, "lr": 0.01}}],
        "evaluators": evaluators,
        "output": {"dir": str(tmp_path / "out"), "writers": [{"class": "CSVWriter"}]},
        "cache": {"dir": str(tmp_path / "cache")},
    }


def _run(config):
    report = Runner(build_experiment(json.loads(json.dumps(config))), progress=False, out=lambda s: None, overwrite=True).run()
    rows = read_rows(report.results_path)
    return report, {(r["unlearner"], r["metric"]): r for r in rows}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("tiny_eval")
    config = _config(tmp_path, EVALUATORS)
    report, rows = _run(config)
    return tmp_path, config, report, rows


def test_every_evaluator_runs_without_error(tiny):
    _, _, report, rows = tiny
    errors = [r for r in rows.values() if r["status"] == "error"]
    assert not errors, errors
    for metric in ("entropy_mia_member_rate", "mia_efficacy", "forgetting_quality", "forgetting_quality_final",
                   "ulira_accuracy", "ulira_auc", "gold_kl_forget", "gold_js_test", "gold_activation_distance_retain",
                   "gold_parameter_l2", "zrf", "relearn_steps", "relearn_capped", "relearn_steps_gold", "aus",
                   "nomus", "ain", "avg_gap"):
        assert ("NegGrad", metric) in rows, metric


def test_extremes_are_where_they_belong(tiny):
    _, _, _, rows = tiny
    value = lambda u, m: float(rows[(u, m)]["value"])
    assert value("GoldModel", "gold_kl_forget") == 0 and value("GoldModel", "gold_parameter_l2") == 0
    assert value("GoldModel", "avg_gap") == 0
    assert value("Identity", "relearn_steps") == 0  # the original is its own target
    assert value("GoldModel", "relearn_steps") == value("GoldModel", "relearn_steps_gold")
    assert 0 <= value("NegGrad", "forgetting_quality") <= 1
    # Identity still classifies the forgotten class; gold never does: the per-example attack sees it
    assert value("Identity", "ulira_accuracy") > 0.7
    assert value("Identity", "forgetting_quality") < value("GoldModel", "forgetting_quality")


def test_replicas_come_from_the_cache_on_a_rerun(tiny):
    tmp_path, config, _, rows = tiny
    cached = sorted(p.name for p in (tmp_path / "cache").glob("*.pt"))
    # per seed: 1 original + 1 gold and 4 retrained replicas; ULiRA (varied originals): 4 originals and
    # 4 unlearned per unlearner (Identity, GoldModel, NegGrad), GoldModel's being 4 golds of the
    # replicas' seeds; ForgettingQuality (challenge protocol): 4 unlearned per unlearner from the
    # job's own original, GoldModel's again being golds trained with the 4 unlearning seeds
    assert len(cached) == 2 + 4 + (4 + 3 * 4 + 4) + 3 * 4
    _, again = _run(_config(tmp_path, [{"class": "ULiRA", "parameters": {"num_models": 4}}]))
    assert sorted(p.name for p in (tmp_path / "cache").glob("*.pt")) == cached
    assert again[("NegGrad", "ulira_accuracy")]["value"] == rows[("NegGrad", "ulira_accuracy")]["value"]


def test_missing_requirements_are_named(tmp_path):
    _, rows = _run(_config(tmp_path, [{"class": "Accuracy"}, {"class": "Scores", "parameters": {"scores": ["ain", "aus"]}}],
                           unlearners=[{"class": "Identity"}]))
    row = rows[("Identity", "Scores")]
    assert row["status"] == "error" and "relearn_steps" in row["error"] and "accuracy_test" not in row["error"]
