"""Composition: Cascade, the generic trainable_layers / gradient_mask options, SaliencyMask and mask files."""
from __future__ import annotations

import copy
import csv
import dataclasses
import json

import numpy as np
import pytest
import torch
from torch import nn

from conftest import make_runner, tiny_config
from erasure.cli import main
from erasure.core.errors import ConfigError
from erasure.core.factory import build
from erasure.core.registry import load_builtins, registry
from erasure.core.seeding import derive_seed, seed_everything
from erasure.unlearners.base import TRAINING_OPTIONS, TrainingUnlearner
from erasure.unlearners.saliency_mask import saliency_mask

load_builtins()


def make(spec: dict):
    return build(copy.deepcopy(spec), "unlearner", "u")


def unlearn(world, spec: dict, label: str = "job", model: nn.Module | None = None, **context):
    """``spec`` run on a copy of the tiny world's original (or ``model``) in a job context."""
    workspace, state = world
    ctx = workspace.make_context(state, label)
    for key, value in context.items():
        setattr(ctx, key, value)
    out = make(spec).unlearn(copy.deepcopy(state.original) if model is None else model, ctx)
    return out, ctx


def weights(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def same(a: nn.Module, b: nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(weights(a).values(), weights(b).values()))


# ----------------------------------------------------------------------------------- Cascade
CASCADES = {
    "mask then random labels": [{"class": "SaliencyMask", "parameters": {"ratio": 0.2}},
                                {"class": "RandomLabels", "parameters": {"epochs": 2, "lr": 0.01,
                                                                         "gradient_mask": "saliency"}}],
    "impair then repair": [{"class": "NegGrad", "parameters": {"epochs": 1, "lr": 0.01}},
                           {"class": "FineTuning", "parameters": {"epochs": 2, "lr": 0.01}}],
}


@pytest.mark.parametrize("name", list(CASCADES))
def test_cascade_equals_running_its_parts_by_hand(tiny_world, name):
    steps = CASCADES[name]
    cascaded, _ = unlearn(tiny_world, {"class": "Cascade", "parameters": {"unlearners": steps}}, "Cascade")

    workspace, state = tiny_world
    ctx = workspace.make_context(state, "Cascade")
    model = copy.deepcopy(state.original)
    for i, spec in enumerate(steps):  # step i: reseeded from (job seed, i); masks shared through the context
        seed = derive_seed(ctx.seed, f"step {i}")
        step_ctx = dataclasses.replace(ctx, seed=seed, generator=seed_everything(seed), rng=np.random.default_rng(seed))
        model = make(spec).unlearn(model, step_ctx)

    assert same(cascaded, model)
    assert not same(cascaded, state.original)
    ctx = workspace.make_context(state, "Cascade")
    unseeded = copy.deepcopy(state.original)
    for spec in steps:
        unseeded = make(spec).unlearn(unseeded, ctx)
    assert not same(cascaded, unseeded), "each step has its own seed, not the job's generator carried on"


def test_a_cascade_hands_the_saliency_mask_to_later_steps(tiny_world):
    workspace, state = tiny_world
    out, ctx = unlearn(tiny_world, {"class": "Cascade", "parameters": {"unlearners": CASCADES["mask then random labels"]}})
    mask = ctx.masks["saliency"]
    expected = saliency_mask(copy.deepcopy(state.original), ctx.for_step(0), 0.2, ctx.recipe.batch_size)
    assert all(torch.equal(mask[n], expected[n]) for n in mask)
    before, after = weights(state.original), weights(out)
    for n, m in mask.items():
        assert torch.equal(after[n][~m], before[n][~m]), f"{n}: a weight outside the mask moved"
    moved = sum(int((after[n][m] != before[n][m]).sum()) for n, m in mask.items())
    assert moved > 0.5 * sum(int(m.sum()) for m in mask.values())
    unmasked, _ = unlearn(tiny_world, {"class": "Cascade", "parameters": {"unlearners": [
        CASCADES["mask then random labels"][0], {"class": "RandomLabels", "parameters": {"epochs": 2, "lr": 0.01}}]}})
    assert not same(out, unmasked)


def test_nested_specs_are_checked_with_their_json_path(tmp_path, capsys):
    inner = {"class": "Cascade", "parameters": {"unlearners": [{"class": "NegGrad", "parameters": {"lr": -1.0}}]}}
    config = tiny_config(tmp_path, unlearners=[{"class": "Identity"}, {"class": "GoldModel"},
                                               {"class": "Cascade", "parameters": {"unlearners": [
                                                   {"class": "SaliencyMask"}, inner]}}])
    path = tmp_path / "bad.jsonc"
    path.write_text(json.dumps(config))
    assert main([str(path), "--validate"]) == 2
    err = capsys.readouterr().err
    assert "bad.jsonc" in err and "Traceback" not in err
    assert "unlearners[2].parameters.unlearners[1].parameters.unlearners[0].parameters.lr: expected a value > 0" in err

    for steps, where, fragment in [
        ([], "unlearners[0].parameters.unlearners", "at least one"),
        ([{"class": "SSD", "parameters": {"trainable_layers": 1}}], "unlearners[0].parameters.unlearners[0].parameters."
         "trainable_layers", "unknown parameter"),
        ([{"class": "NegGrad", "parameters": {"validation": 0.2}}],  # a cross-parameter check() of a nested step
         "unlearners[0].parameters.unlearners[0].parameters.validation", "needs 'select'"),
        ([{"class": "NegGrad", "label": "x"}], "unlearners[0].parameters.unlearners[0].label", "unknown key"),
    ]:
        with pytest.raises(ConfigError) as error:
            build({"class": "Cascade", "parameters": {"unlearners": steps}}, "unlearner", "unlearners[0]")
        assert str(error.value).startswith(where) and fragment in str(error.value), str(error.value)


def test_a_cascade_reads_gold_when_a_step_does():
    assert not make({"class": "Cascade", "parameters": {"unlearners": [{"class": "NegGrad"}]}}).uses_gold
    assert make({"class": "Cascade", "parameters": {"unlearners": [
        {"class": "NegGrad"}, {"class": "FineTuning", "parameters": {"select": "gold_gap"}}]}}).uses_gold


# ----------------------------------------------------------------------------- trainable_layers
def test_trainable_layers_is_cfk_on_any_training_method(tiny_world):
    tuned, _ = unlearn(tiny_world, {"class": "FineTuning", "parameters": {"epochs": 2, "trainable_layers": 1}})
    cfk, _ = unlearn(tiny_world, {"class": "CFk", "parameters": {"epochs": 2, "k": 1}})
    assert same(tuned, cfk)
    _, state = tiny_world
    before, after = weights(state.original), weights(tuned)
    assert [k for k in before if not torch.equal(before[k], after[k])] == ["head.weight", "head.bias"]


def test_frozen_layers_keep_their_batch_norm_statistics(tiny_world):
    _, state = tiny_world
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 3))
    spec = {"class": "NegGrad", "parameters": {"epochs": 2, "lr": 0.01, "trainable_layers": 1}}
    frozen, _ = unlearn(tiny_world, spec, model=copy.deepcopy(model))
    before, after = weights(model), weights(frozen)
    assert [k for k in before if not torch.equal(before[k], after[k])] == ["4.weight", "4.bias"]
    assert all(m.training is False for m in frozen.modules()) and all(p.requires_grad for p in frozen.parameters()), \
        "modes and flags are restored"
    free, _ = unlearn(tiny_world, {**spec, "parameters": {"epochs": 2, "lr": 0.01}}, model=copy.deepcopy(model))
    assert not torch.equal(weights(free)["1.running_mean"], before["1.running_mean"])


# ------------------------------------------------------------------------------- gradient_mask
def reference_masked_finetuning(model, ctx, mask, epochs, lr):
    """FineTuning's loop (SGD, momentum 0.9, weight decay 5e-4) where masked-out weights never move."""
    optimizer = torch.optim.SGD(model.parameters(), lr, momentum=0.9, weight_decay=5e-4)
    model.train()
    for _ in range(epochs):
        for x, y in ctx.batches("retain"):
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            before = {n: p.detach().clone() for n, p in model.named_parameters()}
            for n, p in model.named_parameters():
                if n in mask:
                    p.grad *= mask[n]
            optimizer.step()
            with torch.no_grad():
                for n, p in model.named_parameters():
                    if n in mask:
                        p.copy_(mask[n] * p + (1 - mask[n]) * before[n])
    return model.eval()


def test_a_user_mask_file_freezes_exactly_its_zeros(tiny_world, tmp_path):
    workspace, state = tiny_world
    generator = torch.Generator().manual_seed(0)
    head = state.original.head.weight
    mask = {"head.weight": (torch.rand(head.shape, generator=generator) < 0.5).float(),  # a user's float 0/1 file,
            "body.1.bias": torch.zeros_like(state.original.body[1].bias)}             # naming two parameters only
    path = tmp_path / "mask.pt"
    torch.save(mask, path)
    out, _ = unlearn(tiny_world, {"class": "FineTuning", "parameters": {"epochs": 2, "lr": 0.05,
                                                                        "gradient_mask": str(path)}})
    expected = reference_masked_finetuning(copy.deepcopy(state.original), workspace.make_context(state, "job"), mask, 2, 0.05)
    for (name, got), want in zip(out.state_dict().items(), expected.state_dict().values()):
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-7, msg=name)
    before, after = weights(state.original), weights(out)
    assert torch.equal(after["head.weight"][mask["head.weight"] == 0], before["head.weight"][mask["head.weight"] == 0])
    assert torch.equal(after["body.1.bias"], before["body.1.bias"])
    assert not torch.equal(after["body.1.weight"], before["body.1.weight"]), "unnamed parameters train"
    plain, _ = unlearn(tiny_world, {"class": "FineTuning", "parameters": {"epochs": 2, "lr": 0.05}})
    assert not same(out, plain)


@pytest.mark.parametrize("mask, fragment", [
    ({"nope.weight": torch.ones(1)}, "not parameters of the model (nope.weight)"),
    ({"head.weight": torch.ones(2, 2)}, "has shape (2, 2)"),
    ({"head.weight": torch.full((3, 16), 0.5)}, "values other than 0 and 1"),
    ([1, 2], "expected a dict"),
])
def test_a_bad_mask_file_is_refused_with_a_reason(tiny_world, tmp_path, mask, fragment):
    path = tmp_path / "mask.pt"
    torch.save(mask, path)
    with pytest.raises(ValueError, match="mask.pt") as error:
        unlearn(tiny_world, {"class": "NegGrad", "parameters": {"epochs": 1, "gradient_mask": str(path)}})
    assert fragment in str(error.value)


def test_a_missing_mask_names_the_context_and_the_file(tiny_world, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"'saliency'.*masks held: none.*no such file"):
        unlearn(tiny_world, {"class": "NegGrad", "parameters": {"epochs": 1, "gradient_mask": "saliency"}})


def test_a_pickled_mask_file_is_not_loaded(tiny_world, tmp_path):
    path = tmp_path / "mask.pt"
    torch.save({"head.weight": torch.ones(3, 16), "code": object()}, path)
    with pytest.raises(Exception, match="[Ww]eights only"):
        unlearn(tiny_world, {"class": "NegGrad", "parameters": {"epochs": 1, "gradient_mask": str(path)}})


# -------------------------------------------------------------------------------- SaliencyMask
def test_saliency_mask_writes_a_file_another_run_can_apply(tiny_world, tmp_path):
    _, state = tiny_world
    model, ctx = unlearn(tiny_world, {"class": "SaliencyMask", "parameters": {"ratio": 0.3, "path": "m/sal.pt"}},
                         output_dir=tmp_path)
    assert same(model, state.original), "the model is unchanged"
    written = torch.load(tmp_path / "m" / "sal.pt", weights_only=True)
    assert written.keys() == ctx.masks["saliency"].keys()
    assert all(written[n].dtype == torch.bool and torch.equal(written[n], ctx.masks["saliency"][n]) for n in written)
    assert sum(int(m.sum()) for m in written.values()) == int(0.3 * sum(m.numel() for m in written.values()))

    from_file, _ = unlearn(tiny_world, {"class": "RandomLabels", "parameters": {
        "epochs": 1, "lr": 0.01, "gradient_mask": str(tmp_path / "m" / "sal.pt")}})
    before, after = weights(state.original), weights(from_file)
    assert all(torch.equal(after[n][~m], before[n][~m]) for n, m in written.items())


def test_saliency_mask_never_writes_through_a_link_or_outside_its_directory(tiny_world, tmp_path):
    target = tmp_path / "elsewhere.txt"
    target.write_text("keep me")
    (tmp_path / "job").mkdir()
    (tmp_path / "job" / "sal.pt").symlink_to(target)
    with pytest.raises(ConfigError, match="symbolic link"):
        unlearn(tiny_world, {"class": "SaliencyMask", "parameters": {"path": "sal.pt"}}, output_dir=tmp_path / "job")
    assert target.read_text() == "keep me"
    for path in ("../up.pt", str(tmp_path / "absolute.pt")):
        with pytest.raises(ConfigError, match="relative path without '..'"):
            make({"class": "SaliencyMask", "parameters": {"path": path}})


def test_salun_reuses_the_saliency_mask_step(tiny_world):
    """SalUn's mask is SaliencyMask's: a SalUn run moves only weights inside that mask."""
    workspace, state = tiny_world
    _, ctx = unlearn(tiny_world, {"class": "SaliencyMask", "parameters": {"ratio": 0.4}})
    mask = ctx.masks["saliency"]
    salun, _ = unlearn(tiny_world, {"class": "SalUn", "parameters": {"ratio": 0.4, "epochs": 1}})
    before, after = weights(state.original), weights(salun)
    assert all(torch.equal(after[n][~m], before[n][~m]) for n, m in mask.items())
    assert sum(int((after[n] != before[n]).sum()) for n in mask) > 0


def test_a_run_writes_the_mask_inside_its_output_directory(tmp_path):
    steps = [{"class": "SaliencyMask", "parameters": {"ratio": 0.3, "path": "saliency.pt"}},
             {"class": "RandomLabels", "parameters": {"epochs": 1, "gradient_mask": "saliency",
                                                      "select": "validation_accuracy"}}]
    config = tiny_config(tmp_path, unlearners=[{"class": "Cascade", "label": "SalUn by hand",
                                                "parameters": {"unlearners": steps}}])
    make_runner(config).run()
    out = tmp_path / "out"
    masks = torch.load(out / "files" / "seed0" / "SalUn_by_hand" / "saliency.pt", weights_only=True)
    assert {"head.weight", "head.bias"} <= set(masks)
    with open(out / "results.csv") as f:
        rows = [r for r in csv.DictReader(f) if r["unlearner"] == "SalUn by hand"]
    assert {r["status"] for r in rows} == {"ok"}
    kept = [r for r in rows if r["metric"] == "step1_selected_epoch"]
    assert len(kept) == 1 and kept[0]["step"] == "" and float(kept[0]["value"]) == 1.0
    assert any(r["metric"] == "step1_selection_accuracy_validation" and r["step"] == "1" for r in rows)


# --------------------------------------------------------------------------- which methods
def test_the_options_belong_to_the_methods_that_take_gradient_steps():
    training = {name for name, cls in registry("unlearner").items() if issubclass(cls, TrainingUnlearner)}
    assert {"AdvancedNegGrad", "BadTeaching", "CFk", "EUk", "FineTuning", "JiT", "MIRegularized", "NegGrad",
            "RandomLabels", "SCRUB", "SalUn", "UNSIR", "UNSIRChoiNa", "L1Sparse", "SFRon", "SCAR",
            "ConvolutionTranspose", "DELETE", "MaskedSmallGradients", "NPO", "SimNPO"} <= training
    assert not {"Identity", "GoldModel", "SSD", "FisherForgetting", "WassersteinBarycenter", "Cascade",
                "InfluenceUnlearning", "AdaptiveSSD"} & training, "one-shot methods take no gradient steps"
    for name, cls in registry("unlearner").items():
        assert (set(TRAINING_OPTIONS) <= set(cls.param_names())) == (name in training), name
    eu = make({"class": "EUk", "parameters": {"k": 2, "trainable_layers": 1, "gradient_mask": "m"}})
    assert eu.get_params()["k"] == 2 and eu.trainable_layers == 1 and eu.gradient_mask == "m"
    assert make({"class": "EUk", "parameters": eu.get_params()}).get_params() == eu.get_params()


def test_a_step_named_by_a_dotted_path_into_the_configs_imports_runs(tmp_path):
    """Steps are built (and their classes resolved) with the config, where its imports are allowed."""
    config = tiny_config(tmp_path, imports=["erasure_test_plugins"], unlearners=[
        {"class": "Cascade", "parameters": {"unlearners": [
            {"class": "erasure_test_plugins.ShrinkWeights", "parameters": {"factor": 0.5}},
            {"class": "FineTuning", "parameters": {"epochs": 1}}]}}])
    make_runner(config).run()
    with open(tmp_path / "out" / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert rows and {r["status"] for r in rows} == {"ok"}, {r["error"] for r in rows}
