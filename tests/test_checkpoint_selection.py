"""Checkpoint selection during unlearning: the ``select`` / ``validation`` options of training unlearners."""
from __future__ import annotations

import copy
import csv

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from conftest import make_runner, tiny_config
from erasure.core.errors import ConfigError
from erasure.core.factory import build
from erasure.core.registry import load_builtins
from erasure.core.seeding import derive_seed
from erasure.data.partitions import Partitions
from erasure.models.training import accuracy
from erasure.results.targets import as_gold, gold_gap
from erasure.unlearners._options import selection_key
from erasure.unlearners.base import TrainingUnlearner, UnlearningContext

load_builtins()
#: AdvancedNegGrad at a high rate on the tiny world: forget accuracy reaches gold's (0) after a few
#: epochs while validation accuracy falls later, so the rules keep different, not always the last, epochs.
METHOD = {"class": "AdvancedNegGrad", "parameters": {"epochs": 8, "lr": 0.05, "alpha": 0.5}}


def with_options(spec: dict, **options) -> dict:
    spec = copy.deepcopy(spec)
    spec["parameters"].update(options)
    return spec


def run(world, spec: dict, label: str = "job") -> tuple[nn.Module, UnlearningContext]:
    workspace, state = world
    ctx = workspace.make_context(state, label)
    return build(spec, "unlearner", "u").unlearn(copy.deepcopy(state.original), ctx), ctx


def logged(ctx: UnlearningContext, metric: str) -> dict:
    return {step: value for step, name, value in ctx.extras["trajectory"] if name == metric}


def weights(model: nn.Module) -> list[torch.Tensor]:
    return [v.detach().clone() for v in model.state_dict().values()]


def by_hand(world, fraction: float = 0.1):
    """The method's per-epoch weights when trained without the validation share of retain, carved as
    documented (a seeded permutation of retain from ``derive_seed(job seed, "validation")``)."""
    workspace, state = world
    ctx = workspace.make_context(state, "job")
    retain = ctx.partitions["retain"]
    order = torch.randperm(len(retain), generator=torch.Generator().manual_seed(derive_seed(ctx.seed, "validation")))
    chosen = torch.zeros(len(retain), dtype=torch.bool)
    chosen[order[: round(fraction * len(retain))]] = True
    validation = retain[chosen]
    ctx.partitions = Partitions(ctx.partitions.dataset, {**ctx.partitions.indices, "retain": retain[~chosen]})
    epochs: list[nn.Module] = []
    ctx.on_epoch = lambda model: epochs.append(copy.deepcopy(model))
    build(METHOD, "unlearner", "u").unlearn(copy.deepcopy(state.original), ctx)
    return ctx.partitions, validation, epochs


def prefer(rule: str, forget: list[float], valid: list[float], gold_forget: float, gold_valid: float) -> int:
    """The documented rules, written out: the 1-based epoch kept (earliest on ties)."""
    epochs = range(len(forget))
    if rule == "validation_accuracy":
        return 1 + max(epochs, key=lambda e: (valid[e], -e))
    if rule == "gold_gap":
        return 1 + min(epochs, key=lambda e: ((abs(forget[e] - gold_forget) + abs(valid[e] - gold_valid)) / 2, e))
    qualifying = [e for e in epochs if forget[e] <= gold_forget]
    if qualifying:
        return 1 + max(qualifying, key=lambda e: (valid[e], -e))
    return 1 + min(epochs, key=lambda e: (forget[e], e))


@pytest.mark.parametrize("rule", ["gold_forget_accuracy", "gold_gap", "validation_accuracy"])
def test_the_kept_epoch_is_the_one_the_rule_prefers(tiny_world, rule):
    _, state = tiny_world
    parts, validation, epochs = by_hand(tiny_world)
    forget = [accuracy(m, parts, "forget") for m in epochs]
    valid = [accuracy(m, parts, validation) for m in epochs]
    expected = prefer(rule, forget, valid, accuracy(state.gold, parts, "forget"), accuracy(state.gold, parts, validation))

    kept, ctx = run(tiny_world, with_options(METHOD, select=rule))
    assert logged(ctx, "selected_epoch") == {None: expected}
    assert all(torch.equal(a, b) for a, b in zip(weights(kept), weights(epochs[expected - 1])))
    assert list(logged(ctx, "selection_accuracy_forget").values()) == pytest.approx(forget)
    assert list(logged(ctx, "selection_accuracy_validation").values()) == pytest.approx(valid)
    if rule != "validation_accuracy":
        assert expected < len(epochs), "here the gold rules keep an earlier epoch than the last"


ACCURACIES = st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0])  # coarse, so ties happen


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(ACCURACIES, ACCURACIES), min_size=1, max_size=8), ACCURACIES, ACCURACIES,
       st.sampled_from(["gold_forget_accuracy", "gold_gap", "validation_accuracy"]))
def test_the_rules_as_documented(history, gold_forget, gold_valid, rule):
    gold = {"accuracy_forget": gold_forget, "accuracy_validation": gold_valid}
    keys = []
    for forget, valid in history:
        metrics = {"accuracy_forget": forget, "accuracy_validation": valid}
        metrics["gold_gap"] = gold_gap(metrics, gold, {"accuracy_forget": as_gold(), "accuracy_validation": as_gold()})
        keys.append(selection_key(rule, metrics, gold))
    kept = 1 + min(range(len(keys)), key=lambda e: (keys[e], e))
    assert kept == prefer(rule, [f for f, _ in history], [v for _, v in history], gold_forget, gold_valid)


def test_selection_does_not_change_the_training_trajectory(tiny_world):
    """With a named validation partition nothing is carved out: the kept model is exactly the model
    of a plain run stopped at the kept epoch (measuring consumes no random numbers)."""
    kept, ctx = run(tiny_world, with_options(METHOD, select="gold_gap", validation="retain"))
    epoch = int(logged(ctx, "selected_epoch")[None])
    plain, _ = run(tiny_world, with_options(METHOD, epochs=epoch))
    longer, _ = run(tiny_world, METHOD)
    assert all(torch.equal(a, b) for a, b in zip(weights(kept), weights(plain)))
    assert not all(torch.equal(a, b) for a, b in zip(weights(kept), weights(longer)))


class Spy(TrainingUnlearner, register=False):
    """Records what the method sees; calls end_epoch only if told to."""

    def __init__(self, epochs: int = 2):
        self.epochs = epochs

    def unlearn(self, model: nn.Module, ctx: UnlearningContext) -> nn.Module:
        self.seen = ctx.partitions
        for _ in range(self.epochs):
            ctx.end_epoch(model)
        return model


def test_the_carved_validation_share_is_never_trained_on(tiny_world):
    workspace, state = tiny_world
    spy = Spy(select="validation_accuracy", validation=0.25)
    ctx = workspace.make_context(state, "job")
    spy.unlearn(copy.deepcopy(state.original), ctx)
    retain, validation = ctx.partitions["retain"], spy.seen["validation"]
    assert len(validation) == round(0.25 * len(retain))
    assert set(spy.seen["retain"].tolist()) == set(retain.tolist()) - set(validation.tolist())
    assert ctx.partitions["retain"] is retain and "validation" not in ctx.partitions, "the job's partitions are restored"
    again = Spy(select="validation_accuracy", validation=0.25)
    again.unlearn(copy.deepcopy(state.original), workspace.make_context(state, "job"))
    other = Spy(select="validation_accuracy", validation=0.25)
    other.unlearn(copy.deepcopy(state.original), workspace.make_context(state, "another job"))
    assert torch.equal(again.seen["validation"], validation), "seeded from the job's seed"
    assert not torch.equal(other.seen["validation"], validation)


def test_a_method_that_never_ends_an_epoch_cannot_select(tiny_world):
    workspace, state = tiny_world
    with pytest.raises(RuntimeError, match=r"ctx.end_epoch\(model\)"):
        Spy(epochs=0, select="validation_accuracy").unlearn(copy.deepcopy(state.original), workspace.make_context(state, "j"))


def test_validation_never_reads_the_test_set(tiny_world):
    for name in ("test", "forget_test", "retain_test", "forget"):
        with pytest.raises(ConfigError, match="never the forget or the test set"):
            build(with_options(METHOD, select="gold_gap", validation=name), "unlearner", "u")
    workspace, state = tiny_world
    ctx = workspace.make_context(state, "job")
    ctx.partitions.indices["held_out"] = ctx.partitions["test"][:5]  # a named partition drawn from test
    spy = Spy(select="validation_accuracy", validation="held_out")
    with pytest.raises(ValueError, match="holds test samples"):
        spy.unlearn(copy.deepcopy(state.original), ctx)
    with pytest.raises(ValueError, match=r"'nope' does not exist \(partitions: train, test"):
        Spy(select="validation_accuracy", validation="nope").unlearn(copy.deepcopy(state.original), ctx)


def test_gold_rules_ask_for_the_gold_model():
    def uses_gold(spec):
        return build(spec, "unlearner", "u").uses_gold

    assert uses_gold(with_options(METHOD, select="gold_gap"))
    assert not uses_gold(with_options(METHOD, select="validation_accuracy")) and not uses_gold(METHOD)
    assert uses_gold({"class": "MIRegularized", "parameters": {"select": "gold_forget_accuracy"}})
    assert uses_gold({"class": "MIRegularized", "parameters": {"stop": "gold_accuracy"}})


def test_a_run_records_the_kept_epoch(tmp_path):
    config = tiny_config(tmp_path, unlearners=[{"class": "NegGrad", "parameters": {"epochs": 3, "lr": 0.01,
                                                                                    "select": "gold_gap"}}])
    make_runner(config).run()
    with open(tmp_path / "out" / "results.csv") as f:
        rows = list(csv.DictReader(f))
    kept = [r for r in rows if r["metric"] == "selected_epoch"]
    assert len(kept) == 1 and kept[0]["step"] == "" and kept[0]["status"] == "ok" and 1 <= float(kept[0]["value"]) <= 3
    gaps = sorted((int(r["step"]), float(r["value"])) for r in rows if r["metric"] == "selection_gold_gap")
    assert [s for s, _ in gaps] == [1, 2, 3]
    assert min(gaps, key=lambda sv: (sv[1], sv[0]))[0] == float(kept[0]["value"])
    with open(tmp_path / "out" / "summary.csv") as f:
        assert "selected_epoch" in f.read()
