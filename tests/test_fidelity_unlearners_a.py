"""Reference fidelity of SSD / LF-SSD, JiT, SCRUB, SalUn, UNSIR and Bad Teaching (see docs/fidelity.md).

Each core is checked against an independent re-implementation of the authors' code, written
here in the reference's own shape (its loaders, loops and update rules) on a toy model of the
digits, drawing its random numbers from the same generator in the same order, so that weights
agree to float tolerance.
"""
from __future__ import annotations

import copy
import functools
import logging

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import ConcatDataset, DataLoader, TensorDataset

from erasure.core.errors import ConfigError
from erasure.core.factory import build
from erasure.core.registry import load_builtins
from erasure.data.dataset import Dataset
from erasure.data.forget import ClassForget
from erasure.data.partitions import Partitions, Split, make_partitions
from erasure.data.sources.sklearn import SklearnDigits
from erasure.models.training import TrainingRecipe, train_model
from erasure.unlearners.base import UnlearningContext

load_builtins()
RECIPE = TrainingRecipe(epochs=5, batch_size=64)




@functools.lru_cache(maxsize=None)
def digits() -> Partitions:
    """Digits, the class 3 forgotten (145 of 1,437 training images)."""
    return make_partitions(SklearnDigits().load(), Split(), ClassForget([3]), seed=0)


@functools.lru_cache(maxsize=None)
def small_digits() -> Partitions:
    """The same forget set with a retain set of 200 (for oracles that loop over single samples)."""
    parts = digits()
    indices = dict(parts.indices, retain=parts["retain"][:200])
    indices["train"] = torch.sort(torch.cat([indices["retain"], parts["forget"]])).values
    return Partitions(parts.dataset, indices, parts.forget_spec)


def toy(batch_norm: bool = False) -> nn.Module:
    layers = [nn.Flatten(), nn.Linear(64, 16)] + ([nn.BatchNorm1d(16)] if batch_norm else []) + [nn.ReLU(), nn.Linear(16, 10)]
    return nn.Sequential(*layers)


@functools.lru_cache(maxsize=None)
def _trained(batch_norm: bool) -> dict:
    torch.manual_seed(0)
    model = toy(batch_norm)
    train_model(model, digits(), "train", RECIPE, torch.Generator().manual_seed(0))
    return copy.deepcopy(model.state_dict())


def trained(batch_norm: bool = False) -> nn.Module:
    model = toy(batch_norm)
    model.load_state_dict(_trained(batch_norm))
    return model.eval()


def context(parts: Partitions | None = None, seed: int = 1) -> UnlearningContext:
    parts = parts or digits()
    return UnlearningContext(parts, torch.device("cpu"), 10, RECIPE, seed, torch.Generator().manual_seed(seed),
                             np.random.default_rng(seed), toy, lambda: None)


def unlearn(cls: str, model: nn.Module | None = None, parts: Partitions | None = None, seed: int = 1, **params) -> nn.Module:
    unlearner = build({"class": cls, "parameters": params}, "unlearner", "test")
    return unlearner.unlearn(model if model is not None else trained(), context(parts, seed))


def assert_same_weights(a: nn.Module, b: nn.Module, rtol: float = 1e-5, atol: float = 1e-6) -> None:
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.allclose(x.float(), y.float(), rtol=rtol, atol=atol), name


def flat(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()])


# =================================================================== SSD / LF-SSD
def reference_importance(model: nn.Module, loader, label_free: bool) -> dict:
    """The SSD repository's ``calc_importance`` (LF-SSD: its README's replacement lines)."""
    importances = {n: torch.zeros_like(p) for n, p in model.named_parameters()}
    for x, y in loader:
        model.zero_grad()
        out = model(x)
        loss = torch.norm(out, p="fro", dim=1).pow(2).mean() if label_free else nn.CrossEntropyLoss()(out, y)
        loss.backward()
        for (_, p), imp in zip(model.named_parameters(), importances.values()):
            if p.grad is not None:
                imp.data += p.grad.data.clone().abs() if label_free else p.grad.data.clone().pow(2)
    for imp in importances.values():
        imp.data /= float(len(loader))
    return importances


def reference_modify_weight(model: nn.Module, original: dict, forget: dict, alpha: float, lam: float) -> None:
    """The SSD repository's ``ParameterPerturber.modify_weight`` (exponent 1, lower bound 1)."""
    with torch.no_grad():
        for (_, p), oimp, fimp in zip(model.named_parameters(), original.values(), forget.values()):
            locations = torch.where(fimp > oimp.mul(alpha))
            update = (oimp.mul(lam).div(fimp)).pow(1)[locations]
            update[torch.where(update > 1)] = 1
            p[locations] = p[locations].mul(update)


def reference_class_loaders(parts: Partitions, batch_size: int):
    """forget_full_class_main.py: classwise lists in dataset order, retain = the other classes in
    class order, full = ConcatDataset(retain, forget), unshuffled DataLoaders."""
    data, forget_class = parts.dataset, 3
    classwise = {c: [] for c in range(10)}
    for i in parts["train"].tolist():
        classwise[int(data.targets[i])].append((data.inputs[i], data.targets[i]))
    retain = [s for c in range(10) if c != forget_class for s in classwise[c]]
    forget = list(classwise[forget_class])
    return DataLoader(ConcatDataset((retain, forget)), batch_size=batch_size), DataLoader(forget, batch_size=batch_size)


@pytest.mark.parametrize("label_free", [False, True])
def test_ssd_class_sorted_batches_equal_the_reference_code(label_free):
    alpha, lam = 3.0, 0.5
    expected = trained()
    full, forget = reference_class_loaders(digits(), 64)
    sample_importances = reference_importance(expected, forget, label_free)
    original_importances = reference_importance(expected, full, label_free)
    reference_modify_weight(expected, original_importances, sample_importances, alpha, lam)
    got = unlearn("SSD", alpha=alpha, dampening=lam, label_free=label_free, importance="class_sorted_batches", batch_size=64)
    assert_same_weights(got, expected)
    assert not torch.equal(flat(got), flat(trained()))


@pytest.mark.parametrize("label_free", [False, True])
def test_ssd_per_sample_importance_is_the_mean_of_per_sample_squared_gradients(label_free):
    alpha, lam = 1.5, 1.0
    parts, expected = small_digits(), trained()
    loaders = [DataLoader(TensorDataset(parts.dataset.inputs[index], parts.dataset.targets[index]), batch_size=1)
               for index in (parts["train"], parts["forget"])]
    original_importances, sample_importances = (reference_importance(expected, loader, label_free) for loader in loaders)
    reference_modify_weight(expected, original_importances, sample_importances, alpha, lam)
    got = unlearn("SSD", parts=parts, alpha=alpha, dampening=lam, label_free=label_free, importance="per_sample")
    assert_same_weights(got, expected)
    assert int((flat(got) != flat(trained())).sum()) > 10


def permuted_copy(parts: Partitions, seed: int = 0) -> Partitions:
    """The same samples stored in another order, every partition re-indexed (and sorted, as make_partitions does)."""
    n = len(parts.dataset)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    position = torch.empty(n, dtype=torch.long)
    position[perm] = torch.arange(n)
    data = parts.dataset
    shuffled = Dataset(data.inputs[perm], data.targets[perm], data.num_classes, name="permuted")
    return Partitions(shuffled, {k: torch.sort(position[v]).values for k, v in parts.indices.items()}, parts.forget_spec)


@pytest.mark.parametrize("label_free", [False, True])
def test_ssd_does_not_depend_on_how_the_source_orders_its_samples(label_free):
    alpha = 2.5
    original = flat(trained())
    a = flat(unlearn("SSD", alpha=alpha, label_free=label_free, importance="per_sample"))
    b = flat(unlearn("SSD", parts=permuted_copy(digits()), alpha=alpha, label_free=label_free, importance="per_sample"))
    assert torch.equal(a != original, b != original)  # the same weights selected
    assert int((a != original).sum()) > 10
    assert torch.allclose(a, b, rtol=1e-6, atol=1e-8)
    # the batch estimators (the default is the reference code's) are not order-free
    c = flat(unlearn("SSD", alpha=alpha, label_free=label_free))
    d = flat(unlearn("SSD", parts=permuted_copy(digits()), alpha=alpha, label_free=label_free))
    assert not torch.allclose(c, d, rtol=1e-6, atol=1e-8)


def test_ssd_shuffled_batches_follow_the_random_forgetting_loaders():
    parts, expected = digits(), trained()
    g = torch.Generator().manual_seed(1)  # the context's generator
    retain = parts["retain"][torch.randperm(parts.size("retain"), generator=g)]
    forget = parts["forget"][torch.randperm(parts.size("forget"), generator=g)]
    loader = lambda index: DataLoader(TensorDataset(parts.dataset.inputs[index], parts.dataset.targets[index]), batch_size=64)
    full = reference_importance(expected, loader(torch.cat([retain, forget])), False)
    sample = reference_importance(expected, loader(forget), False)
    reference_modify_weight(expected, full, sample, 3.0, 1.0)
    assert_same_weights(unlearn("SSD", alpha=3.0, importance="shuffled_batches", batch_size=64), expected)


def test_ssd_per_sample_cannot_select_once_alpha_reaches_the_data_to_forget_ratio(caplog):
    # I_D >= (|D_f| / |D|) * I_f for a mean over samples: 1,437 / 145 = 9.9 < alpha = 10
    with caplog.at_level(logging.WARNING, logger="erasure.unlearners"):
        out = unlearn("SSD", importance="per_sample")
    assert torch.equal(flat(out), flat(trained()))
    assert "no weight can have" in caplog.text


def test_ssd_default_is_the_reference_codes_class_sorted_batches_of_64():
    expected = unlearn("SSD", alpha=3.0, importance="class_sorted_batches", batch_size=64)
    assert_same_weights(unlearn("SSD", alpha=3.0), expected)
    assert int((flat(expected) != flat(trained())).sum()) > 10
    assert not torch.equal(flat(expected), flat(unlearn("SSD", alpha=3.0, importance="per_sample")))


# =========================================================================== JiT
def reference_jit(model: nn.Module, parts: Partitions, sigma: float, lr: float, n_samples: int, batch_size: int,
                  generator: torch.Generator) -> nn.Module:
    """jwf40/Information-Theoretic-Unlearning ``Lipschitz.modify_weight``: the model as loaded (train
    mode), gradients zeroed once before the loop, N forward passes of B perturbed images per batch."""
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    model.train()
    optimizer.zero_grad()
    forget = parts["forget"][torch.randperm(parts.size("forget"), generator=generator)]
    for start in range(0, len(forget), batch_size):
        x = parts.dataset.inputs[forget[start : start + batch_size]]
        noise = torch.randn((n_samples, *x.shape), generator=generator)
        out = model(x)
        loss = torch.tensor(0.0)
        for n in range(n_samples):
            image2 = torch.clamp(x + noise[n] * sigma, min=x.min(), max=x.max())
            with torch.no_grad():
                out2 = model(image2)
            in_norm = torch.linalg.vector_norm(x.view(len(x), -1) - image2.view(len(x), -1), dim=1)
            out_norm = torch.linalg.vector_norm(out - out2, dim=1)
            loss += (out_norm / in_norm).sum().abs()
        loss /= n_samples
        loss.backward()
        optimizer.step()
    return model


def test_jit_reference_options_reproduce_the_reference_code():
    params = {"sigma": 0.5, "lr": 1e-3, "num_samples": 5, "batch_size": 40}
    expected = reference_jit(trained(batch_norm=True), digits(), params["sigma"], params["lr"], 5, 40,
                             torch.Generator().manual_seed(1))
    got = unlearn("JiT", trained(batch_norm=True), **params)  # the defaults are the code's
    assert_same_weights(got, expected)  # batch-norm running statistics included


def test_jit_accumulated_gradients_move_the_model_about_k_plus_one_over_two_times_further():
    # 145 forget images in 4 batches: step k applies the sum of batches 1..k, (1+2+3+4)/4 = 2.5
    base = flat(trained())
    params = {"sigma": 0.5, "lr": 1e-4, "batch_size": 37}
    paper = float((flat(unlearn("JiT", accumulate_gradients=False, **params)) - base).norm())
    code = float((flat(unlearn("JiT", **params)) - base).norm())
    assert 2.2 < code / paper < 2.6


def test_jit_train_mode_only_matters_for_mode_dependent_layers():
    params = {"sigma": 0.5, "lr": 1e-3, "num_samples": 5}
    assert torch.allclose(flat(unlearn("JiT", train_mode=False, **params)), flat(unlearn("JiT", **params)), atol=1e-6)
    bn = flat(unlearn("JiT", trained(batch_norm=True), train_mode=False, **params))
    assert not torch.allclose(bn, flat(unlearn("JiT", trained(batch_norm=True), **params)), atol=1e-6)


# ========================================================================= SCRUB
def reference_distill_kl(y_s: torch.Tensor, y_t: torch.Tensor, T: float) -> torch.Tensor:
    """SCRUB's distiller_zoo/KD.py ``DistillKL``."""
    return F.kl_div(F.log_softmax(y_s / T, dim=1), F.softmax(y_t / T, dim=1), reduction="sum") * T**2 / y_s.shape[0]


def reference_scrub(model: nn.Module, parts: Partitions, lr: float, weight_decay: float, decay_epochs: list[int],
                    epochs: int, msteps: int, alpha: float, gamma: float, T: float, batch_size: int,
                    forget_batch_size: int, generator: torch.Generator) -> nn.Module:
    """small_scale_unlearning.ipynb: Adam, ``sgda_adjust_learning_rate`` at the start of each epoch
    (lr × 0.1 per decay epoch passed), then ``train_distill`` maximize (epoch <= msteps) and minimize."""
    teacher = copy.deepcopy(model).eval()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)

    def passes(name: str, size: int):
        index = parts[name][torch.randperm(parts.size(name), generator=generator)]
        for start in range(0, len(index), size):
            chunk = index[start : start + size]
            yield parts.dataset.inputs[chunk], parts.dataset.targets[chunk]

    for epoch in range(1, epochs + 1):
        steps = int(np.sum(epoch > np.asarray(decay_epochs)))
        if steps > 0:
            for group in optimizer.param_groups:
                group["lr"] = lr * 0.1**steps
        model.train()
        splits = (["maximize"] if epoch <= msteps else []) + ["minimize"]
        for split in splits:
            for x, y in passes("forget" if split == "maximize" else "retain", forget_batch_size if split == "maximize" else batch_size):
                logit_s = model(x)
                with torch.no_grad():
                    logit_t = teacher(x)
                loss_div = reference_distill_kl(logit_s, logit_t, T)
                loss = gamma * F.cross_entropy(logit_s, y) + alpha * loss_div if split == "minimize" else -loss_div
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
    return model


def test_scrub_small_scale_schedule_equals_the_notebook():
    settings = {"epochs": 4, "msteps": 2, "alpha": 0.5, "gamma": 1.0, "temperature": 2.0, "lr": 1e-3, "batch_size": 32,
                "forget_batch_size": 64}
    expected = reference_scrub(trained(), digits(), 1e-3, 0.1, [1, 3], 4, 2, 0.5, 1.0, 2.0, 32, 64,
                               torch.Generator().manual_seed(1))
    got = unlearn("SCRUB", optimizer={"class": "Adam", "parameters": {"weight_decay": 0.1}},
                  scheduler={"class": "MultiStepLR", "parameters": {"milestones": [1, 3], "gamma": 0.1}}, **settings)
    assert_same_weights(got, expected)
    constant = unlearn("SCRUB", optimizer={"class": "Adam", "parameters": {"weight_decay": 0.1}}, **settings)
    assert not torch.allclose(flat(constant), flat(got), atol=1e-5)


def test_scrub_scheduler_spec_is_validated_and_round_trips():
    spec = {"class": "MultiStepLR", "parameters": {"milestones": [5, 8, 9], "gamma": 0.1}}
    scrub = build({"class": "SCRUB", "parameters": {"scheduler": spec}}, "unlearner", "unlearners[3]")
    assert build({"class": "SCRUB", "parameters": scrub.get_params()}, "unlearner", "u").get_params() == scrub.get_params()
    with pytest.raises(ConfigError) as bad:
        build({"class": "SCRUB", "parameters": {"scheduler": {"class": "MultiStepLR", "parameters": {"milestone": [5]}}}},
              "unlearner", "unlearners[3]")
    assert "unlearners[3].parameters.scheduler.parameters.milestone" in str(bad.value)
    with pytest.raises(ConfigError):
        build({"class": "SCRUB", "parameters": {"scheduler": {"class": "Adam"}}}, "unlearner", "u")


def test_scrub_max_step_starts_with_a_zero_gradient():
    # student = teacher at the first max-step: KL and its gradient vanish, only weight decay moves it
    model = trained()
    x = digits().inputs("forget")[:64]
    with torch.no_grad():
        target = model(x)
    from erasure.unlearners.scrub import distill_kl

    loss = -distill_kl(model(x), target, 4.0)
    grads = torch.autograd.grad(loss, list(model.parameters()))
    assert abs(float(loss.detach())) < 1e-6 and max(float(g.abs().max()) for g in grads) < 1e-6


# ========================================================================= SalUn
def reference_mask(model: nn.Module, parts: Partitions, ratio: float, batch_size: int) -> dict:
    """generate_mask.py ``save_gradient_ratio``: |Σ_batches ∇(−CE)|, global rank, keep rank < int(P·ratio)."""
    gradients = {n: 0 for n, _ in model.named_parameters()}
    model.eval()
    for x, y in parts.batches("forget", batch_size):
        loss = -nn.CrossEntropyLoss()(model(x), y)
        model.zero_grad()
        loss.backward()
        with torch.no_grad():
            for n, p in model.named_parameters():
                if p.grad is not None:
                    gradients[n] += p.grad.data
    all_elements = -torch.cat([torch.abs(g).flatten() for g in gradients.values()])
    threshold_index = int(len(all_elements) * ratio)
    ranks = torch.argsort(torch.argsort(all_elements))
    masks, start = {}, 0
    for n, g in gradients.items():
        masks[n] = (ranks[start : start + g.numel()] < threshold_index).reshape(g.shape).float()
        start += g.numel()
    return masks


def reference_rl(model: nn.Module, parts: Partitions, mask: dict, lr: float, epochs: int, batch_size: int,
                 branch: str, generator: torch.Generator) -> nn.Module:
    """unlearn/RL.py with impl.py's SGD (momentum 0.9, weight decay 5e-4): the cifar10 branch (a D_f
    pass with ``randint(0, C)`` labels, then a D_r pass) or the cifar100 branch (D_f relabelled, concat, shuffled)."""
    optimizer = torch.optim.SGD(model.parameters(), lr, momentum=0.9, weight_decay=5e-4)
    data = parts.dataset

    def step(x, y, theta0):
        loss = nn.CrossEntropyLoss()(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        for n, p in model.named_parameters():
            p.grad *= mask[n]
        optimizer.step()
        with torch.no_grad():
            for n, p in model.named_parameters():
                p.data.mul_(mask[n]).add_(theta0[n] * (1 - mask[n]))
                state = optimizer.state.get(p)
                if state is not None and "momentum_buffer" in state:
                    state["momentum_buffer"].mul_(mask[n])

    def shuffled(index):
        return index[torch.randperm(len(index), generator=generator)]

    for _ in range(epochs):
        theta0 = {n: p.detach().clone() for n, p in model.named_parameters()}
        model.train()
        if branch == "cifar10":
            forget = shuffled(parts["forget"])
            for start in range(0, len(forget), batch_size):
                chunk = forget[start : start + batch_size]
                step(data.inputs[chunk], torch.randint(0, 10, (len(chunk),), generator=generator), theta0)
            retain = shuffled(parts["retain"])
            for start in range(0, len(retain), batch_size):
                chunk = retain[start : start + batch_size]
                step(data.inputs[chunk], data.targets[chunk], theta0)
        else:
            labels = data.targets.clone()
            labels[parts["forget"]] = torch.randint(0, 10, (parts.size("forget"),), generator=generator)
            both = shuffled(torch.cat([parts["forget"], parts["retain"]]))
            for start in range(0, len(both), batch_size):
                chunk = both[start : start + batch_size]
                step(data.inputs[chunk], labels[chunk], theta0)
    return model


@pytest.mark.parametrize("pass_order,branch", [("forget_then_retain", "cifar10"), ("mixed", "cifar100")])
def test_salun_equals_the_reference_code(pass_order, branch):
    mask = reference_mask(trained(), digits(), 0.5, 64)
    expected = reference_rl(trained(), digits(), mask, 0.013, 2, 64, branch, torch.Generator().manual_seed(1))
    got = unlearn("SalUn", epochs=2, pass_order=pass_order)
    assert_same_weights(got, expected)
    moved = flat(got) != flat(trained())
    assert 0.3 * len(moved) < int(moved.sum()) <= int(0.5 * len(moved))


def test_salun_labels_are_uniform_over_all_classes():
    from erasure.unlearners.salun import uniform_labels

    labels = uniform_labels(20000, 10, torch.Generator().manual_seed(0), torch.device("cpu"))
    truth = torch.randint(0, 10, (20000,), generator=torch.Generator().manual_seed(1))
    assert abs(float((labels == truth).float().mean()) - 0.1) < 0.01  # about 1/C keep their true label
    assert (torch.bincount(labels, minlength=10).float() / 20000 - 0.1).abs().max() < 0.01


# ========================================================================= UNSIR
def reference_unsir(model: nn.Module, parts: Partitions, generator: torch.Generator, noise_batch: int, noise_steps: int,
                    repeats: int, retain_fraction: float, lr: float, repair_lr: float, batch_size: int) -> nn.Module:
    """Fast-Machine-Unlearning's notebook: Adam on a ``Noise`` batch (train mode), impair on noise ∪ a
    retain subset, repair (``heal_loader``) on that same subset; one forgotten class."""
    forget_class = int(parts.targets("forget")[0])
    noise = nn.Parameter(torch.randn((noise_batch, 1, 8, 8), generator=generator))
    opt = torch.optim.Adam([noise], lr=0.1)
    model.train()
    for _ in range(noise_steps):
        labels = torch.zeros(noise_batch, dtype=torch.long) + forget_class
        loss = -F.cross_entropy(model(noise), labels) + 0.1 * torch.mean(torch.sum(torch.square(noise), [1, 2, 3]))
        opt.zero_grad()
        loss.backward()
        opt.step()
    retain = parts["retain"]
    other = retain[torch.randperm(len(retain), generator=generator)[: int(round(retain_fraction * len(retain)))]]
    x_noisy = torch.cat([noise.detach().repeat(repeats, 1, 1, 1), parts.dataset.inputs[other]])
    y_noisy = torch.cat([torch.full((noise_batch * repeats,), forget_class), parts.dataset.targets[other]])

    def one_epoch(x_all, y_all, optimizer):
        order = torch.randperm(len(y_all), generator=generator)
        for start in range(0, len(order), batch_size):
            i = order[start : start + batch_size]
            optimizer.zero_grad()
            F.cross_entropy(model(x_all[i]), y_all[i]).backward()
            optimizer.step()

    one_epoch(x_noisy, y_noisy, torch.optim.Adam(model.parameters(), lr=lr))
    one_epoch(parts.dataset.inputs[other], parts.dataset.targets[other], torch.optim.Adam(model.parameters(), lr=repair_lr))
    return model


def test_unsir_repairs_on_the_impair_subset_like_the_reference():
    expected = reference_unsir(trained(), digits(), torch.Generator().manual_seed(1), 32, 10, 4, 0.2, 0.02, 0.01, 64)
    got = unlearn("UNSIR", noise_batch_size=32, noise_steps=10, noise_repeats=4, lr=0.02, repair_lr=0.01)
    assert_same_weights(got, expected)
    on_retain = unlearn("UNSIR", noise_batch_size=32, noise_steps=10, noise_repeats=4, lr=0.02, repair_lr=0.01,
                        repair_on="retain")
    assert not torch.allclose(flat(on_retain), flat(got), atol=1e-5)


def test_unsir_noise_is_learned_in_train_mode_by_default():
    from erasure.unlearners.unsir import UNSIR

    model = trained(batch_norm=True)
    running = model[2].running_mean.clone()
    UNSIR(noise_steps=2, noise_batch_size=8).noise(model, context())
    assert not torch.equal(running, model[2].running_mean)  # batch-norm saw the noise batches, as in the reference
    assert not model.training
    frozen = trained(batch_norm=True)
    UNSIR(noise_steps=2, noise_batch_size=8, noise_train_mode=False).noise(frozen, context())
    assert torch.equal(running, frozen[2].running_mean)


def reference_choi_na(model: nn.Module, parts: Partitions, generator: torch.Generator, epochs: int, batch_size: int,
                      lr: float, noise_lr: float, repair_epochs: int) -> nn.Module:
    """ndb796/MachineUnlearning MUFAC UNSIR notebook: Stage 1 over zip(retain, forget) loaders with a
    fresh ``Noise`` per pair (5 Adam steps on −MSE), clamp to [0, 1], CE(noise, y_r) + CE(x_r, y_r);
    Stage 2 CE on the retain loader; plain SGD; the model left in eval mode by ``evaluation``."""
    data = parts.dataset
    model.eval()

    def loader(name):
        index = parts[name][torch.randperm(parts.size(name), generator=generator)]
        return [(data.inputs[index[s : s + batch_size]], data.targets[index[s : s + batch_size]])
                for s in range(0, len(index), batch_size)]

    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    for _ in range(epochs):
        retain_batches = loader("retain")
        forget_batches = loader("forget")
        for (x_retain, y_retain), (x_forget, y_forget) in zip(retain_batches, forget_batches):
            if x_retain.size(0) != batch_size or x_forget.size(0) != batch_size:
                continue
            noise = nn.Parameter(torch.randn(x_forget.shape, generator=generator))
            noise_optimizer = torch.optim.Adam([noise], lr=noise_lr)
            noise_tensor = noise[: y_forget.size(0)]
            for _ in range(5):
                outputs = model(noise_tensor)
                with torch.no_grad():
                    target_logits = model(x_forget)
                loss_noise = -F.mse_loss(outputs, target_logits)
                noise_optimizer.zero_grad()
                loss_noise.backward(retain_graph=True)
                noise_optimizer.step()
            noise_tensor = torch.clamp(noise_tensor, 0, 1).detach()
            joint_loss = F.cross_entropy(model(noise_tensor), y_retain) + F.cross_entropy(model(x_retain), y_retain)
            optimizer.zero_grad()
            joint_loss.backward()
            optimizer.step()
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    for _ in range(repair_epochs):
        for x_retain, y_retain in loader("retain"):
            loss = F.cross_entropy(model(x_retain), y_retain)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model


def test_unsir_choi_na_equals_the_reference_code():
    # 145 forget images: two full forget batches of 64 per epoch, as many impair steps
    expected = reference_choi_na(trained(batch_norm=True), digits(), torch.Generator().manual_seed(1), 2, 64, 0.01, 0.5, 1)
    got = unlearn("UNSIRChoiNa", trained(batch_norm=True), lr=0.01, repair_lr=0.01, noise_lr=0.5)
    assert_same_weights(got, expected)
    assert not torch.allclose(flat(got), flat(trained(batch_norm=True)), atol=1e-4)


@pytest.mark.parametrize("param,value", [("epochs", 1), ("lr", 0.01), ("batch_size", 32), ("noise_steps", 2),
                                         ("noise_lr", 0.5), ("noise_range", None), ("repair_epochs", 0),
                                         ("repair_lr", 0.01), ("optimizer", {"class": "Adam"})])
def test_unsir_choi_na_parameters_are_honoured(param, value):
    from erasure.core.registry import lookup
    from erasure.unlearners.base import TRAINING_OPTIONS

    assert {"epochs", "lr", "batch_size", "noise_steps", "noise_lr", "noise_range", "repair_epochs", "repair_lr",
            "optimizer"} == set(lookup("unlearner", "UNSIRChoiNa").param_names()) - set(TRAINING_OPTIONS)
    assert not torch.equal(flat(unlearn("UNSIRChoiNa")), flat(unlearn("UNSIRChoiNa", **{param: value})))


# =================================================================== Bad Teaching
def reference_bad_teaching(model: nn.Module, incompetent: nn.Module, parts: Partitions, generator: torch.Generator,
                           epochs: int, lr: float, temperature: float, retain_fraction: float, batch_size: int) -> nn.Module:
    """vikram2000b/bad-teaching-unlearning, unlearn.py (``UnlearnerLoss``, ``unlearning_step``,
    ``blindspot_unlearner``) with the notebook's random retain subset: one shuffled loader over
    D_f (label 1) and the subset (label 0), Adam, ``F.kl_div`` with its default element-wise mean."""
    competent = copy.deepcopy(model).eval()
    incompetent.eval()
    retain = parts["retain"]
    subset = retain[torch.randperm(len(retain), generator=generator)[: int(round(retain_fraction * len(retain)))]]
    index = torch.cat([parts["forget"], subset])
    flags = torch.cat([torch.ones(parts.size("forget")), torch.zeros(len(subset))])
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(index), generator=generator)
        for start in range(0, len(index), batch_size):
            rows = order[start : start + batch_size]
            x, labels = parts.dataset.inputs[index[rows]], flags[rows].unsqueeze(1)
            with torch.no_grad():
                full_teacher, unlearn_teacher = competent(x), incompetent(x)
            output = model(x)
            optimizer.zero_grad()
            teacher = labels * F.softmax(unlearn_teacher / temperature, dim=1) + (1 - labels) * F.softmax(full_teacher / temperature, dim=1)
            loss = F.kl_div(F.log_softmax(output / temperature, dim=1), teacher, reduction="mean")  # the code's default
            loss.backward()
            optimizer.step()
    return model


@pytest.mark.parametrize("temperature", [1.0, 4.0])
def test_bad_teaching_equals_the_reference_code(temperature):
    # originals first: building one draws from (and training the cached one reseeds) torch's global generator
    original, reference_original = trained(), trained()
    torch.manual_seed(7)  # the incompetent teacher is a fresh model of the architecture (ctx.new_model)
    got = unlearn("BadTeaching", original, epochs=2, lr=1e-3, temperature=temperature, batch_size=64)
    torch.manual_seed(7)
    expected = reference_bad_teaching(reference_original, toy(), digits(), torch.Generator().manual_seed(1), epochs=2, lr=1e-3,
                                      temperature=temperature, retain_fraction=0.3, batch_size=64)
    assert_same_weights(got, expected)
    assert not torch.equal(flat(got), flat(trained()))
