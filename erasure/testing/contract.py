"""The component contract (after scikit-learn's ``check_estimator`` and timm's model tests).

A component runs on a tiny synthetic world with the parameters in its ``contract_config``
(defaults otherwise), or the ones given, with single-label targets unless it handles only
multi-label ones (``task`` picks the world of a task it handles), and must: build from a config spec without changing it;
round-trip its parameters through ``get_params`` (as JSON); leave the original and gold models
and its own parameters untouched; give finite weights (an unlearner) or float metrics (an
evaluator); and give identical results twice under the same seed.
"""
from __future__ import annotations

import copy
import json
import math
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from erasure.core.factory import allowed_imports, build
from erasure.core.registry import load_builtins, registry
from erasure.core.timing import Timing
from erasure.data.dataset import MULTI_LABEL, SINGLE_LABEL

TINY_CONFIG: dict[str, Any] = {
    "name": "tiny",
    "seeds": [0],
    "device": "cpu",
    "data": {
        "source": {"class": "Synthetic", "parameters": {"n_samples": 240, "n_features": 8, "num_classes": 3,
                                                        "attribute": "group", "seed": 0}},
        "split": {"test_fraction": 0.25},
        "forget": {"class": "ClassForget", "parameters": {"classes": [0]}},
    },
    "model": {"class": "MLP", "parameters": {"hidden": [16]}},
    "training": {"epochs": 5, "batch_size": 32, "optimizer": {"class": "Adam", "parameters": {"lr": 0.01}}},
    "unlearners": [{"class": "Identity"}],
    "evaluators": [{"class": "Accuracy"}],
    "output": {"writers": [{"class": "CSVWriter"}]},
    "cache": {"enabled": False},
}
#: The tiny world's multi-label data (ClassForget then forgets the samples carrying label 0).
TINY_MULTI_LABEL_SOURCE = {"class": "SklearnMultiLabel", "parameters": {
    "n_samples": 240, "n_features": 8, "num_labels": 4, "attribute": "group", "seed": 0}}
DEFAULT_FORGET = {"class": "ClassForget", "parameters": {"classes": [0]}}
_WORLDS: dict[str, tuple] = {}
_WORLD_DIRS: list[tempfile.TemporaryDirectory] = []  # removed when the process exits


def tiny_config(directory: str | Path, task: str = SINGLE_LABEL, **changes: Any) -> dict[str, Any]:
    """A deep copy of :data:`TINY_CONFIG` writing to ``directory/out``, with top-level keys replaced;
    ``task`` "multi-label" swaps in :data:`TINY_MULTI_LABEL_SOURCE` and ``BCEWithLogitsLoss``."""
    config = copy.deepcopy(TINY_CONFIG)
    config["output"]["dir"] = str(Path(directory) / "out")
    if task == MULTI_LABEL:
        config["data"]["source"] = copy.deepcopy(TINY_MULTI_LABEL_SOURCE)
        config["training"]["loss"] = {"class": "BCEWithLogitsLoss"}
    config.update(changes)
    return config


def world(forget: dict | None = None, imports: tuple[str, ...] = (), task: str = SINGLE_LABEL) -> tuple:
    """(workspace, seed state) of the tiny config of ``task`` with ``forget``, its reference models
    trained; one per process."""
    from erasure.execution.experiment import build_experiment
    from erasure.execution.runner import Runner

    forget = forget or DEFAULT_FORGET
    key = json.dumps([forget, imports, task], sort_keys=True)
    if key not in _WORLDS:
        _WORLD_DIRS.append(tempfile.TemporaryDirectory(prefix="erasure-contract-"))
        config = tiny_config(_WORLD_DIRS[-1].name, task, imports=list(imports))
        config["data"]["forget"] = copy.deepcopy(forget)
        workspace = Runner(build_experiment(config), use_cache=False, progress=False, out=lambda *_: None).workspace
        state = workspace.prepare_seeds()[0]
        workspace.train_references(state)
        _WORLDS[key] = workspace, state
    return _WORLDS[key]


def _resolve(component: str | type, kind: str) -> tuple[str, type, tuple[str, ...]]:
    """(name for a config spec, class, modules to allow) of a registered name or a class."""
    load_builtins()
    if isinstance(component, str):
        return component, registry(kind)[component], ()
    cls = component
    if registry(kind).get(cls.__name__) is cls:
        return cls.__name__, cls, ()
    return f"{cls.__module__}.{cls.__qualname__}", cls, (cls.__module__,)


def _snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _assert_same_state(a: dict, b: dict, what: str) -> None:
    assert a.keys() == b.keys(), f"{what}: the state's keys changed"
    for k in a:
        assert torch.equal(a[k], b[k]), f"{what}: tensor {k} changed"


def _build_checked(name: str, kind: str, parameters: dict) -> Any:
    spec = {"class": name, "parameters": copy.deepcopy(parameters)}
    before = copy.deepcopy(spec)
    component = build(spec, kind, f"{kind}s[0]")
    assert spec == before, "building must not modify the config"
    params = component.get_params()
    json.dumps(params)  # results and resolved configs store parameters as JSON
    rebuilt = build({"class": name, "parameters": params}, kind, "rebuilt")
    assert rebuilt.get_params() == params, "get_params() must rebuild an equal component"
    return component


def _setup(name: str, cls: type, kind: str, modules: tuple[str, ...], parameters: dict | None, forget: dict | None,
           task: str | None) -> tuple[Any, Any, Any]:
    """The component built and round-tripped (its ``contract_config`` filling what is not given)
    and the tiny world it runs in."""
    contract = getattr(cls, "contract_config", {})
    component = _build_checked(name, kind, contract.get("parameters", {}) if parameters is None else parameters)
    workspace, state = world(forget or contract.get("forget"), modules, task or cls.tasks[0])
    return component, workspace, state


def check_unlearner(component: str | type, parameters: dict | None = None, forget: dict | None = None,
                    task: str | None = None) -> None:
    """Assert the unlearner contract for a registered name or a class (raises ``AssertionError``).

    ``parameters`` default to the class's ``contract_config["parameters"]``; ``forget`` (a forget
    spec) to its ``contract_config["forget"]``, else forgetting class 0 of a tiny synthetic set;
    ``task`` ("single-label" or "multi-label") to the first of the class's ``tasks``.
    """
    name, cls, modules = _resolve(component, "unlearner")
    with allowed_imports(modules):
        unlearner, workspace, state = _setup(name, cls, "unlearner", modules, parameters, forget, task)
        params_before = copy.deepcopy(unlearner.get_params())
        recipe = workspace.job_recipe(unlearner)  # a method with a training scheme: its original and gold
        original_model = workspace.reference(state, "original", recipe)[0]
        gold_model = workspace.reference(state, "gold", recipe)[0]
        original, gold = _snapshot(original_model), _snapshot(gold_model)

        def unlearn_once() -> nn.Module:
            ctx = workspace.make_context(state, name, recipe=recipe)
            model = unlearner.unlearn(copy.deepcopy(original_model), ctx)
            assert isinstance(model, nn.Module), f"unlearn() returned {type(model).__name__}, not an nn.Module"
            return model

        first, second = unlearn_once(), unlearn_once()
    for key, value in first.state_dict().items():
        if value.is_floating_point():
            assert torch.isfinite(value).all(), f"{name} left non-finite values in {key}"
    _assert_same_state(_snapshot(first), _snapshot(second), "two runs under one seed")
    _assert_same_state(original, _snapshot(original_model), "the original model")
    _assert_same_state(gold, _snapshot(gold_model), "the gold model")
    assert unlearner.get_params() == params_before, "unlearning must not modify the unlearner's parameters"


def check_evaluator(component: str | type, parameters: dict | None = None, forget: dict | None = None,
                    task: str | None = None) -> None:
    """Assert the evaluator contract for a registered name or a class (raises ``AssertionError``).

    It judges a NegGrad step on the tiny world of ``task`` (default: the first of the class's
    ``tasks``); metrics it ``requires`` are filled from the other registered evaluators that run there.
    """
    name, cls, modules = _resolve(component, "evaluator")
    with allowed_imports(modules):
        evaluator, workspace, state = _setup(name, cls, "evaluator", modules, parameters, forget, task)
        params_before = copy.deepcopy(evaluator.get_params())
        unlearner = build({"class": "NegGrad", "parameters": {"epochs": 1, "lr": 0.01}}, "unlearner", "u")
        ctx = workspace.make_context(state, "NegGrad")
        unlearned = unlearner.unlearn(copy.deepcopy(state.original), ctx)
        models = (unlearned, state.original, state.gold)
        before = [_snapshot(m) for m in models]

        def evaluate_once() -> dict[str, float]:
            outcome = workspace.make_outcome(state, "NegGrad", unlearner, unlearned, ctx, Timing(wall_seconds=0.01))
            if evaluator.requires:
                for other_name, other_cls in registry("evaluator").items():
                    if other_cls is cls or other_cls.requires:
                        continue
                    try:
                        other = build({"class": other_name,
                                       "parameters": other_cls.contract_config.get("parameters", {})}, "evaluator", "x")
                        outcome.metrics.update(workspace.evaluate(outcome, other))
                    except Exception:  # e.g. an attribute probe on data without attributes
                        pass
            return workspace.evaluate(outcome, evaluator)

        first, second = evaluate_once(), evaluate_once()
    assert first, f"{name} reported no metric"
    assert all(isinstance(k, str) and isinstance(v, float) for k, v in first.items()), "metrics must be str -> float"
    assert first.keys() == second.keys(), "two runs under one seed gave different metrics"
    for key in first:
        same = (math.isnan(first[key]) and math.isnan(second[key])) or first[key] == second[key]
        assert same, f"{key}: {first[key]} then {second[key]} under one seed"
    for snap, model, what in zip(before, models, ("the unlearned model", "the original model", "the gold model")):
        _assert_same_state(snap, _snapshot(model), what)
    assert evaluator.get_params() == params_before, "evaluating must not modify the evaluator's parameters"
