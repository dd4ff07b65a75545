"""Sweeps, search spaces and the equal-budget tuning protocol."""
from __future__ import annotations

import copy
import csv
import inspect
import json
import math
from pathlib import Path

import pytest

from conftest import tiny_config
from erasure.cli import main
from erasure.execution.experiment import build_experiment
from erasure.core.errors import ConfigError
from erasure.core.params import Choice, check_search_space
from erasure.core.registry import load_builtins, registry
from erasure.execution.runner import RunError, Runner
from erasure.results.summary import summarize
from erasure.results.targets import as_gold, gold_gap, ideal
from erasure.results.writers import read_rows
from erasure.tuning.objectives import gold_free, trial_value
from erasure.tuning.protocol import tune

load_builtins()
METHODS = [{"class": "FineTuning", "parameters": {"epochs": 1}}, {"class": "NegGrad", "parameters": {"epochs": 1}}]


def tuning_config(tmp_path: Path, **tuning) -> dict:
    settings = {"trials": 3, "seeds": [100, 101], "max_epochs": 2, **tuning}
    return tiny_config(tmp_path, unlearners=[{"class": "Identity"}, {"class": "GoldModel"}, *copy.deepcopy(METHODS)],
                       evaluators=[{"class": "Accuracy"}], tuning=settings)


def run(config, **options):
    options.setdefault("use_cache", False)
    options.setdefault("out", lambda *_: None)
    return Runner(build_experiment(copy.deepcopy(config)), progress=False, tuner=tune, **options).run()


def trials(output_dir: Path) -> list[dict]:
    with open(output_dir / "tuning" / "trials.csv", newline="") as f:
        return list(csv.DictReader(f))


# ------------------------------------------------------------------- sweeps
def test_a_sweep_expands_an_entry_into_labelled_jobs(tmp_path):
    config = tiny_config(tmp_path, unlearners=[{"class": "NegGrad", "sweep": {"lr": [1e-4, 1e-3, 1e-2], "epochs": [2, 5]}}])
    exp = build_experiment(config)
    labels = [e.label for e in exp.unlearners]
    assert labels[:3] == ["NegGrad lr=0.0001 epochs=2", "NegGrad lr=0.0001 epochs=5", "NegGrad lr=0.001 epochs=2"]
    assert len(labels) == 6
    assert {(e.unlearner.lr, e.unlearner.epochs) for e in exp.unlearners} == {(lr, ep) for lr in (1e-4, 1e-3, 1e-2)
                                                                              for ep in (2, 5)}
    assert exp.unlearners[1].swept == {"lr": 1e-4, "epochs": 5}
    config["unlearners"][0]["sweep"]["lr"][1] = -1.0
    with pytest.raises(ConfigError, match=r"unlearners\[0\]\.sweep\.lr\[1\]: expected a value > 0"):
        build_experiment(config)
    config["unlearners"][0]["sweep"] = {"lr": []}
    with pytest.raises(ConfigError, match=r"unlearners\[0\]\.sweep\.lr: expected at least 1 item"):
        build_experiment(config)


def test_a_top_level_sweep_runs_one_sub_experiment_per_value(tmp_path, capsys):
    config = tiny_config(tmp_path, unlearners=[{"class": "Identity"}, {"class": "GoldModel"}],
                         sweep={"data.forget.parameters.classes": [[0], [1]]})
    path = tmp_path / "sweep.json"
    path.write_text(json.dumps(config))
    assert main([str(path), "--no-progress", "--no-cache"]) == 0
    out = Path(config["output"]["dir"])
    subs = sorted(p.name for p in out.iterdir() if p.is_dir())
    assert subs == ["data.forget.parameters.classes=[0]", "data.forget.parameters.classes=[1]"]
    with open(out / "sweep_summary.csv", newline="") as f:
        records = list(csv.DictReader(f))
    assert {r["data.forget.parameters.classes"] for r in records} == {"[0]", "[1]"}
    forgotten = {json.loads(r["data.forget.parameters.classes"])[0]: float(r["mean"]) for r in records
                 if r["unlearner"] == "GoldModel" and r["metric"] == "accuracy_forget_test"}
    assert forgotten == {0: 0.0, 1: 0.0}, "each sub-experiment forgot its own class"
    assert "gold gap by data.forget.parameters.classes" in capsys.readouterr().out


# ------------------------------------------------------------ search spaces
@pytest.mark.parametrize("name", sorted(registry("unlearner")))
def test_every_search_space_is_valid_and_holds_the_defaults(name):
    cls = registry("unlearner")[name]
    space = check_search_space(cls, cls.search_space, name)
    defaults = inspect.signature(cls.__init__).parameters
    for param, dim in space.items():
        default = defaults[param].default
        inside = default in dim.values if isinstance(dim, Choice) else dim.low <= default <= dim.high
        assert inside, f"{name}.{param} default {default} lies outside {dim}"
    # SISA and CertifiedRemoval: exact / certified, every parameter shapes the original's training scheme
    trainable = name not in ("Identity", "GoldModel", "WassersteinBarycenter", "Cascade", "SaliencyMask", "SISA",
                             "CertifiedRemoval")
    assert bool(space) == trainable, f"{name} should {'' if trainable else 'not '}declare a search space"


def test_a_config_search_space_is_checked_like_parameters(tmp_path, capsys):
    def with_search(search):
        return tiny_config(tmp_path, unlearners=[{"class": "NegGrad", "search": search}])

    exp = build_experiment(with_search({"lr": {"log_uniform": [1e-4, 1e-2]}, "epochs": {"int": [1, 3]}}))
    assert set(exp.unlearners[0].search) == {"lr", "epochs"}, "the entry's space replaces the class's"
    for search, message in (
        ({"lrr": {"uniform": [0.1, 1]}}, r"search\.lrr: NegGrad has no parameter 'lrr' to search; did you mean 'lr'"),
        ({"lr": {"log_uniform": [0.1, 0.01]}}, r"search\.lr\.log_uniform: expected low < high"),
        ({"epochs": {"uniform": [0.5, 3]}}, r"search\.epochs: expected an integer"),
        ({"lr": {"log_uniform": [0, 1]}}, r"search\.lr\.log_uniform: a log-uniform range needs low > 0"),
        ({"lr": [0.1, 1]}, r"search\.lr: expected \{\"log_uniform\""),
    ):
        with pytest.raises(ConfigError, match=message):
            build_experiment(with_search(search))
    assert main(["--list", "unlearners"]) == 0
    assert "search: epochs int [1, 10], lr log-uniform [1e-05, 0.01]" in capsys.readouterr().out


# --------------------------------------------------------------- objectives
def test_objectives():
    targets = {"accuracy_forget": as_gold(), "accuracy_test": as_gold(), "accuracy_retain": ideal(1)}
    values = {"accuracy_forget": 0.4, "accuracy_test": 0.8, "accuracy_retain": 0.9}
    gold = {"accuracy_forget": 0.1, "accuracy_test": 0.7, "accuracy_retain": 1.0}
    original = {"accuracy_forget": 1.0, "accuracy_test": 0.9, "accuracy_retain": 0.95}
    assert trial_value("gold_gap", values, gold, original, targets) == (gold_gap(values, gold, targets), "")
    assert trial_value("gold_gap", values, gold, original, targets)[0] == pytest.approx((0.3 + 0.1) / 2)
    assert gold_free(values, original) == pytest.approx(0.0 + 0.05), "random forgetting: FA below TA, RA drop 0.05"
    assert gold_free({**values, "accuracy_forget_test": 0.2}, original) == pytest.approx(0.2 + 0.05)
    assert trial_value("accuracy_forget:min", values, gold, original, targets) == (0.4, "")
    assert trial_value("accuracy_forget:max", values, gold, original, targets) == (-0.4, "")
    value, why = trial_value("umia_accuracy:min", values, gold, original, targets)
    assert math.isnan(value) and "umia_accuracy" in why


# ----------------------------------------------------------------- protocol
@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    """One tuned run: its output directory and report."""
    folder = tmp_path_factory.mktemp("tuned")
    config = tuning_config(folder)
    config["unlearners"].append({"class": "FineTuning", "label": "FT as given", "search": {}, "parameters": {"epochs": 1}})
    said: list[str] = []
    report = run(config, out=said.append)
    return folder / "out", report, said


def test_every_method_gets_the_same_budget_and_the_paper_default_first(tuned):
    out, _, said = tuned
    rows = trials(out)
    assert {m: sum(r["method"] == m for r in rows) for m in ("FineTuning", "NegGrad")} == {"FineTuning": 3, "NegGrad": 3}
    first = {r["method"]: json.loads(r["parameters"]) for r in rows if r["trial"] == "0"}
    assert first["FineTuning"] == {"epochs": 1, "lr": 0.02}, "trial 0 is the entry's own setting (lr: the paper's)"
    assert first["NegGrad"] == {"epochs": 1, "lr": 0.001}
    assert all(r["state"] == "COMPLETE" for r in rows)
    assert all(json.loads(r["parameters"])["epochs"] <= 2 for r in rows), "max_epochs caps every method alike"
    assert "FT as given" not in {r["method"] for r in rows}


def test_an_untuned_method_is_named_and_warned_about(tuned):
    _, _, said = tuned
    assert any(line.startswith("tuning 2 method(s) (FineTuning, NegGrad)") for line in said), said
    warnings = [line for line in said if line.startswith("warning: not tuned")]
    assert len(warnings) == 1 and "FT as given" in warnings[0], said
    assert "GoldModel" not in warnings[0] and "Identity" not in warnings[0], "references have nothing to tune"
    per_trial = [line for line in said if line.startswith("tuning NegGrad trial ")]
    assert len(per_trial) == 3 and "trial 3/3: gold_gap " in per_trial[-1] and '"lr"' in per_trial[-1], said


def test_the_evaluation_uses_the_best_parameters_and_says_where_they_came_from(tuned):
    out, report, _ = tuned
    best = json.loads((out / "tuning" / "best.json").read_text())
    rows = read_rows(report.results_path)
    for method in ("FineTuning", "NegGrad"):
        values = [float(r["value"]) for r in trials(out) if r["method"] == method and r["state"] == "COMPLETE"]
        assert best[method]["value"] == pytest.approx(min(values))
        params = {json.loads(r["parameters"])["lr"] for r in rows if r["unlearner"] == method}
        assert params == {best[method]["parameters"]["lr"]}
        provenance = {r["metric"]: float(r["value"]) for r in rows if r["unlearner"] == method and r["metric"].startswith("tuning")}
        assert provenance == {"tuning_objective": pytest.approx(best[method]["value"]), "tuning_trials": 3.0}
    resolved = json.loads((out / "config.resolved.json").read_text())
    lr = {u["label"]: u["parameters"]["lr"] for u in resolved["unlearners"] if "lr" in u["parameters"]}
    assert lr == {**{m: best[m]["parameters"]["lr"] for m in ("FineTuning", "NegGrad")}, "FT as given": 0.02}


def test_tuning_never_reads_the_test_split_or_the_evaluation_seeds(tmp_path, monkeypatch):
    import erasure.execution.workspace as workspace
    from erasure.data.partitions import split_train_test

    seen = []
    real = workspace.make_request_partitions

    def recording(dataset, split, requests, seed, prepare=None, named=(), holdout=None, **hooks):
        made = real(dataset, split, requests, seed, prepare, named, holdout, **hooks)
        seen.append((seed, holdout, dataset, split, made))
        return made

    monkeypatch.setattr(workspace, "make_request_partitions", recording)
    run(tuning_config(tmp_path))
    tuning = [s for s in seen if s[1] is not None]
    assert {s[0] for s in tuning} == {100, 101}, "tuning partitions come from the tuning seeds only"
    assert {s[0] for s in seen if s[1] is None} == {0}, "the evaluation seeds are the config's"
    for seed, _, dataset, split, made in tuning:
        _, test = split_train_test(dataset, split, seed)
        used = set().union(*(set(ix.tolist()) for r in made for p in (r.unlearning, r.evaluation)
                             for ix in p.indices.values()))
        assert not used & set(test.tolist()), "no index of the test split reaches the tuning jobs"


def test_a_fixed_sampler_seed_chooses_the_same_parameters(tuned, tmp_path):
    out, _, _ = tuned
    again = tmp_path / "again"
    run(tuning_config(again))
    first, second = (json.loads((d / "tuning" / "best.json").read_text()) for d in (out, again / "out"))
    assert first == second


def test_a_killed_study_resumes(tmp_path):
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    run(tuning_config(tmp_path, trials=2))
    out = Path(tuning_config(tmp_path)["output"]["dir"])
    before = [r for r in trials(out)]
    storage = JournalStorage(JournalFileBackend(str(out / "tuning" / "study.journal")))
    optuna.load_study(study_name="NegGrad", storage=storage).ask()  # a trial a killed run left running
    run(tuning_config(tmp_path, trials=3))
    after = trials(out)
    for method in ("FineTuning", "NegGrad"):
        kept = [r for r in after if r["method"] == method][:2]
        assert [r["parameters"] for r in kept] == [r["parameters"] for r in before if r["method"] == method]
        counted = [r for r in after if r["method"] == method and not r["reason"].startswith("stale")]
        assert len(counted) == 3 and all(r["state"] == "COMPLETE" for r in counted)
    assert [r["state"] for r in after if r["reason"].startswith("stale")] == ["FAIL"]


def test_a_trial_over_the_time_budget_fails(tmp_path):
    with pytest.raises(RunError, match="no trial finished"):
        run(tuning_config(tmp_path, max_time_fraction=1e-9, trials=1))
    rows = trials(Path(tuning_config(tmp_path)["output"]["dir"]))
    assert [r["state"] for r in rows] == ["FAIL", "FAIL"]
    assert all("over 1e-09 of gold's" in r["reason"] for r in rows)


@pytest.fixture(scope="module")
def pruned(tmp_path_factory):
    """The same pruned tuning on the serial executor and on a local pool of 2: output directories.
    12 trials take TPE past its 10 random start-up trials, where batching could change its choices."""
    config = tiny_config(tmp_path_factory.mktemp("pruned"), unlearners=[{"class": "MIRegularized", "parameters": {"epochs": 3}}],
                         evaluators=[{"class": "Accuracy"}],
                         tuning={"trials": 12, "seeds": [100, 101], "objective": "accuracy_forget:min", "prune": True,
                                 "max_epochs": 3})
    outputs = {}
    for executor in ("serial", "local"):
        config["output"]["dir"] = str(tmp_path_factory.mktemp(executor) / "out")
        config["execution"] = {"executor": executor, **({"workers": 2} if executor == "local" else {})}
        assert run(config).exit_code == 0
        outputs[executor] = Path(config["output"]["dir"])
    return outputs


def test_pruning_sees_the_values_a_method_logs_each_epoch_and_stops_trials(pruned):
    import optuna

    from erasure.tuning.pruning import journal_storage

    study = optuna.load_study(study_name="MIRegularized", storage=journal_storage(pruned["local"] / "tuning" / "study.journal"))
    assert all(t.intermediate_values for t in study.trials), "each epoch's forget accuracy reached the pruner"
    steps = set().union(*(t.intermediate_values for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE))
    assert steps == set(range(8)), "epochs 0-3 of both tuning seeds, each its own step"
    states = [r["state"] for r in trials(pruned["local"])]
    assert "PRUNED" in states and states.count("COMPLETE") >= 5


def test_the_per_epoch_reports_rank_on_the_configs_ranking_metrics(tmp_path):
    """Pruning compares the same gold gap the trial's final value is: restricted to ``ranking.metrics``."""
    import optuna

    from erasure.results.targets import Ranking
    from erasure.tuning.pruning import journal_storage, pruning_hook, trial_link

    journal = tmp_path / "study.journal"
    trial = optuna.create_study(study_name="M", storage=journal_storage(journal)).ask()
    targets = {"accuracy_forget": as_gold(), "accuracy_test": as_gold()}
    gold = {"accuracy_forget": 0.0, "accuracy_test": 0.9}
    epoch = {"accuracy_forget": 0.5, "accuracy_test": 0.5}
    for step, ranking in enumerate([Ranking(("accuracy_forget",)), Ranking()]):
        link = trial_link(journal, "M", trial._trial_id, step, 2, gold, ranking)
        pruning_hook(link, "gold_gap", targets)(0, epoch)
    reported = optuna.load_study(study_name="M", storage=journal_storage(journal)).trials[0].intermediate_values
    assert reported == {0: pytest.approx(0.5), 1: pytest.approx((0.5 + 0.4) / 2)}


def test_tuning_chooses_the_same_whatever_the_executor(pruned):
    serial, local = ([{k: r[k] for k in ("method", "trial", "state", "value", "parameters")} for r in trials(pruned[e])]
                     for e in ("serial", "local"))
    assert serial == local
    assert (pruned["serial"] / "tuning" / "best.json").read_text() == (pruned["local"] / "tuning" / "best.json").read_text()


def test_tuning_runs_on_the_local_pool(tmp_path):
    config = tuning_config(tmp_path, trials=2)
    config["unlearners"] = config["unlearners"][:3]
    config["execution"] = {"executor": "local", "workers": 2}
    report = run(config)
    assert report.exit_code == 0
    assert [r["state"] for r in trials(Path(config["output"]["dir"]))] == ["COMPLETE"] * 2


def test_tuning_seeds_must_differ_from_the_evaluation_seeds(tmp_path):
    with pytest.raises(ConfigError, match=r"tuning\.seeds: tuning seeds must differ"):
        build_experiment(tuning_config(tmp_path, seeds=[0]))


# ------------------------------------------------------------- nested seeds
def test_unlearning_seeds_run_each_method_several_times_per_original(tmp_path):
    config = tiny_config(tmp_path, seeds=[0, 1], unlearning_seeds=[0, 1],
                         unlearners=[{"class": "Identity"}, {"class": "RandomLabels", "parameters": {"epochs": 1, "lr": 0.05}}])
    report = run(config)
    rows = read_rows(report.results_path)
    runs = {(r["seed"], r["unlearning_seed"]) for r in rows if r["unlearner"] == "RandomLabels"}
    assert runs == {("0", "0"), ("0", "1"), ("1", "0"), ("1", "1")}
    retain = {(r["seed"], r["unlearning_seed"]): float(r["value"]) for r in rows
              if r["unlearner"] == "RandomLabels" and r["metric"] == "accuracy_retain"}
    assert retain[("0", "0")] != retain[("0", "1")], "another unlearning seed, another run"
    record = next(r for r in summarize(rows) if r["unlearner"] == "RandomLabels" and r["metric"] == "accuracy_retain")
    assert record["n"] == 2 and math.isfinite(record["std_unlearning"]) and record["std_unlearning"] > 0
    identity = next(r for r in summarize(rows) if r["unlearner"] == "Identity" and r["metric"] == "accuracy_retain")
    assert identity["std_unlearning"] == 0.0
    assert run(config).skipped == 2 * 2 * 2, "every (seed, unlearning seed, method) job is finished"
