"""The execution layer: executors give equal results, jobs get their thread budget, reference models
are trained once and only when needed, and one job cannot spoil another."""
from __future__ import annotations

import copy
import json
import signal
from pathlib import Path

import pytest
import torch

from conftest import ROOT, tiny_config
from erasure.core.cache import ModelCache
from erasure.execution.experiment import build_experiment, load_experiment
from erasure.core.timing import Timing
from erasure.execution.runner import RunError, Runner
from erasure.execution.settings import Execution
from erasure.results.writers import read_rows

TIMINGS = ("wall_seconds", "cpu_seconds", "peak_rss_mb", "peak_cuda_mb", "speedup_vs_gold")
PLUGIN = "erasure_test_plugins"


def values(rows):
    return {(r["seed"], r["unlearner"], r["metric"], r["step"]): r["value"] for r in rows
            if r["status"] == "ok" and r["metric"] not in TIMINGS}


def run(config, *, lines=None, **options):
    options.setdefault("use_cache", False)
    out = lines.append if lines is not None else (lambda *_: None)
    return Runner(build_experiment(copy.deepcopy(config)), progress=False, out=out, **options).run()


def poc_config(tmp_path: Path, name: str) -> dict:
    """The proof of concept, shortened: 2 seeds, 8 epochs, no wandb."""
    config = json.loads(json.dumps(load_experiment(ROOT / "configs/proof_of_concept.jsonc").config))
    config.update(seeds=[0, 1], output={"dir": str(tmp_path / name), "writers": [{"class": "CSVWriter"}]},
                  cache={"enabled": True, "dir": str(tmp_path / f"cache-{name}")})
    config["training"]["epochs"] = 8
    return config


@pytest.fixture(scope="session")
def local_ray():
    """One local 2-CPU Ray shared by every Ray test."""
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install -r requirements-ray.txt)")
    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False)
    yield ray
    ray.shutdown()


def test_serial_and_local_pool_give_identical_values_and_cache_keys(tmp_path):
    reports = {}
    for executor in ("serial", "local"):
        config = poc_config(tmp_path, executor)
        config["execution"] = {"executor": executor, **({"workers": 2} if executor == "local" else {})}
        reports[executor] = run(config, use_cache=True)
    serial, local = (values(read_rows(reports[e].results_path)) for e in ("serial", "local"))
    assert serial == local and len(serial) == 2 * 5 * 6
    keys = {e: sorted(p.name for p in (tmp_path / f"cache-{e}").glob("*.pt")) for e in reports}
    assert keys["serial"] == keys["local"] and len(keys["serial"]) == 4  # original and gold of 2 seeds


def test_ray_gives_the_serial_values(tmp_path, local_ray):
    config = poc_config(tmp_path, "ray")
    config["unlearners"] = config["unlearners"][:3]
    serial = values(read_rows(run(config).results_path))
    config["output"]["dir"] = str(tmp_path / "ray-out")
    config["execution"] = {"executor": "ray"}
    lines: list[str] = []
    report = run(config, lines=lines)
    assert report.exit_code == 0
    assert values(read_rows(report.results_path)) == serial
    assert sum(line.startswith("[") for line in lines) == 2 * 3, "one line per job, streamed back"


def test_every_job_runs_with_the_cpus_per_job_threads(tmp_path):
    before = torch.get_num_threads()
    for cpus in (1, 2):
        config = tiny_config(tmp_path / str(cpus), imports=[PLUGIN], evaluators=[{"class": f"{PLUGIN}.ProcessFacts"}],
                             execution={"cpus_per_job": cpus})
        rows = read_rows(run(config).results_path)
        assert {float(r["value"]) for r in rows if r["metric"] == "torch_threads"} == {float(cpus)}
    assert torch.get_num_threads() == before, "the driver's own setting is restored"


def test_gold_is_trained_only_when_something_reads_it(tmp_path):
    config = tiny_config(tmp_path, unlearners=[{"class": "Identity"}, {"class": "NegGrad", "parameters": {"epochs": 1}}],
                         cache={"dir": str(tmp_path / "cache")})
    run(config, use_cache=True)
    assert len(list((tmp_path / "cache").glob("*.pt"))) == 1, "Accuracy alone needs the original only"
    config["unlearners"].append({"class": "GoldModel"})
    run(config, use_cache=True)
    assert len(list((tmp_path / "cache").glob("*.pt"))) == 2


def test_workers_that_need_the_same_model_train_it_once(tmp_path):
    config = tiny_config(tmp_path, imports=[PLUGIN], evaluators=[{"class": f"{PLUGIN}.ReadsGold"}],
                         unlearners=[{"class": "Identity"}, {"class": "NegGrad", "parameters": {"epochs": 1}}],
                         execution={"executor": "local", "workers": 2})
    scratch = Path(config["output"]["dir"]) / ".scratch-models"
    (scratch / "left-by-a-killed-run").mkdir(parents=True)
    lines: list[str] = []
    report = run(config, lines=lines)  # no cache: the run shares a scratch one between its workers
    assert report.exit_code == 0
    assert sum("gold model" in line and "trained" in line for line in lines) == 1, lines
    assert not scratch.exists(), "the scratch models are removed, with what a killed run left"


def test_a_worker_that_dies_costs_its_own_job_only(tmp_path):
    marker = tmp_path / "died-once"
    config = tiny_config(tmp_path, imports=[PLUGIN], unlearners=[
        {"class": f"{PLUGIN}.KillAlways"}, {"class": "Identity"},
        {"class": f"{PLUGIN}.KillOnce", "parameters": {"marker": str(marker)}}],
        execution={"executor": "local", "workers": 2, "max_retries": 1})
    report = run(config)
    rows = read_rows(report.results_path)
    by_label = {label: [r for r in rows if r["unlearner"] == label] for label in ("KillAlways", "Identity", "KillOnce")}
    assert [r["status"] for r in by_label["KillAlways"]] == ["error"]
    assert "worker process died" in by_label["KillAlways"][0]["error"]
    assert {r["status"] for r in by_label["Identity"]} == {"ok"}
    assert marker.exists() and {r["status"] for r in by_label["KillOnce"]} == {"ok"}, "retried once, then fine"
    assert report.exit_code == 1


def test_the_resolved_config_is_the_same_experiment(tmp_path):
    config = tiny_config(tmp_path, cache={"dir": str(tmp_path / "cache")})
    config["data"]["split"] = {}  # defaults that the resolved file spells out
    first = run(config, use_cache=True)
    resolved_path = first.results_path.parent / "config.resolved.json"
    resolved = json.loads(resolved_path.read_text())
    assert (resolved_path.parent / resolved["$schema"]).resolve() == (ROOT / "erasure/schema/config.schema.json").resolve()
    again = load_experiment(resolved_path)
    assert again.config_hash == build_experiment(copy.deepcopy(config)).config_hash
    lines: list[str] = []
    report = Runner(again, progress=False, out=lines.append).run()
    assert report.skipped == 1 and report.rows_written == 0, "its own results are recognised, not refused"
    report = Runner(again, progress=False, out=lines.append, overwrite=True).run()
    assert not any("trained" in line for line in lines), "every model comes from the cache: same keys"


def test_log_lines_without_a_terminal(tmp_path):
    lines: list[str] = []
    run(tiny_config(tmp_path, unlearners=[{"class": "Identity"}, {"class": "GoldModel"}]), lines=lines)
    assert any(line.startswith("seed 0: original model (seed 0) trained") for line in lines)
    jobs = [line for line in lines if line.startswith("[")]
    assert [j.split(":")[0] for j in jobs] == ["[1/2] seed 0", "[2/2] seed 0"]
    assert "accuracy_forget" in jobs[0]


def test_artifacts_are_saved_beside_the_results(tmp_path):
    config = tiny_config(tmp_path, imports=[PLUGIN], evaluators=[{"class": f"{PLUGIN}.ProcessFacts"}])
    report = run(config)
    from erasure.results.directory import read_artifacts

    (artifact,) = read_artifacts(report.results_path.parent)
    assert (artifact.seed, artifact.unlearner, artifact.name) == ("0", "Identity", "forget_targets")
    saved = artifact.load()
    assert len(saved) > 0 and set(saved.tolist()) == {0}  # ClassForget(classes=[0])


def test_a_job_that_writes_into_shared_data_is_an_error_and_spoils_nothing(tmp_path):
    clean = tiny_config(tmp_path / "clean", unlearners=[{"class": "NegGrad", "parameters": {"epochs": 1}}])
    expected = values(read_rows(run(clean).results_path))
    for what in ("inputs", "targets"):
        config = tiny_config(tmp_path / what, imports=[PLUGIN], unlearners=[
            {"class": f"{PLUGIN}.ChangesSharedData", "label": "A", "parameters": {"what": what}},
            {"class": "NegGrad", "parameters": {"epochs": 1}}])
        rows = read_rows(run(config).results_path)
        bad = [r for r in rows if r["unlearner"] == "A" and r["status"] == "error"]
        if what == "inputs":  # shared: detected, reported, and the seed rebuilt for the next job
            assert [r["metric"] for r in bad] == ["shared_state"] and "the dataset" in bad[0]["error"]
        else:  # the job's own copy: nothing to report
            assert not bad
        assert {k: v for k, v in values(rows).items() if k[1] == "NegGrad"} == expected


@pytest.fixture(scope="module")
def identity_two_seeds(tmp_path_factory):
    """The values of Identity over seeds 0 and 1 of the tiny config, in a clean run."""
    clean = tiny_config(tmp_path_factory.mktemp("clean"), seeds=[0, 1], unlearners=[{"class": "Identity"}])
    return values(read_rows(run(clean).results_path))


@pytest.mark.parametrize("how", ["in_place", "data", "numpy"])
def test_only_the_job_that_writes_into_shared_data_is_flagged(tmp_path, how, identity_two_seeds):
    """The seeds share the loaded inputs: after a job changes them, the data is restored for every
    seed, so the jobs after it (the next seed's too) keep their rows and their values. Writes that
    bypass autograd's version counter (``.data``, ``.numpy()``) are caught as well."""
    expected = identity_two_seeds
    config = tiny_config(tmp_path / how, imports=[PLUGIN], seeds=[0, 1], unlearners=[
        {"class": "Identity"}, {"class": f"{PLUGIN}.ChangesSharedData", "label": "A", "parameters": {"how": how}}])
    rows = read_rows(run(config).results_path)
    flagged = sorted((r["seed"], r["unlearner"]) for r in rows if r["metric"] == "shared_state")
    assert flagged == [("0", "A"), ("1", "A")]
    assert {k: v for k, v in values(rows).items() if k[1] == "Identity"} == expected


def test_the_shared_state_check_reads_a_fixed_amount_and_confirms_before_it_blames(monkeypatch):
    """A check reads a fixed number of values whatever the size; a write found by the version
    counter or the sample is confirmed with a full checksum, and one of the same values forgiven."""
    from erasure.execution import safety

    full_reads = []
    checksum = safety.checksum
    monkeypatch.setattr(safety, "checksum", lambda t: full_reads.append(t.numel()) or checksum(t))
    data = {"x": torch.rand(4096, 3, 8, 8), "y": torch.arange(4096)}
    guard = safety.SharedTensors(lambda: data)
    full_reads.clear()
    assert guard.changed() == [] and full_reads == [], "nothing changed: no full read"
    data["x"][5].add_(0.0)  # an in-place write of the same values
    assert guard.changed() == [] and full_reads == [data["x"].numel()]
    data["x"][5, 0, 0, 0] += 1.0  # one value: the version counter sees it
    assert guard.changed() == ["x"]
    guard = safety.SharedTensors(lambda: data)
    permuted = data["y"].data  # through .data (no version counter), values moved, the sum kept
    permuted[:2] = permuted[:2].flip(0)
    assert guard.changed() == ["y"]
    guard = safety.SharedTensors(lambda: data)
    data["x"] = data["x"].clone()  # replaced in the structure that holds it: judged by its values
    assert guard.changed() == []
    data["x"] = torch.zeros_like(data["x"])
    del data["y"]
    assert guard.changed() == ["y", "x"]


def test_no_model_is_trained_or_cached_on_shared_data_a_running_job_changed(tmp_path):
    from conftest import make_workspace

    cache = tmp_path / "cache"
    workspace = make_workspace(tiny_config(tmp_path, cache={"enabled": True, "dir": str(cache)}), use_cache=True)
    state = workspace.prepare_seeds()[0]
    workspace.reference(state, "original")
    state.partitions.dataset.inputs.data.mul_(0.0)  # what a job's component did, before it asked for gold
    with pytest.raises(RuntimeError, match="shared data changed before training the gold model"):
        workspace.reference(state, "gold")
    assert len(list(cache.glob("*.pt"))) == 1, "only the original is cached"


def test_nonfinite_models(tmp_path):
    config = tiny_config(tmp_path, imports=[PLUGIN], unlearners=[{"class": f"{PLUGIN}.NaNWeights"}, {"class": "Identity"}])
    rows = read_rows(run(config).results_path)
    (error,) = [r for r in rows if r["status"] == "error"]
    assert error["unlearner"] == "NaNWeights" and "non-finite" in error["error"]
    config = tiny_config(tmp_path / "diverged", training={"epochs": 2, "batch_size": 32,
                                                          "optimizer": {"class": "SGD", "parameters": {"lr": 1e30}}})
    with pytest.raises(RunError, match="original model of seed 0 has non-finite parameters"):
        run(config)
    assert read_rows(Path(config["output"]["dir"]) / "results.csv") == [], "no unlearner ran"


@pytest.mark.parametrize("kind, sigint", [("SystemExit", "default"), ("KeyboardInterrupt", "default"),
                                          ("KeyboardInterrupt", "ignored")])
def test_exits_raised_by_a_component_are_its_error_rows(tmp_path, kind, sigint):
    """Also where SIGINT is ignored, as in a job a shell started in the background (``cmd &``)."""
    config = tiny_config(tmp_path, imports=[PLUGIN], unlearners=[
        {"class": f"{PLUGIN}.Raises", "parameters": {"kind": kind}}, {"class": "Identity"}])
    before = signal.signal(signal.SIGINT, signal.default_int_handler if sigint == "default" else signal.SIG_IGN)
    try:
        rows = read_rows(run(config).results_path)
    except KeyboardInterrupt:
        pytest.fail("a KeyboardInterrupt the component raised stopped the run")
    finally:
        signal.signal(signal.SIGINT, before)
    assert [(r["unlearner"], r["status"]) for r in rows if r["status"] != "ok"] == [("Raises", "error")]
    assert any(r["unlearner"] == "Identity" for r in rows)


def test_nan_values_say_why(tmp_path):
    config = tiny_config(tmp_path, imports=[PLUGIN], evaluators=[{"class": f"{PLUGIN}.UndefinedValues"}])
    report = run(config)
    rows = {r["metric"]: r for r in read_rows(report.results_path)}
    assert (rows["explained"]["status"], rows["explained"]["error"]) == ("undefined", "no samples to score")
    assert rows["unexplained"]["status"] == "undefined" and "without saying why" in rows["unexplained"]["error"]
    assert rows["fine"]["status"] == "ok" and report.exit_code == 0
    assert run(config).skipped == 1, "an undefined value is a finished job, not one to retry"


def test_execution_settings_are_validated(tmp_path):
    from erasure.core.errors import ConfigError

    with pytest.raises(ConfigError, match=r"execution\.workers"):
        build_experiment(tiny_config(tmp_path, execution={"executor": "serial", "workers": 4}))
    with pytest.raises(ConfigError, match=r"execution\.executor: expected one of"):
        build_experiment(tiny_config(tmp_path, execution={"executor": "slurm"}))
    assert Execution(executor="local", cpus_per_job=1).pool_size() >= 1


# ------------------------------------------------------------------ the cache
def _tiny_model():
    torch.manual_seed(0)
    return torch.nn.Linear(3, 2)


def test_cache_degrades_when_its_directory_cannot_be_written(tmp_path, caplog):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    cache = ModelCache(blocker / "models")
    calls = []
    model, _, hit = cache.get_or_train("k", _tiny_model(), lambda m: calls.append(1) or Timing(wall_seconds=1.0))
    assert calls == [1] and not hit and not cache.enabled
    assert "going on without a cache" in caplog.text


@pytest.mark.parametrize("damage", ["metadata without keys", "weights are a directory", "timing missing"])
def test_cache_entries_with_damaged_metadata_are_rebuilt(tmp_path, damage):
    cache = ModelCache(tmp_path)
    train = lambda m: Timing(wall_seconds=1.0)  # noqa: E731
    cache.get_or_train("k", _tiny_model(), train)
    weights, meta = tmp_path / "k.pt", tmp_path / "k.json"
    if damage == "metadata without keys":
        meta.write_text("{}")
    elif damage == "weights are a directory":
        weights.unlink()
        weights.mkdir()
    else:
        record = json.loads(meta.read_text())
        del record["timing"]
        meta.write_text(json.dumps(record))
    _, _, hit = cache.get_or_train("k", _tiny_model(), train)
    assert not hit and weights.is_file()
    assert cache.get_or_train("k", _tiny_model(), train)[2], "rebuilt entries load again"


def test_no_component_can_change_what_other_jobs_get(tmp_path):
    """The recipe is each job's own copy; the gold and original models are shared, so a job that
    writes into them is an error row, and the seed's state is rebuilt for the jobs after it."""
    clean = tiny_config(tmp_path / "clean", unlearners=[{"class": "NegGrad", "parameters": {"epochs": 1}}],
                        imports=[PLUGIN], evaluators=[{"class": "Accuracy"}, {"class": f"{PLUGIN}.RecipeSeen"}])
    expected = values(read_rows(run(clean).results_path))
    recipe = tiny_config(tmp_path / "recipe", imports=[PLUGIN], evaluators=clean["evaluators"], unlearners=[
        {"class": f"{PLUGIN}.ChangesTheRecipe", "label": "A"}, {"class": "NegGrad", "parameters": {"epochs": 1}}])
    rows = read_rows(run(recipe).results_path)
    assert {k: v for k, v in values(rows).items() if k[1] == "NegGrad"} == expected
    assert {r["metric"]: float(r["value"]) for r in rows if r["unlearner"] == "A" and r["metric"].startswith("recipe")} \
        == {"recipe_epochs": 999.0, "recipe_lr": 123.0}, "the job changed its own copy"
    for name, unlearners, evaluators, what in (
        ("gold", [{"class": f"{PLUGIN}.ChangesGold", "label": "A"}], [{"class": "Accuracy"}], "gold"),
        ("original", [{"class": "Identity", "label": "A"}], [{"class": f"{PLUGIN}.ChangesTheOriginal"}], "original"),
    ):
        config = tiny_config(tmp_path / name, imports=[PLUGIN], evaluators=[*evaluators, *clean["evaluators"]],
                             unlearners=[*unlearners, {"class": "NegGrad", "parameters": {"epochs": 1}}])
        rows = read_rows(run(config).results_path)
        bad = [r for r in rows if r["unlearner"] == "A" and r["status"] == "error"]
        assert [r["metric"] for r in bad] == ["shared_state"] and what in bad[0]["error"]
        assert {k: v for k, v in values(rows).items() if k[1] == "NegGrad" and k[2] != "x"} == expected


def test_a_component_that_changes_its_parameters_keeps_its_job_identity(tmp_path):
    config = tiny_config(tmp_path, imports=[PLUGIN], unlearners=[{"class": f"{PLUGIN}.ChangesItsParameters"}],
                         seeds=[0, 1])
    first = run(config)
    rows = read_rows(first.results_path)
    assert {r["parameters"] for r in rows} == {'{"steps": 1}'}, "rows carry the identity the plan computed"
    again = run(config)
    assert again.skipped == 2 and again.rows_written == 0, "a rerun finds both jobs finished"
    assert all(r["n"] == 2 for r in again.summary if r["metric"] == "accuracy_forget")
