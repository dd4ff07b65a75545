"""One contract test for every registered unlearner and evaluator (test ids carry the name).

A new component is tested the moment it registers. It runs on a tiny synthetic
world with the parameters in its ``contract_config`` (defaults otherwise) and must:
build from a config spec; round-trip its parameters through ``get_params``; leave
the original and gold models and the config untouched; give finite weights; and
give identical results twice under the same seed.
"""
from __future__ import annotations

import copy
import json
import math

import pytest
import torch
from torch import nn

from conftest import make_workspace, tiny_config
from erasure.core.factory import build
from erasure.core.registry import load_builtins, registry

load_builtins()
UNLEARNERS = sorted(registry("unlearner"))
EVALUATORS = sorted(registry("evaluator"))


@pytest.fixture(scope="module")
def worlds(tmp_path_factory):
    """(runner, trained seed state) per forget spec, built on first use."""
    built: dict[str, tuple] = {}

    def get(cls: type):
        forget = cls.contract_config.get("forget", {"class": "ClassForget", "parameters": {"classes": [0]}})
        key = json.dumps(forget, sort_keys=True)
        if key not in built:
            config = tiny_config(tmp_path_factory.mktemp("contract"))
            config["data"]["forget"] = forget
            runner = make_workspace(config)
            state = runner.prepare_seeds()[0]
            runner.train_references(state)
            built[key] = runner, state
        return built[key]

    return get


def spec_for(name: str, cls: type) -> dict:
    return {"class": name, "parameters": copy.deepcopy(cls.contract_config.get("parameters", {}))}


def snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_same_state(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"tensor {k} differs"


def assert_round_trip(name: str, component: object, slot: str) -> None:
    params = component.get_params()
    json.dumps(params)  # results and resolved configs store parameters as JSON
    rebuilt = build({"class": name, "parameters": params}, slot, "rebuilt")
    assert rebuilt.get_params() == params


def build_checked(kind: str, name: str, worlds):
    """Build ``name`` from a config spec, check its parameters round-trip; return it with its world."""
    cls = registry(kind)[name]
    spec = spec_for(name, cls)
    spec_before = copy.deepcopy(spec)
    component = build(spec, kind, f"{kind}s[0]")
    assert spec == spec_before, "building must not modify the config"
    assert_round_trip(name, component, kind)
    return cls, component, *worlds(cls)


@pytest.mark.parametrize("name", UNLEARNERS)
def test_unlearner_contract(name, worlds):
    _, unlearner, runner, state = build_checked("unlearner", name, worlds)
    spec, spec_before = unlearner.get_params(), copy.deepcopy(unlearner.get_params())
    original, gold = snapshot(state.original), snapshot(state.gold)

    def unlearn_once() -> nn.Module:
        ctx = runner.make_context(state, name)
        model = unlearner.unlearn(copy.deepcopy(state.original), ctx)
        assert isinstance(model, nn.Module)
        return model

    first, second = unlearn_once(), unlearn_once()
    for key, value in first.state_dict().items():
        if value.is_floating_point():
            assert torch.isfinite(value).all(), f"{name} left non-finite values in {key}"
    assert_same_state(snapshot(first), snapshot(second))
    assert_same_state(original, snapshot(state.original))
    assert_same_state(gold, snapshot(state.gold))
    assert spec == spec_before, "unlearning must not modify the unlearner's parameters"


@pytest.mark.parametrize("name", EVALUATORS)
def test_evaluator_contract(name, worlds):
    cls, evaluator, runner, state = build_checked("evaluator", name, worlds)
    spec, spec_before = evaluator.get_params(), copy.deepcopy(evaluator.get_params())
    unlearner = build({"class": "NegGrad", "parameters": {"epochs": 1, "lr": 0.01}}, "unlearner", "u")
    ctx = runner.make_context(state, "NegGrad")
    unlearned = unlearner.unlearn(copy.deepcopy(state.original), ctx)
    before = [snapshot(m) for m in (unlearned, state.original, state.gold)]
    from erasure.core.timing import Timing

    def evaluate_once() -> dict[str, float]:
        outcome = runner.make_outcome(state, "NegGrad", unlearner, unlearned, ctx, Timing(wall_seconds=0.01))
        if cls.requires:  # fill what `requires` asks for from the evaluators that run in this world
            for other_name, other_cls in registry("evaluator").items():
                if other_cls is cls or other_cls.requires:
                    continue
                try:
                    outcome.metrics.update(runner.evaluate(outcome, build(spec_for(other_name, other_cls), "evaluator", "x")))
                except Exception:  # e.g. an attribute probe on data without attributes
                    pass
        return runner.evaluate(outcome, evaluator)

    first, second = evaluate_once(), evaluate_once()
    assert first, f"{name} reported no metric"
    assert all(isinstance(k, str) and isinstance(v, float) for k, v in first.items())
    assert first.keys() == second.keys()
    for key in first:
        assert (math.isnan(first[key]) and math.isnan(second[key])) or first[key] == second[key], key
    for snap, model in zip(before, (unlearned, state.original, state.gold)):
        assert_same_state(snap, snapshot(model))
    assert spec == spec_before, "evaluating must not modify the evaluator's parameters"
