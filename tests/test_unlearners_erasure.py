"""Oracle and parameter tests for the ERASURE unlearners (RandomLabels … SalUn)."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from erasure.core.errors import ConfigError
from erasure.core.factory import build
from erasure.core.registry import load_builtins
from erasure.data.forget import ClassForget, RandomForget
from erasure.data.partitions import Split, make_partitions
from erasure.data.sources.sklearn import SklearnDigits
from erasure.models.training import TrainingRecipe, accuracy, train_model
from erasure.models.zoo import MLP
from erasure.unlearners.base import UnlearningContext

load_builtins()




class Reversed(nn.Module):
    """Attribute order (head, body) differs from forward order (body, head)."""

    def __init__(self):
        super().__init__()
        self.head = nn.Linear(16, 10)
        self.body = nn.Linear(64, 16)

    def forward(self, x):
        return self.head(torch.relu(self.body(x.flatten(1))))


def make_world(forget, model_fn, epochs=15, seed=0):
    torch.manual_seed(seed)
    data = SklearnDigits().load()
    parts = make_partitions(data, Split(), forget, seed)
    recipe = TrainingRecipe(epochs=epochs, batch_size=64)
    model = model_fn()
    train_model(model, parts, "train", recipe, torch.Generator().manual_seed(seed))
    return parts, recipe, model_fn, model


@pytest.fixture(scope="module")
def digits_class():
    return make_world(ClassForget([3]), lambda: MLP((1, 8, 8), 10, hidden=[32]))


@pytest.fixture(scope="module")
def digits_random():
    return make_world(RandomForget(fraction=0.1), lambda: MLP((1, 8, 8), 10, hidden=[32]), epochs=10)


@pytest.fixture(scope="module")
def digits_reversed():
    return make_world(ClassForget([3]), Reversed, epochs=10)


def context(world, seed=1):
    parts, recipe, model_fn, _ = world
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    return UnlearningContext(parts, torch.device("cpu"), 10, recipe, seed, generator, np.random.default_rng(seed),
                             model_fn, lambda: None)


def run(world, cls, seed=1, **params):
    unlearner = build({"class": cls, "parameters": params}, "unlearner", "test")
    return unlearner.unlearn(copy.deepcopy(world[3]), context(world, seed))


def flat(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()])


# ------------------------------------------------------------------ every parameter is honoured
FAST = {
    "RandomLabels": {"epochs": 2, "lr": 0.01},
    "CFk": {"epochs": 1},
    "EUk": {"epochs": 1},
    "UNSIR": {"noise_steps": 3, "noise_batch_size": 16, "noise_repeats": 2},
    "BadTeaching": {"lr": 1e-3},
    "SCRUB": {"epochs": 2, "msteps": 1, "lr": 0.01},
    "SSD": {"alpha": 3.0},
    "FisherForgetting": {"alpha": 1e-4},
    "SalUn": {"epochs": 1},
}
VARIANTS = [
    ("RandomLabels", "epochs", 3), ("RandomLabels", "lr", 0.02), ("RandomLabels", "batch_size", 17),
    ("RandomLabels", "optimizer", {"class": "SGD"}), ("RandomLabels", "redraw", True),
    ("RandomLabels", "pass_order", "forget_then_retain"),
    ("CFk", "k", 2), ("CFk", "epochs", 2), ("CFk", "lr", 0.001), ("CFk", "batch_size", 17), ("CFk", "optimizer", {"class": "Adam"}),
    ("EUk", "k", 2), ("EUk", "epochs", 2), ("EUk", "lr", 0.001), ("EUk", "batch_size", 17), ("EUk", "optimizer", {"class": "Adam"}),
    ("EUk", "init", "architecture"),
    ("UNSIR", "noise_steps", 6), ("UNSIR", "noise_lr", 0.5), ("UNSIR", "noise_l2", 0.0), ("UNSIR", "noise_batch_size", 8),
    ("UNSIR", "noise_repeats", 3), ("UNSIR", "per_sample", True), ("UNSIR", "retain_fraction", 0.5), ("UNSIR", "lr", 1e-3),
    ("UNSIR", "impair_epochs", 2), ("UNSIR", "repair_lr", 1e-3), ("UNSIR", "repair_epochs", 0), ("UNSIR", "batch_size", 17),
    ("UNSIR", "optimizer", {"class": "SGD"}), ("UNSIR", "noise_train_mode", False), ("UNSIR", "repair_on", "retain"),
    ("BadTeaching", "epochs", 2), ("BadTeaching", "lr", 1e-2), ("BadTeaching", "temperature", 4.0),
    ("BadTeaching", "retain_fraction", 0.6), ("BadTeaching", "batch_size", 32),
    ("BadTeaching", "teacher", {"class": "MLP", "parameters": {"hidden": [8]}}), ("BadTeaching", "optimizer", {"class": "SGD"}),
    ("SCRUB", "epochs", 3), ("SCRUB", "msteps", 2), ("SCRUB", "lr", 0.02), ("SCRUB", "temperature", 1.0),
    ("SCRUB", "alpha", 0.5), ("SCRUB", "gamma", 0.5), ("SCRUB", "batch_size", 17), ("SCRUB", "forget_batch_size", 17),
    ("SCRUB", "optimizer", {"class": "Adam"}), ("SCRUB", "scheduler", {"class": "StepLR", "parameters": {"step_size": 1}}),
    ("SSD", "alpha", 2.0), ("SSD", "dampening", 0.1), ("SSD", "label_free", True), ("SSD", "batch_size", 16),
    ("SSD", "importance", "per_sample"),
    ("FisherForgetting", "alpha", 1e-3), ("FisherForgetting", "max_variance", 1.0),
    ("FisherForgetting", "zero_forgotten_classes", False), ("FisherForgetting", "batch_size", 16),
    ("FisherForgetting", "gradient_memory_mb", 0.5),  # ~50 of the 640 gradients of a batch at once
    ("SalUn", "ratio", 0.2), ("SalUn", "epochs", 2), ("SalUn", "lr", 0.05), ("SalUn", "batch_size", 17),
    ("SalUn", "optimizer", {"class": "Adam"}), ("SalUn", "pass_order", "mixed"),
]
# settings that must NOT change the result here: sums over samples (up to float rounding), and
# train vs eval mode on an MLP without dropout or batch-norm
UNCHANGED = {("FisherForgetting", "batch_size"), ("FisherForgetting", "gradient_memory_mb"), ("UNSIR", "noise_train_mode")}


def test_every_parameter_has_a_variant():
    from erasure.core.registry import lookup
    from erasure.unlearners.base import TRAINING_OPTIONS  # generic options: tests/test_composition.py

    for cls in FAST:
        covered = {p for c, p, _ in VARIANTS if c == cls}
        assert covered == set(lookup("unlearner", cls).param_names()) - set(TRAINING_OPTIONS), cls


_BASE: dict[str, torch.Tensor] = {}


@pytest.mark.parametrize("cls,param,value", VARIANTS, ids=[f"{c}-{p}" for c, p, _ in VARIANTS])
def test_parameter_is_honoured(digits_class, cls, param, value):
    if cls not in _BASE:
        _BASE[cls] = flat(run(digits_class, cls, **FAST[cls]))
    base = _BASE[cls]
    changed = run(digits_class, cls, **{**FAST[cls], param: value})
    if (cls, param) in UNCHANGED:
        assert torch.allclose(base, flat(changed), atol=1e-5)
        return
    assert not torch.equal(base, flat(changed))


@pytest.mark.parametrize("cls", sorted(set(FAST) - {"SSD", "FisherForgetting"}))  # the two that take no step
def test_lr_inside_optimizer_is_refused(cls):
    with pytest.raises(ConfigError):
        build({"class": cls, "parameters": {"optimizer": {"class": "SGD", "parameters": {"lr": 0.1}}}}, "unlearner", "u")


# ------------------------------------------------------------------ SSD (oracles: test_fidelity_unlearners_a.py)
def test_lf_ssd_uses_no_labels(digits_class):
    parts, recipe, fn, model = digits_class
    shuffled = copy.copy(parts.dataset)
    shuffled.targets = parts.dataset.targets[torch.randperm(len(parts.dataset.targets), generator=torch.Generator().manual_seed(0))]
    world = (parts.with_dataset(shuffled), recipe, fn, model)
    # per sample: the default class-sorted batches order D_r by its labels, as the reference's loaders
    free = {"alpha": 3.0, "importance": "per_sample"}
    assert torch.equal(flat(run(digits_class, "SSD", label_free=True, **free)), flat(run(world, "SSD", label_free=True, **free)))
    assert not torch.equal(flat(run(digits_class, "SSD", **free)), flat(run(world, "SSD", **free)))


# ------------------------------------------------------------------------------ SCRUB oracle
def test_scrub_teacher_is_untouched_and_kl_pushes_the_student(digits_class):
    parts, _, _, original = digits_class
    ctx = context(digits_class)
    teachers = []
    real = ctx.frozen_copy

    def capture(model):
        teachers.append(real(model))
        return teachers[-1]

    ctx.frozen_copy = capture
    unlearner = build({"class": "SCRUB", "parameters": {"epochs": 3, "msteps": 3, "lr": 1e-3, "gamma": 0.0, "alpha": 0.0,
                                                          "optimizer": {"class": "Adam"}}}, "unlearner", "u")
    student = copy.deepcopy(original)
    out = unlearner.unlearn(student, ctx)
    (teacher,) = teachers
    assert torch.equal(flat(teacher), flat(original))
    assert all(a.data_ptr() != b.data_ptr() for a, b in zip(teacher.parameters(), out.parameters()))
    # with gamma = alpha = 0 only the max-step KL can move the student, and it must move it
    assert not torch.equal(flat(out), flat(original))
    from erasure.unlearners.scrub import distill_kl

    x = parts.inputs("forget")
    with torch.no_grad():
        assert float(distill_kl(out(x), teacher(x), 4.0)) > 0.1


def test_scrub_kl_has_gradient_for_the_student_only():
    from erasure.unlearners.scrub import distill_kl

    student = torch.randn(8, 10, requires_grad=True)
    teacher = torch.randn(8, 10, requires_grad=True)
    distill_kl(student, teacher.detach(), 4.0).backward()
    assert student.grad.abs().sum() > 0 and teacher.grad is None
    same = torch.randn(4, 10)
    assert float(distill_kl(same, same, 2.0)) == pytest.approx(0.0, abs=1e-6)


# ---------------------------------------------------------------------------- Fisher oracle
def test_fisher_noise_variance_scales_with_alpha(digits_random):
    original = flat(digits_random[3])
    small = flat(run(digits_random, "FisherForgetting", alpha=1e-8, zero_forgotten_classes=False)) - original
    large = flat(run(digits_random, "FisherForgetting", alpha=1e-6, zero_forgotten_classes=False)) - original
    # same draw of ε, standard deviation √(α·v): 100× α gives 10× the displacement, element by element
    assert torch.allclose(large, 10 * small, rtol=1e-2, atol=1e-6)
    assert small.abs().max() > 0
    low = build({"class": "FisherForgetting", "parameters": {"alpha": 1e-8}}, "unlearner", "u")
    high = build({"class": "FisherForgetting", "parameters": {"alpha": 3e-7}}, "unlearner", "u")
    v_low = low.variances(digits_random[3], context(digits_random))
    v_high = high.variances(digits_random[3], context(digits_random))
    for name in v_low:
        assert torch.allclose(v_high[name], 30 * v_low[name], rtol=1e-5)


def test_fisher_per_sample_gradients_match_a_loop(digits_class):
    from erasure.unlearners.fisher import expected_fisher_diagonal

    parts, _, _, model = digits_class
    index = parts["retain"][:12]
    got = expected_fisher_diagonal(model, parts.batches(index, 5), 10)
    params = dict(model.named_parameters())
    expected = {n: torch.zeros_like(p) for n, p in params.items()}
    for i in index:
        x = parts.dataset.take(i.view(1))
        out = model(x)
        probs = torch.softmax(out, 1)[0].detach()
        for c in range(10):
            grads = torch.autograd.grad(nn.functional.cross_entropy(out, torch.tensor([c])), list(params.values()), retain_graph=True)
            for n, g in zip(params, grads):
                expected[n] += probs[c] * g * g
    for n in params:
        assert torch.allclose(got[n], expected[n] / len(index), rtol=1e-4, atol=1e-9)


def test_fisher_zeroes_forgotten_class_rows(digits_class):
    out = run(digits_class, "FisherForgetting")
    assert out.head.weight[3].abs().max() < 0.1 and digits_class[3].head.weight[3].abs().max() > 0.1
    assert accuracy(out, digits_class[0], "forget") < 0.3


# ----------------------------------------------------------------------------- SalUn oracle
@pytest.mark.parametrize("optimizer", [None, {"class": "SGD", "parameters": {"momentum": 0.9, "weight_decay": 0.01}}])
def test_salun_changes_only_masked_weights(digits_class, optimizer):
    from erasure.unlearners.salun import saliency_mask

    _, _, _, original = digits_class
    params = {"ratio": 0.3, "epochs": 2, **({"optimizer": optimizer} if optimizer else {})}
    out = run(digits_class, "SalUn", **params)
    masks = saliency_mask(copy.deepcopy(original), context(digits_class), 0.3, 64)
    total = sum(m.numel() for m in masks.values())
    assert sum(int(m.sum()) for m in masks.values()) == round(0.3 * total)
    moved = 0
    for (name, before), after in zip(original.named_parameters(), out.parameters()):
        assert torch.equal(after[~masks[name]], before[~masks[name]]), name
        moved += int((after[masks[name]] != before[masks[name]]).sum())
    assert moved > 0.5 * round(0.3 * total)


# --------------------------------------------------------------------------- CFk / EUk oracle
@pytest.mark.parametrize("cls", ["CFk", "EUk"])
def test_last_layer_methods_use_forward_order_and_freeze_the_rest(digits_reversed, cls):
    original = digits_reversed[3]
    out = run(digits_reversed, cls, k=1, epochs=2)
    assert torch.equal(out.body.weight, original.body.weight) and torch.equal(out.body.bias, original.body.bias)
    assert not torch.equal(out.head.weight, original.head.weight)
    both = run(digits_reversed, cls, k=2, epochs=1)
    assert not torch.equal(both.body.weight, original.body.weight)


@pytest.fixture(scope="module")
def digits_deep():
    return make_world(ClassForget([3]), lambda: MLP((1, 8, 8), 10, hidden=[16, 16]), epochs=3)


def test_cfk_frozen_layers_bit_identical_in_mlp(digits_deep):
    original = digits_deep[3]
    out = run(digits_deep, "CFk", k=2, epochs=2)
    assert torch.equal(out.body[1].weight, original.body[1].weight) and torch.equal(out.body[1].bias, original.body[1].bias)
    assert not torch.equal(out.head.weight, original.head.weight)
    assert not torch.equal(out.body[3].weight, original.body[3].weight)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_euk_architecture_init_reinitialises_exactly_k_layers(digits_deep, k):
    from erasure.unlearners.euk import reinitialise_last_layers

    world = digits_deep
    original = world[3]
    model = copy.deepcopy(original)
    ctx = context(world)
    torch.manual_seed(5)
    fresh = dict(world[2]().named_modules())
    torch.manual_seed(5)
    names = reinitialise_last_layers(model, ctx, k, "architecture")
    layers = ["body.1", "body.3", "head"]
    assert names == layers[-k:]
    modules = dict(model.named_modules())
    old = dict(original.named_modules())
    for name in layers:
        same = all(torch.equal(a, b) for a, b in zip(modules[name].parameters(), old[name].parameters()))
        assert same == (name not in names), name
        if name in names:
            assert all(torch.equal(a, b) for a, b in zip(modules[name].parameters(), fresh[name].parameters()))


# ----------------------------------------------------------------------------- UNSIR oracle
def test_unsir_noise_beats_random_noise(digits_class):
    from erasure.unlearners.unsir import error_maximizing_noise

    model = digits_class[3]
    labels = torch.full((64,), 3)
    learned = error_maximizing_noise(model, labels, (1, 8, 8), 25, 0.1, 0.1, torch.Generator().manual_seed(0))
    random = torch.randn(64, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert nn.functional.cross_entropy(model(learned), labels) > nn.functional.cross_entropy(model(random), labels) + 1.0
    assert all(p.requires_grad for p in model.parameters())


def test_unsir_per_sample_noise_matches_forget_set(digits_random):
    unlearner = build({"class": "UNSIR", "parameters": {"per_sample": True, "noise_steps": 2}}, "unlearner", "u")
    noise, labels = unlearner.noise(copy.deepcopy(digits_random[3]), context(digits_random))
    assert noise.shape == (digits_random[0].size("forget"), 1, 8, 8)
    assert torch.equal(labels, digits_random[0].targets("forget"))


# --------------------------------------------------------------------- BadTeaching / RandomLabels
def test_bad_teaching_with_custom_teacher_forgets(digits_class):
    parts = digits_class[0]
    out = run(digits_class, "BadTeaching", epochs=5, lr=1e-3, teacher={"class": "MLP", "parameters": {"hidden": [8]}})
    assert accuracy(out, parts, "forget") < 0.5
    assert accuracy(out, parts, "retain") > 0.9


def test_random_wrong_labels_are_wrong_and_uniform():
    from erasure.unlearners._common import random_wrong_labels

    targets = torch.randint(0, 10, (20000,), generator=torch.Generator().manual_seed(0))
    new = random_wrong_labels(targets, 10, torch.Generator().manual_seed(1))
    assert not (new == targets).any()
    counts = torch.bincount((new - targets) % 10, minlength=10)
    assert counts[0] == 0 and (counts[1:].float() / len(targets) - 1 / 9).abs().max() < 0.01


def test_the_original_is_not_touched_and_results_are_deterministic(digits_class):
    before = flat(digits_class[3]).clone()
    for cls, params in FAST.items():
        a, b = run(digits_class, cls, **params), run(digits_class, cls, **params)
        assert torch.equal(flat(a), flat(b)), cls
        assert torch.isfinite(flat(a)).all(), cls
    assert torch.equal(flat(digits_class[3]), before)
