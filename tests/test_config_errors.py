"""A bad config exits with code 2 and one message naming the file, the JSON path and what was expected."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from conftest import tiny_config
from erasure.cli import main


def run_cli(tmp_path: Path, config: dict | str, capsys, *extra: str) -> tuple[int, str]:
    path = tmp_path / "bad.jsonc"
    path.write_text(config if isinstance(config, str) else json.dumps(config, indent=2))
    code = main([str(path), "--no-progress", *extra])
    err = capsys.readouterr().err
    return code, err


def expect_error(tmp_path, capsys, config, path_fragment: str, *message_fragments: str, extra=()) -> str:
    code, err = run_cli(tmp_path, config, capsys, *extra)
    assert code == 2, err
    assert "Traceback" not in err
    assert "bad.jsonc" in err, "the message names the file"
    assert path_fragment in err, f"expected the JSON path {path_fragment!r} in: {err}"
    for fragment in message_fragments:
        assert fragment in err, f"expected {fragment!r} in: {err}"
    return err


def with_unlearner(tmp_path, spec: dict) -> dict:
    return tiny_config(tmp_path, unlearners=[{"class": "Identity"}, {"class": "GoldModel"}, spec])


def test_invalid_jsonc_reports_line_and_column(tmp_path, capsys):
    text = '{\n  "name": "x",\n  "seeds": [0,,],\n}'
    expect_error(tmp_path, capsys, text, "invalid JSONC", "line 3", "column")


def test_unknown_top_level_key_suggests_the_closest(tmp_path, capsys):
    config = tiny_config(tmp_path)
    config["evaluator"] = config.pop("evaluators")
    expect_error(tmp_path, capsys, config, "evaluator", "unknown key 'evaluator'", "did you mean 'evaluators'")


@pytest.mark.parametrize("where,spec,said", [
    ("evaluators", {"class": "Umia"}, "did you mean 'UMIA'"),
    ("optimizer", {"class": "Adamw"}, "did you mean 'AdamW'"),
    ("optimizer", {"class": "torch.optim.Adamw"}, "did you mean 'torch.optim.AdamW'"),
])
def test_a_case_only_typo_suggests_the_right_name(tmp_path, capsys, where, spec, said):
    config = tiny_config(tmp_path)
    if where == "evaluators":
        config["evaluators"] = [spec]
    else:
        config["training"]["optimizer"] = spec
    expect_error(tmp_path, capsys, config, said)


def test_unknown_class_suggests_registered_names(tmp_path, capsys):
    config = with_unlearner(tmp_path, {"class": "NegGard"})
    expect_error(tmp_path, capsys, config, "unlearners[2].class", "unknown unlearner class 'NegGard'", "NegGrad")


def test_unknown_parameter_names_the_valid_ones(tmp_path, capsys):
    config = with_unlearner(tmp_path, {"class": "NegGrad", "parameters": {"epoch": 2}})
    expect_error(tmp_path, capsys, config, "unlearners[2].parameters.epoch", "unknown parameter 'epoch'", "'epochs'")


def test_missing_required_parameter(tmp_path, capsys):
    config = tiny_config(tmp_path)
    config["data"]["forget"] = {"class": "GroupForget", "parameters": {"values": [1]}}
    expect_error(tmp_path, capsys, config, "data.forget.parameters.attribute", "missing required parameter 'attribute'")


@pytest.mark.parametrize(
    "name, fragment",
    [("os.system", "refusing to import"), ("builtins.eval", "refusing to import"),
     ("torch.nn.Linear", "expected a subclass of erasure.unlearners.base.Unlearner")],
)
def test_class_of_the_wrong_kind_is_refused(tmp_path, capsys, name, fragment):
    config = with_unlearner(tmp_path, {"class": name})
    expect_error(tmp_path, capsys, config, "unlearners[2].class", fragment)


def test_disallowed_module_is_not_imported(tmp_path, capsys):
    module = "xml.dom.pulldom"
    assert module not in sys.modules
    config = with_unlearner(tmp_path, {"class": f"{module}.PullDOM"})
    expect_error(tmp_path, capsys, config, "unlearners[2].class", "refusing to import")
    assert module not in sys.modules, "the module must be refused before it is imported"


def test_wrong_type(tmp_path, capsys):
    config = with_unlearner(tmp_path, {"class": "NegGrad", "parameters": {"epochs": "5"}})
    expect_error(tmp_path, capsys, config, "unlearners[2].parameters.epochs", "expected an integer", "got string '5'")


@pytest.mark.parametrize("value", [0, -3])
def test_non_positive_unlearner_epochs(tmp_path, capsys, value):
    config = with_unlearner(tmp_path, {"class": "NegGrad", "parameters": {"epochs": value}})
    expect_error(tmp_path, capsys, config, "unlearners[2].parameters.epochs", ">= 1", f"got {value}")


@pytest.mark.parametrize("key", ["epochs", "batch_size"])
def test_non_positive_training_settings(tmp_path, capsys, key):
    config = tiny_config(tmp_path)
    config["training"][key] = 0
    expect_error(tmp_path, capsys, config, f"training.{key}", ">= 1", "got 0")


def test_optimizer_rejects_its_own_bad_values(tmp_path, capsys):
    config = tiny_config(tmp_path)
    config["training"]["optimizer"] = {"class": "Adam", "parameters": {"lr": -1}}
    expect_error(tmp_path, capsys, config, "training.optimizer.parameters", "Invalid learning rate")


def test_learning_rate_inside_an_unlearner_optimizer_is_refused(tmp_path, capsys):
    spec = {"class": "NegGrad", "parameters": {"optimizer": {"class": "Adam", "parameters": {"lr": 0.1}}}}
    expect_error(tmp_path, capsys, with_unlearner(tmp_path, spec), "unlearners[2].parameters.optimizer", "'lr' parameter")


def test_forget_class_not_in_the_data(tmp_path, capsys):
    config = tiny_config(tmp_path)
    config["data"]["forget"] = {"class": "ClassForget", "parameters": {"classes": [7]}}
    expect_error(tmp_path, capsys, config, "data.forget.parameters.classes", "class 7 is not in the training data")


@pytest.mark.parametrize("source,classes,said", [
    ({"class": "SklearnDigits"}, [3, 12], "class 12 does not exist: the data has 10 classes (0 to 9)"),
    ({"class": "SklearnTabular", "parameters": {"name": "iris"}}, [3], "class 3 does not exist: the data has 3 classes"),
    ({"class": "TorchVisionSource", "parameters": {"dataset": "CIFAR100", "target": "coarse", "download": False}}, [20],
     "class 20 does not exist: the data has 20 classes"),
])
def test_validate_refuses_a_class_the_source_does_not_have_without_loading(tmp_path, capsys, source, classes, said):
    config = tiny_config(tmp_path)
    config["data"]["source"] = source
    config["data"]["forget"] = {"class": "ClassForget", "parameters": {"classes": classes}}
    expect_error(tmp_path, capsys, config, "data.forget.parameters.classes", said, extra=("--validate",))


def test_empty_forget_set(tmp_path, capsys):
    config = tiny_config(tmp_path)
    config["data"]["forget"] = {"class": "IndexForget", "parameters": {"indices": []}}
    expect_error(tmp_path, capsys, config, "data.forget", "the forget set is empty")


@pytest.mark.parametrize("seeds, path", [("0", "seeds"), ([0, 1.5], "seeds[1]"), ([], "seeds")])
def test_seeds_must_be_a_list_of_integers(tmp_path, capsys, seeds, path):
    expect_error(tmp_path, capsys, tiny_config(tmp_path, seeds=seeds), path, "expected")


def test_unwritable_output_directory(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    config = tiny_config(tmp_path)
    config["output"]["dir"] = str(blocker / "results")
    expect_error(tmp_path, capsys, config, "output.dir", "cannot write to", "is not a directory")


def test_duplicate_labels(tmp_path, capsys):
    config = tiny_config(tmp_path, unlearners=[{"class": "NegGrad"}, {"class": "NegGrad", "parameters": {"lr": 0.1}}])
    expect_error(tmp_path, capsys, config, "unlearners[1].label", "duplicate label 'NegGrad'")


def test_bad_override_path(tmp_path, capsys):
    expect_error(tmp_path, capsys, tiny_config(tmp_path), "unlearners[9]", "no item [9]",
                 extra=("--set", "unlearners[9].parameters.epochs=1"))


def test_missing_config_file(tmp_path, capsys):
    code = main([str(tmp_path / "nope.jsonc")])
    err = capsys.readouterr().err
    assert code == 2 and "nope.jsonc" in err and "Traceback" not in err


def test_debug_shows_the_traceback(tmp_path):
    path = tmp_path / "bad.jsonc"
    path.write_text(json.dumps(tiny_config(tmp_path, seeds="0")))
    from erasure.core.errors import ConfigError

    with pytest.raises(ConfigError):
        main([str(path), "--debug"])


# ------------------------------------------------------------------ what the run would hit, caught by --validate
def deep(levels: int) -> list:
    value: list = []
    for _ in range(levels):
        value = [value]
    return value


def tiny_text(tmp_path: Path, change) -> str:
    config = tiny_config(tmp_path)
    change(config)
    return json.dumps(config, ensure_ascii=False)


@pytest.mark.parametrize("make, fragment", [
    (lambda tmp: "[" * 3000 + "]" * 3000, "nested too deeply"),
    (lambda tmp: tiny_text(tmp, lambda c: c["unlearners"][0].update(parameters={"x": deep(500)})),
     "unlearners[0].parameters.x[0][0][0]"),
    (lambda tmp: tiny_text(tmp, lambda c: c.update(name="caf\xe9")).encode("latin-1"), "not UTF-8 text (byte 0xe9"),
    (lambda tmp: tiny_text(tmp, lambda c: None)[:-1] + " " * (1 << 20) + "}", "larger than 1 MiB"),
    (lambda tmp: tiny_text(tmp, lambda c: c["training"].update(
        optimizer={"class": "SGD", "parameters": {"lr": 0.1, "momentum": float("nan")}})),
     "training.optimizer.parameters.momentum: expected a finite number"),
])
def test_file_level_problems(tmp_path, capsys, make, fragment):
    text = make(tmp_path)
    path = tmp_path / "bad.jsonc"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    code = main([str(path), "--validate"])
    err = capsys.readouterr().err
    assert code == 2 and "bad.jsonc" in err and fragment in err and "Traceback" not in err, err


@pytest.mark.parametrize("name", ["bad\0.jsonc", "x" * 5000 + ".jsonc"])
def test_unreadable_config_paths(tmp_path, capsys, name):
    code = main([str(tmp_path / name), "--validate"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("config error:") and "cannot read the config" in err
    assert len(err.strip().splitlines()) == 1, "one line, the NUL shown as an escape"


@pytest.mark.parametrize("seed", [-1, 2**32])
def test_seeds_outside_32_bits(tmp_path, capsys, seed):
    expect_error(tmp_path, capsys, tiny_config(tmp_path, seeds=[0, seed]), "seeds[1]", "expected a value")


@pytest.mark.parametrize("where, value, path, fragment", [
    ("output", "a\0b", "output.dir", "NUL"),
    ("output", "x" * 300, "output.dir", "at most 255 bytes"),
    ("root", "data\0pyg", "data.source.parameters.root", "NUL"),
    ("root", "d/" * 2100, "data.source.parameters.root", "at most 4096 bytes"),
])
def test_nul_and_over_long_paths(tmp_path, capsys, where, value, path, fragment):
    config = tiny_config(tmp_path)
    if where == "output":
        config["output"]["dir"] = value
    else:
        config["data"]["source"] = {"class": "PyGSource", "parameters": {"root": value}}
    expect_error(tmp_path, capsys, config, path, fragment)


def test_model_without_parameters(tmp_path, capsys):
    config = tiny_config(tmp_path, model={"class": "torch.nn.Identity"})
    expect_error(tmp_path, capsys, config, "model", "Identity has no trainable parameters")


def test_optimizer_that_needs_a_closure(tmp_path, capsys):
    config = tiny_config(tmp_path)
    config["training"]["optimizer"] = {"class": "LBFGS"}
    expect_error(tmp_path, capsys, config, "training.optimizer", "LBFGS needs a closure")
    spec = {"class": "FineTuning", "parameters": {"optimizer": {"class": "LBFGS"}}}
    expect_error(tmp_path, capsys, with_unlearner(tmp_path, spec), "unlearners[2].parameters.optimizer", "closure")


def test_scheduler_that_divides_by_zero(tmp_path, capsys):
    config = tiny_config(tmp_path)
    config["training"]["scheduler"] = {"class": "StepLR", "parameters": {"step_size": 0}}
    expect_error(tmp_path, capsys, config, "training.scheduler.parameters", "StepLR rejects these parameters", "by zero")


@pytest.mark.parametrize("loss, fragment", [
    ({"class": "BCEWithLogitsLoss"}, "does not fit a classification task"),
    ({"class": "MSELoss"}, "does not fit a classification task"),
    ({"class": "CrossEntropyLoss", "parameters": {"reduction": "none"}}, "not one number"),
])
def test_loss_that_does_not_fit_the_task(tmp_path, capsys, loss, fragment):
    config = tiny_config(tmp_path)
    config["training"]["loss"] = loss
    expect_error(tmp_path, capsys, config, "training.loss", fragment)


def test_cache_dir_that_is_a_file(tmp_path, capsys):
    blocker = tmp_path / "cache-file"
    blocker.write_text("")
    config = tiny_config(tmp_path, cache={"enabled": True, "dir": str(blocker)})
    expect_error(tmp_path, capsys, config, "cache.dir", "is not a directory")


def test_duplicate_keys_are_a_warning_with_their_path(tmp_path, capsys, caplog):
    text = json.dumps(tiny_config(tmp_path), indent=1).replace('"epochs": 5', '"epochs": 1, "epochs": 5')
    assert text.count('"epochs"') == 2
    code, err = run_cli(tmp_path, text, capsys, "--validate")
    assert code == 0, err
    assert "bad.jsonc: training.epochs: this key is given more than once" in caplog.text


def test_split_that_the_data_cannot_take(tmp_path, capsys):
    config = tiny_config(tmp_path)
    config["data"]["split"]["test_fraction"] = 0.001  # a test set of 1 sample cannot hold 3 classes
    code, err = run_cli(tmp_path, config, capsys)
    assert code == 2 and "bad.jsonc: data.split: cannot split 240 samples" in err and "Traceback" not in err, err


def test_class_forget_without_classes(tmp_path, capsys):
    config = tiny_config(tmp_path)
    config["data"]["forget"]["parameters"]["classes"] = []
    expect_error(tmp_path, capsys, config, "data.forget.parameters.classes", "at least one class")
