"""Named partitions (``data.partitions``): selectors, set operations, seeding, build-time checks of
the parameters that name a partition, and the partitions evaluators and results see."""
from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch

from conftest import make_runner, make_workspace, tiny_config
from erasure.cli import main
from erasure.execution.experiment import build_experiment
from erasure.core.errors import ConfigError
from erasure.results.writers import read_rows

PARTITIONS = {
    "val": {"from": "retain", "select": [{"fraction": 0.25, "stratified": True}]},
    "sample": {"from": "train", "select": [{"count": 30}]},
    "forget_0": {"from": "forget", "select": [{"classes": [0]}]},
    "test_12": {"from": "test", "select": [{"classes": [1, 2]}]},
    "group1": {"from": "test", "select": [{"attribute": "group", "values": [1]}]},
    "group1_range": {"from": "test", "select": [{"attribute": "group", "range": [0.5, 7]}]},
    "head": {"from": "retain", "select": [{"first": 7}]},
    "listed": {"from": "test", "select": [{"indices": [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]}]},
    "probe": {"union": ["val", "forget_0"]},
    "both": {"intersection": ["test_12", "group1"]},
    "rest": {"difference": ["retain", "val"]},
    "chained": {"from": "test", "select": [{"classes": [1, 2]}, {"attribute": "group", "values": [1]}, {"first": 3}]},
}


def config_with(tmp_path, partitions=None, **changes):
    config = tiny_config(tmp_path, **changes)
    config["data"]["partitions"] = copy.deepcopy(PARTITIONS if partitions is None else partitions)
    return config


def partitions_of(config, seed=0):
    config = copy.deepcopy(config)
    config["seeds"] = [seed]
    return make_workspace(config).prepare_seeds()[0].partitions


def as_set(index):
    return set(index.tolist())


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    return partitions_of(config_with(tmp_path_factory.mktemp("parts")))


def test_each_selector_keeps_what_it_says(parts):
    targets, group = parts.dataset.targets, parts.dataset.attributes["group"]
    retain, test, forget, train = (as_set(parts[n]) for n in ("retain", "test", "forget", "train"))
    # a seeded stratified quarter of retain: a quarter of each class (to one sample)
    val = parts["val"]
    assert as_set(val) <= retain and len(val) == round(0.25 * len(retain))
    for c in torch.unique(targets[parts["retain"]]).tolist():
        in_retain = int((targets[parts["retain"]] == c).sum())
        assert abs(int((targets[val] == c).sum()) - 0.25 * in_retain) <= 1, c
    assert as_set(parts["sample"]) <= train and len(parts["sample"]) == 30
    assert as_set(parts["forget_0"]) == {i for i in forget if targets[i] == 0}
    assert as_set(parts["test_12"]) == {i for i in test if targets[i] in (1, 2)}
    assert as_set(parts["group1"]) == {i for i in test if group[i] == 1} != set()
    assert torch.equal(parts["group1_range"], parts["group1"])
    assert parts["head"].tolist() == sorted(retain)[:7]
    assert as_set(parts["listed"]) == test & set(range(13))
    assert as_set(parts["probe"]) == as_set(val) | as_set(parts["forget_0"])
    assert as_set(parts["both"]) == as_set(parts["test_12"]) & as_set(parts["group1"])
    assert as_set(parts["rest"]) == retain - as_set(val)
    assert parts["chained"].tolist() == sorted(as_set(parts["both"]))[:3]
    for name in PARTITIONS:  # sorted and on the dataset's device, like the built-in partitions
        assert torch.equal(parts[name], torch.sort(parts[name]).values) and parts[name].dtype == torch.long


def test_random_selections_depend_on_the_seed_and_the_name_only(tmp_path, parts):
    reordered = dict(reversed(list(PARTITIONS.items())))
    reordered["extra"] = {"from": "retain", "select": [{"fraction": 0.5}]}  # one more random draw, listed first
    again = partitions_of(config_with(tmp_path, dict([("extra", reordered.pop("extra")), *reordered.items()])))
    for name in PARTITIONS:
        assert torch.equal(again[name], parts[name]), name
    other_seed = partitions_of(config_with(tmp_path), seed=1)
    assert not torch.equal(other_seed["sample"], parts["sample"])


def test_a_run_indices_file_gives_a_named_partition_back(tmp_path, parts):
    """A run writes every partition to indices/seed<N>.json; the path selector reads its own name's list."""
    record = {name: parts[name].tolist() for name in parts.names}
    (tmp_path / "seed0.json").write_text(json.dumps(record))
    np.save(tmp_path / "val.npy", np.array(parts["val"].tolist()))
    again = partitions_of(config_with(tmp_path, {
        "val": {"from": "retain", "select": [{"path": str(tmp_path / "seed{seed}.json")}]},
        "from_npy": {"from": "train", "select": [{"path": str(tmp_path / "val.npy")}]},
        "other_key": {"from": "test", "select": [{"path": str(tmp_path / "seed0.json"), "key": "group1"}]},
    }))
    assert torch.equal(again["val"], parts["val"])
    assert torch.equal(again["from_npy"], parts["val"])
    assert torch.equal(again["other_key"], parts["group1"])


def test_several_deletion_requests_get_named_partitions_in_both_views(tmp_path):
    config = config_with(tmp_path, {"deleted_0": {"from": "forget", "select": [{"classes": [0]}]},
                                    "this_request": {"from": "request"}})
    config["data"]["forget"] = [{"class": "ClassForget", "parameters": {"classes": [0]}},
                                {"class": "ClassForget", "parameters": {"classes": [1]}}]
    state = make_workspace(config).prepare_seeds()[0]
    second = state.requests[1]
    # the evaluation view's forget is everything deleted so far, the unlearning view's this request's samples
    assert torch.equal(second.evaluation["deleted_0"], state.requests[0].unlearning["forget"])
    assert len(second.unlearning["deleted_0"]) == 0
    for view in (second.unlearning, second.evaluation):
        assert torch.equal(view["this_request"], second.unlearning["forget"])


def test_a_tensor_shared_by_seeds_and_requests_goes_to_the_device_once(tmp_path):
    config = tiny_config(tmp_path, seeds=[0, 1])
    config["data"]["forget"] = [{"class": "ClassForget", "parameters": {"classes": [0]}},
                                {"class": "ClassForget", "parameters": {"classes": [1]}}]
    views = [p for s in make_workspace(config).prepare_seeds() for r in s.requests for p in (r.unlearning, r.evaluation)]
    memo: dict = {}
    moved = [p.to("meta", memo) for p in views]  # "meta": a device that holds no data
    assert all(p.dataset.inputs.device.type == "meta" for p in moved)
    assert len({id(p.dataset.inputs) for p in moved}) == len({id(p.dataset.inputs) for p in views}) < len(views)
    copies = [v.to("meta") for v in views]
    assert len({id(p.dataset.inputs) for p in copies}) == len(views), "without a memo: a copy each"


def test_named_partitions_reach_evaluators_and_results(tmp_path):
    config = config_with(tmp_path, {"val": PARTITIONS["val"], "group1": PARTITIONS["group1"]}, evaluators=[
        {"class": "Accuracy", "parameters": {"partitions": ["val", "group1", "test"]}},
        {"class": "SklearnMetric", "parameters": {"metric": "accuracy_score", "partition": "group1"}},
        {"class": "ModelDistance", "parameters": {"partitions": ["val"], "per_layer": False}},
        {"class": "ZRF", "parameters": {"partition": "group1"}},
    ])
    runner = make_runner(config)
    report = runner.run()
    assert report.exit_code == 0
    rows = {r["metric"]: float(r["value"]) for r in read_rows(report.results_path) if r["unlearner"] == "Identity"}
    assert {"accuracy_val", "accuracy_group1", "accuracy_test", "accuracy_score_group1", "distance_original_kl_val",
            "zrf"} <= set(rows)
    assert "accuracy_forget" not in rows, "a list of partitions replaces the default ones"
    state = runner.workspace.prepare_seeds()[0]
    original = runner.workspace.reference(state, "original")[0]  # Identity: the unlearned model is the original
    with torch.no_grad():
        for name in ("val", "group1"):
            index = state.partitions[name]
            expected = (original(state.partitions.dataset.inputs[index]).argmax(1) == state.partitions.targets(name))
            assert rows[f"accuracy_{name}"] == pytest.approx(float(expected.float().mean()))
    assert rows["accuracy_score_group1"] == pytest.approx(rows["accuracy_group1"])
    assert rows["distance_original_kl_val"] == pytest.approx(0, abs=1e-6)
    saved = json.loads((runner.exp.output_dir / "indices" / "seed0.json").read_text())
    assert saved["val"] == state.partitions["val"].tolist()


def test_outcome_partitions_carry_the_named_ones(tmp_path):
    workspace = make_workspace(config_with(tmp_path, {"val": PARTITIONS["val"]}))
    state = workspace.prepare_seeds()[0]
    ctx = workspace.make_context(state, "Identity")
    assert "val" in ctx.partitions
    outcome = workspace.make_outcome(state, "Identity", None, state.original or torch.nn.Identity(), ctx, None)
    assert torch.equal(outcome.partitions["val"], state.partitions["val"])
    assert torch.equal(outcome.reference_partitions["val"], state.partitions["val"])


@pytest.mark.parametrize("evaluator, path", [
    ({"class": "SklearnMetric", "parameters": {"metric": "f1_score", "partition": "vall"}}, "evaluators[0].parameters.partition"),
    ({"class": "ModelDistance", "parameters": {"partitions": ["test", "nope"]}}, "evaluators[0].parameters.partitions[1]"),
    ({"class": "ZRF", "parameters": {"partition": "request"}}, "evaluators[0].parameters.partition"),
    ({"class": "Accuracy", "parameters": {"partitions": ["val", "hold_out"]}}, "evaluators[0].parameters.partitions[1]"),
])
def test_an_undefined_partition_name_is_a_config_error_listing_the_defined_ones(tmp_path, evaluator, path):
    config = config_with(tmp_path, {"val": PARTITIONS["val"]}, evaluators=[evaluator])
    with pytest.raises(ConfigError) as error:
        build_experiment(config)
    assert error.value.path == path
    assert "defined partitions: train, test, forget, retain, forget_test, retain_test, val" in error.value.message


def test_request_is_a_partition_name_with_several_deletion_requests(tmp_path):
    config = tiny_config(tmp_path, evaluators=[{"class": "ZRF", "parameters": {"partition": "request"}}])
    config["data"]["forget"] = [config["data"]["forget"], {"class": "ClassForget", "parameters": {"classes": [1]}}]
    build_experiment(config)


@pytest.mark.parametrize("partitions, path, words", [
    ({"a": {"from": "b"}}, "data.partitions.a.from", "no partition 'b' (defined partitions: train"),
    ({"a": {"union": ["test", "b"]}}, "data.partitions.a.union[1]", "no partition 'b'"),
    ({"a": {"from": "b"}, "b": {"difference": ["train", "c"]}, "c": {"union": ["a"]}}, "data.partitions.a",
     "cycle: a -> b -> c -> a"),
    ({"forget": {"from": "train"}}, "data.partitions.forget", "built-in partition"),
    ({"a": {"from": "test", "union": ["test"]}}, "data.partitions.a", "exactly one of 'from', 'union'"),
    ({"a": {"select": [{"first": 2}]}}, "data.partitions.a", "exactly one of 'from'"),
    ({"a": {"from": "test", "select": [{"fraction": 0.1, "first": 3}]}}, "data.partitions.a.select[0]",
     "one selector per item, got 'fraction' and 'first'"),
    ({"a": {"from": "test", "select": [{"stratified": True}]}}, "data.partitions.a.select[0]",
     "expected one of the selector keys fraction, count, first"),
    ({"a": {"from": "test", "select": [{"fraction": 0.1, "count": 3}]}}, "data.partitions.a.select[0].fraction",
     "exactly one of 'fraction' or 'count'"),
    ({"a": {"from": "test", "select": [{"fraction": 1.5}]}}, "data.partitions.a.select[0].fraction", "<= 1"),
    ({"a": {"from": "test", "select": [{"fractoin": 0.1}]}}, "data.partitions.a.select[0].fractoin",
     "did you mean 'fraction'"),
    ({"a": {"from": "test", "select": [{"attribute": "group", "range": [3, 1]}]}}, "data.partitions.a.select[0].range",
     "low <= high"),
    ({"a": {"from": "test", "select": [{"attribute": "group"}]}}, "data.partitions.a.select[0].values",
     "exactly one of 'values' or 'range'"),
    ({"a": {"from": "test", "select": [{"first": 0}]}}, "data.partitions.a.select[0].first", ">= 1"),
    ({"a": {"from": "test", "select": {"first": 2}}}, "data.partitions.a.select", "expected a list"),
])
def test_bad_partition_definitions_are_config_errors_with_their_json_path(tmp_path, partitions, path, words):
    with pytest.raises(ConfigError) as error:
        build_experiment(config_with(tmp_path, partitions))
    assert error.value.path == path
    assert words in error.value.message


@pytest.mark.parametrize("partitions, path, words", [
    ({"a": {"from": "test", "select": [{"attribute": "age", "values": [1]}]}}, "data.partitions.a.select[0].attribute",
     "no attribute 'age' (attributes: group)"),
    ({"a": {"from": "test", "select": [{"classes": [7]}]}}, "data.partitions.a.select[0].classes", "not a class"),
    ({"a": {"from": "test", "select": [{"path": "missing-ids.json"}]}}, "data.partitions.a.select[0].path",
     "cannot read indices"),
    ({"a": {"from": "test", "select": [{"indices": [10**6]}]}}, "data.partitions.a.select[0].indices", "beyond the 240"),
])
def test_selectors_that_do_not_fit_the_data_fail_before_any_training_naming_the_file(tmp_path, partitions, path, words,
                                                                                      capsys):
    config = config_with(tmp_path, partitions)
    file = tmp_path / "experiment.json"
    file.write_text(json.dumps(config))
    assert main([str(file), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"{file}: {path}: " in err and words in err
    assert not (tmp_path / "out" / "results.csv").exists() or not read_rows(tmp_path / "out" / "results.csv")


def test_forget_test_from_random_forgetting_is_a_config_error(tmp_path):
    config = config_with(tmp_path, {"a": {"from": "forget_test"}})
    config["data"]["forget"] = {"class": "RandomForget", "parameters": {"fraction": 0.1}}
    with pytest.raises(ConfigError) as error:
        partitions_of(config)
    assert error.value.path == "data.partitions.a.from" and "does not exist in this run" in error.value.message


def test_the_resolved_config_rebuilds_the_same_partitions(tmp_path, parts):
    experiment = build_experiment(config_with(tmp_path))
    resolved = experiment.resolved_config()
    assert resolved["data"]["partitions"]["probe"] == {"union": ["val", "forget_0"], "select": []}
    assert resolved["data"]["partitions"]["listed"]["select"] == [{"indices": list(range(13))}]
    again = build_experiment(copy.deepcopy(resolved))
    assert again.config_hash == experiment.config_hash
    rebuilt = partitions_of(resolved)
    for name in PARTITIONS:
        assert torch.equal(rebuilt[name], parts[name])
    plain = build_experiment(tiny_config(tmp_path))
    assert "partitions" not in plain.resolved_config()["data"]
    assert build_experiment(config_with(tmp_path, {})).config_hash == plain.config_hash
    assert experiment.config_hash != plain.config_hash
