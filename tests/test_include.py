"""Config composition: ``"include": [...]`` deep-merges other JSONC files under a config's own keys."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import tiny_config
from erasure.cli import main
from erasure.core.config import MAX_CONFIG_FILES, compose_config, validate_structure
from erasure.execution.experiment import build_experiment, load_experiment
from erasure.core.errors import ConfigError
from erasure.execution.runner import Runner

ROOT = Path(__file__).resolve().parent.parent


def write(path: Path, content: dict | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


@pytest.fixture
def base(tmp_path):
    """A base holding everything but the name and the unlearners, in a folder of its own."""
    config = tiny_config(tmp_path)
    del config["name"], config["unlearners"]
    config["seeds"] = [0, 1]
    return write(tmp_path / "shared" / "base.jsonc", "// the shared part\n" + json.dumps(config, indent=1))


def test_later_keys_override_objects_merge_and_lists_are_replaced(tmp_path, base):
    main_file = write(tmp_path / "exp" / "main.jsonc", {
        "include": ["../shared/base.jsonc"], "name": "composed", "seeds": [3],
        "training": {"epochs": 2}, "unlearners": [{"class": "Identity"}],
        "evaluators": [{"class": "RunTime"}],
    })
    experiment = load_experiment(main_file)
    base_config = json.loads(base.read_text().split("\n", 1)[1])
    assert experiment.seeds == [3], "a list is replaced, not merged"
    assert experiment.recipe.epochs == 2 and experiment.recipe.batch_size == base_config["training"]["batch_size"]
    assert experiment.recipe.optimizer == base_config["training"]["optimizer"], "objects merge key by key"
    assert [type(e).__name__ for e in experiment.evaluators] == ["RunTime"]
    assert experiment.config["data"] == base_config["data"]
    assert "include" not in experiment.config and "include" not in experiment.resolved_config()


def test_includes_apply_in_order_nest_and_resolve_relative_to_the_including_file(tmp_path, base, monkeypatch):
    write(tmp_path / "shared" / "longer.jsonc", {"include": ["base.jsonc"], "training": {"epochs": 9, "batch_size": 8}})
    write(tmp_path / "shared" / "smaller_batch.jsonc", {"training": {"batch_size": 4}})
    main_file = write(tmp_path / "exp" / "main.jsonc", {
        "include": ["../shared/longer.jsonc", "../shared/smaller_batch.jsonc"], "name": "x",
        "unlearners": [{"class": "Identity"}]})
    monkeypatch.chdir(tmp_path / "shared")  # paths are relative to the including file, not the working directory
    experiment = load_experiment(main_file)
    assert (experiment.recipe.epochs, experiment.recipe.batch_size, experiment.seeds) == (9, 4, [0, 1])


def test_a_component_naming_another_class_replaces_the_earlier_one(tmp_path, base):
    main_file = write(tmp_path / "main.jsonc", {
        "include": ["shared/base.jsonc"], "name": "x", "unlearners": [{"class": "Identity"}],
        "data": {"forget": {"class": "RandomForget", "parameters": {"fraction": 0.1}}},
        "model": {"parameters": {"hidden": [4]}}})
    experiment = load_experiment(main_file)
    assert experiment.config["data"]["forget"] == {"class": "RandomForget", "parameters": {"fraction": 0.1}}
    assert experiment.config["model"] == {"class": "MLP", "parameters": {"hidden": [4]}}, "same class: merged"


def test_set_overrides_apply_after_includes(tmp_path, base):
    main_file = write(tmp_path / "main.jsonc", {"include": ["shared/base.jsonc"], "name": "x",
                                                "unlearners": [{"class": "Identity"}]})
    assert load_experiment(main_file, ["training.epochs=7"]).recipe.epochs == 7


@pytest.mark.parametrize("chain", [["a"], ["a", "b"], ["a", "b", "c"]])
def test_an_include_cycle_is_refused_with_the_chain(tmp_path, chain):
    for name, target in zip(chain, chain[1:] + chain[:1]):
        write(tmp_path / f"{name}.jsonc", {"include": [f"{target}.jsonc"], "name": name})
    with pytest.raises(ConfigError) as error:
        compose_config(tmp_path / "a.jsonc")
    names = " -> ".join(str(tmp_path / f"{n}.jsonc") for n in [*chain, "a"])
    assert error.value.message == f"the includes form a cycle: {names}"
    assert error.value.file == str(tmp_path / f"{chain[-1]}.jsonc") and error.value.path == "include[0]"


def test_a_file_may_be_included_twice_without_a_cycle(tmp_path, base):
    write(tmp_path / "shared" / "left.jsonc", {"include": ["base.jsonc"], "seeds": [5]})
    write(tmp_path / "shared" / "right.jsonc", {"include": ["base.jsonc"]})
    main_file = write(tmp_path / "main.jsonc", {"include": ["shared/left.jsonc", "shared/right.jsonc"], "name": "x",
                                                "unlearners": [{"class": "Identity"}]})
    assert load_experiment(main_file).seeds == [0, 1], "right.jsonc's base comes after left.jsonc's seeds"


def test_too_many_included_files_are_refused(tmp_path):
    for i in range(MAX_CONFIG_FILES + 1):
        write(tmp_path / f"c{i}.jsonc", {"include": [f"c{i + 1}.jsonc"]} if i < MAX_CONFIG_FILES else {})
    with pytest.raises(ConfigError, match=f"more than {MAX_CONFIG_FILES} config files"):
        compose_config(tmp_path / "c0.jsonc")


@pytest.mark.parametrize("include, path, words", [
    (["missing.jsonc"], "include[0]", "no config file"),
    ([3], "include", "expected a list of config files"),
    ({"a": 1}, "include", "expected a list of config files"),
])
def test_a_bad_include_names_the_including_file_and_the_entry(tmp_path, include, path, words):
    main_file = write(tmp_path / "main.jsonc", {"include": include, "name": "x"})
    with pytest.raises(ConfigError) as error:
        load_experiment(main_file)
    assert (error.value.file, error.value.path) == (str(main_file), path) and words in error.value.message


def test_errors_name_the_file_that_set_the_key(tmp_path, base, capsys):
    text = base.read_text().replace('"epochs": 5', '"epochs": 0')
    assert text != base.read_text()
    base.write_text(text)
    main_file = write(tmp_path / "main.jsonc", {"include": ["shared/base.jsonc"], "name": "x",
                                                "unlearners": [{"class": "NegGrad", "parameters": {"lr": -1}}]})
    with pytest.raises(ConfigError) as error:  # the included file's key
        load_experiment(main_file)
    assert (error.value.file, error.value.path) == (str(base), "training.epochs")
    with pytest.raises(ConfigError) as error:  # the including file's key
        load_experiment(main_file, ["training.epochs=1"])
    assert (error.value.file, error.value.path) == (str(main_file), "unlearners[0].parameters.lr")
    with pytest.raises(ConfigError) as error:  # a --set value is the including file's
        load_experiment(main_file, ["training.epochs=-2", "unlearners[0].parameters.lr=1"])
    assert (error.value.file, error.value.path) == (str(main_file), "training.epochs")
    assert main([str(main_file), "--validate"]) == 2
    assert f"config error: {base}: training.epochs: expected a value >= 1, got 0" in capsys.readouterr().err
    base.write_text(text.replace("{", "{ oops", 1))  # a syntax error in the included file
    with pytest.raises(ConfigError) as error:
        load_experiment(main_file)
    assert error.value.file == str(base) and "invalid JSONC" in error.value.message


def test_errors_found_when_the_data_is_partitioned_name_the_included_file(tmp_path, base):
    config = json.loads(base.read_text().split("\n", 1)[1])
    config["data"]["partitions"] = {"a": {"from": "test", "select": [{"attribute": "age", "values": [1]}]}}
    write(base, config)
    main_file = write(tmp_path / "main.jsonc", {"include": ["shared/base.jsonc"], "name": "x",
                                                "unlearners": [{"class": "Identity"}]})
    experiment = load_experiment(main_file)
    assert experiment.file_for("data.partitions.a.select[0].attribute") == str(base)
    assert experiment.file_for("unlearners[0]") == str(main_file)
    runner = Runner(experiment, use_cache=False, progress=False, out=lambda *_: None)
    with pytest.raises(ConfigError) as error:
        runner.workspace.prepare_seeds()
    assert error.value.file == str(base) and error.value.path == "data.partitions.a.select[0].attribute"


def test_the_schema_accepts_include_and_the_resolved_config_stands_alone(tmp_path, base):
    raw = {"include": ["shared/base.jsonc"], "name": "x", "unlearners": [{"class": "Identity"}]}
    main_file = write(tmp_path / "main.jsonc", raw)
    with pytest.raises(ConfigError, match="missing required key"):  # the include key itself is allowed
        validate_structure(raw)
    experiment = load_experiment(main_file)
    again = build_experiment(json.loads(json.dumps(experiment.resolved_config())))
    assert again.config_hash == experiment.config_hash


BENCHMARKS = sorted(p for p in (ROOT / "configs" / "benchmarks").glob("*.jsonc") if p.name != "base_digits.jsonc")


@pytest.mark.parametrize("path", BENCHMARKS, ids=lambda p: p.stem)
def test_the_benchmarks_share_one_base(path):
    experiment = load_experiment(path)
    base, _ = compose_config(ROOT / "configs" / "benchmarks" / "base_digits.jsonc")
    assert experiment.config["data"]["source"] == base["data"]["source"]
    assert experiment.config["model"] == base["model"] and experiment.seeds == base["seeds"]
    assert experiment.recipe.optimizer == base["training"]["optimizer"]
    expected = (30, 64) if path.stem == "digits_full_evaluation" else (200, 32)
    assert (experiment.recipe.epochs, experiment.recipe.batch_size) == expected
