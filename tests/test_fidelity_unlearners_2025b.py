"""Reference fidelity of NPO, SimNPO, DELETE, AdaptiveSSD, RUM, MaskedSmallGradients and
ConvolutionTranspose (docs/fidelity.md).

Each test re-implements the core of the authors' code in its own shape (licong-lin/negative-
preference-optimization and OPTML-Group/Unlearn-Simple ``compute_loss``, shaaaaron/DELETE
method/delete.py, if-loops/adaptive-selective-synaptic-dampening error_unlearning.ipynb,
kairanzhao/RUM main_forget.py and memorization_proxy/learning_events.py, xcadet/deepunlearn
munl/unlearning/kgltop2.py and kgltop5.py) on a toy model of the digits, replaying the same
seeded batches, and compares the weights with ours.
"""
from __future__ import annotations

import copy
import functools

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F
from torch.optim.lr_scheduler import _LRScheduler
from torch.utils.data import DataLoader, TensorDataset

from erasure.core.errors import ConfigError
from erasure.core.factory import build
from erasure.core.registry import load_builtins
from erasure.data.forget import ClassForget
from erasure.data.partitions import Partitions, Split, make_partitions
from erasure.data.sources.sklearn import SklearnDigits
from erasure.models.training import TrainingRecipe, train_model
from erasure.unlearners.adaptive_ssd import adaptive_percentile
from erasure.unlearners.base import UnlearningContext
from erasure.unlearners.rum import final_proxy_scores

load_builtins()
RECIPE = TrainingRecipe(epochs=5, batch_size=64)


@functools.lru_cache(maxsize=None)
def digits() -> Partitions:
    """Digits, the class 3 forgotten (145 of 1,437 training images)."""
    return make_partitions(SklearnDigits().load(), Split(), ClassForget([3]), seed=0)


def toy(kind: str = "mlp") -> nn.Module:
    if kind == "conv":  # two square 3x3 convolutions, for the convolution-based solutions
        return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3), nn.ReLU(), nn.Flatten(),
                             nn.Linear(4 * 6 * 6, 10))
    layers = [nn.Flatten(), nn.Linear(64, 16)] + ([nn.BatchNorm1d(16)] if kind == "bn" else []) + [nn.ReLU(), nn.Linear(16, 10)]
    return nn.Sequential(*layers)


@functools.lru_cache(maxsize=None)
def _trained(kind: str) -> dict:
    torch.manual_seed(0)
    model = toy(kind)
    train_model(model, digits(), "train", RECIPE, torch.Generator().manual_seed(0))
    return copy.deepcopy(model.state_dict())


def trained(kind: str = "mlp") -> nn.Module:
    model = toy(kind)
    model.load_state_dict(_trained(kind))
    return model.eval()


def context(parts: Partitions | None = None, seed: int = 1, kind: str = "mlp") -> UnlearningContext:
    return UnlearningContext(parts or digits(), torch.device("cpu"), 10, RECIPE, seed, torch.Generator().manual_seed(seed),
                             np.random.default_rng(seed), lambda: toy(kind), lambda: None)


def unlearn(cls: str, model: nn.Module | None = None, seed: int = 1, **params) -> nn.Module:
    unlearner = build({"class": cls, "parameters": params}, "unlearner", "test")
    torch.manual_seed(seed)
    return unlearner.unlearn(model if model is not None else trained(), context(seed=seed))


def assert_same_weights(a: nn.Module, b: nn.Module, rtol: float = 1e-5, atol: float = 1e-6) -> None:
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.allclose(x.float(), y.float(), rtol=rtol, atol=atol), name


def flat(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def data(index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return digits().dataset.inputs[index], digits().dataset.targets[index]


def forget_batches(g: torch.Generator, batch_size: int):
    """The context's seeded shuffle of D_f (one epoch)."""
    forget = digits()["forget"][torch.randperm(digits().size("forget"), generator=g)]
    return [data(forget[s : s + batch_size]) for s in range(0, len(forget), batch_size)]


# ============================================================================ NPO / SimNPO
def get_batch_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The TOFU code's summed token NLL per sequence, a sequence being one class label here."""
    return nn.CrossEntropyLoss(reduction="none")(logits, labels)


def reference_npo(model: nn.Module, loss_type: str, beta: float, npo_coeff: float, retain_coeff: float, gamma: float,
                  epochs: int, lr: float, batch_size: int, g: torch.Generator) -> nn.Module:
    """``CustomTrainerForgetting.compute_loss`` for npo / npo_grad_diff / npo_KL (NPO repository) and
    simnpo_grad_diff (Unlearn-Simple), each forget item paired with a random retain item."""
    oracle = copy.deepcopy(model).eval()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    retain = digits()["retain"]
    model.train()
    for _ in range(epochs):
        for x, y in forget_batches(g, batch_size):
            if loss_type != "npo":  # the retain item of each pair
                xr, yr = data(retain[torch.randint(len(retain), (len(y),), generator=g)])
            outputs = model(x)
            if loss_type.startswith("simnpo"):
                forget_loss = get_batch_loss(outputs, y) / 1 - gamma  # loss_mask.sum(-1) = one label
                forget_loss = -F.logsigmoid(beta * forget_loss).mean() * 2 / beta
            else:
                with torch.no_grad():
                    forget_loss_oracle = get_batch_loss(oracle(x), y)
                neg_log_ratios = get_batch_loss(outputs, y) - forget_loss_oracle
                forget_loss = -F.logsigmoid(beta * neg_log_ratios).mean() * 2 / beta
            if loss_type.endswith("grad_diff"):
                loss = npo_coeff * forget_loss + retain_coeff * nn.CrossEntropyLoss()(model(xr), yr)
            elif loss_type.endswith("KL"):
                with torch.no_grad():
                    retain_probs = F.log_softmax(oracle(xr), dim=-1)
                current_probs = F.log_softmax(model(xr), dim=-1)
                loss = npo_coeff * forget_loss + retain_coeff * F.kl_div(current_probs, retain_probs, reduction="batchmean",
                                                                         log_target=True)
            else:
                loss = forget_loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model


@pytest.mark.parametrize("retain_loss,loss_type", [("grad_diff", "npo_grad_diff"), ("kl", "npo_KL"), ("none", "npo")])
def test_npo_equals_the_reference_loss_and_loop(retain_loss, loss_type):
    params = {"beta": 0.5, "forget_weight": 0.7, "retain_weight": 1.3, "epochs": 2, "lr": 1e-3, "batch_size": 32}
    expected = reference_npo(trained("bn"), loss_type, 0.5, 0.7 if retain_loss != "none" else 1.0, 1.3, 0.0, 2, 1e-3, 32,
                             torch.Generator().manual_seed(1))
    if retain_loss == "none":
        params["forget_weight"] = 1.0
    got = unlearn("NPO", trained("bn"), retain_loss=retain_loss, **params)
    assert_same_weights(got, expected)  # batch-norm statistics included: train mode as the reference
    assert not torch.equal(flat(got), flat(trained("bn")))


def test_simnpo_equals_the_reference_loss_and_loop():
    expected = reference_npo(trained(), "simnpo_grad_diff", 2.5, 0.1375, 1.0, 0.5, 2, 1e-3, 32, torch.Generator().manual_seed(1))
    got = unlearn("SimNPO", gamma=0.5, epochs=2, lr=1e-3, batch_size=32)
    assert_same_weights(got, expected)


def test_npo_gradient_is_gradient_ascent_weighted_by_how_far_the_model_already_is():
    # d NPO = 2·σ(−β·(CE − CE_ref))·d(−CE): equal to ascent at the reference, vanishing far from it
    from erasure.unlearners.npo import npo_loss
    y, reference = torch.arange(4), torch.zeros(4, 10)
    reference[torch.arange(4), y] = 5.0
    for true_logit in (5.0, -10.0):
        logits = torch.zeros(4, 10)
        logits[torch.arange(4), y] = true_logit
        ratio = F.cross_entropy(logits, y) - F.cross_entropy(reference, y)  # equal for the four samples
        weight = 2 * torch.sigmoid(-ratio)
        assert weight == pytest.approx(1.0) if true_logit == 5.0 else weight < 1e-4
        npo, ascent = logits.clone().requires_grad_(), logits.clone().requires_grad_()
        npo_loss(npo, reference, y, beta=1.0).backward()
        (-F.cross_entropy(ascent, y)).backward()
        assert torch.allclose(npo.grad, ascent.grad * weight, rtol=0.05, atol=1e-9)


# ============================================================================ DELETE
def reference_delete(model: nn.Module, epochs: int, lr: float, batch_size: int, g: torch.Generator) -> nn.Module:
    """shaaaaron/DELETE method/delete.py ``delete`` (soft_label "inf", disable_bn False)."""
    test_model = copy.deepcopy(model)
    criterion = nn.KLDivLoss(reduction="batchmean")
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    for _ in range(epochs):
        for x, y in forget_batches(g, batch_size):
            model.train()
            model.zero_grad()
            optimizer.zero_grad()
            test_model.eval()
            with torch.no_grad():
                pred_label = test_model(x)
            pred_label[torch.arange(x.shape[0]), y] = -1e10
            ori_logits = F.log_softmax(model(x), dim=1)
            loss = criterion(ori_logits, F.softmax(pred_label, dim=1))
            loss.backward()
            optimizer.step()
    return model


def test_delete_equals_the_reference_loop_and_reads_no_retain_data():
    expected = reference_delete(trained("bn"), 3, 1e-2, 40, torch.Generator().manual_seed(1))
    got = unlearn("DELETE", trained("bn"), epochs=3, lr=1e-2, batch_size=40)
    assert_same_weights(got, expected)
    # the forget predictions move to the teacher's other classes: forget accuracy drops
    x, y = digits().dataset.inputs[digits()["forget"]], digits().dataset.targets[digits()["forget"]]
    with torch.no_grad():
        assert (got(x).argmax(1) == y).float().mean() < (trained("bn")(x).argmax(1) == y).float().mean()


def test_delete_unlearns_at_the_recipe_batch_size_like_the_code():
    """The code's one ``--batch_size`` trains the original and unlearns: the default is the recipe's."""
    expected = reference_delete(trained("bn"), 2, 1e-2, RECIPE.batch_size, torch.Generator().manual_seed(1))
    assert_same_weights(unlearn("DELETE", trained("bn"), epochs=2, lr=1e-2), expected)


# ============================================================================ AdaptiveSSD
def reference_calc_importance(model: nn.Module, loader: DataLoader) -> dict:
    """error_unlearning.ipynb ``ParameterPerturber.calc_importance``."""
    importances = {k: torch.zeros_like(p) for k, p in model.named_parameters()}
    for x, y in loader:
        model.zero_grad()
        nn.CrossEntropyLoss()(model(x), y).backward()
        for (_, p), imp in zip(model.named_parameters(), importances.values()):
            if p.grad is not None:
                imp.data += p.grad.data.clone().pow(2)
    for imp in importances.values():
        imp.data /= float(len(loader))
    return importances


def reference_adaptive_ssd(model: nn.Module, retain_loader: DataLoader, forget_loader: DataLoader, lambda_param: float) -> float:
    """error_unlearning.ipynb ``ssd(..., alpha="Adaptive")`` with ``modify_weight`` (dampen limit 0)."""
    original, sample = reference_calc_importance(model, retain_loader), reference_calc_importance(model, forget_loader)
    len_all = len(retain_loader.dataset) + len(forget_loader.dataset)
    percentile_rank = 100 - np.log(1 + (len(forget_loader.dataset) / len_all) * 100)
    with torch.no_grad():
        values = []
        for (n, p), oimp, fimp in zip(model.named_parameters(), original.values(), sample.values()):
            divs_ = fimp.div(oimp)
            divs_ = divs_[~torch.isnan(divs_)]
            divs_ = divs_[~torch.isinf(divs_)]
            values.append(divs_.reshape(-1).cpu().numpy())
        percentile = np.nanpercentile(np.concatenate(values), percentile_rank).item()
        for (n, p), oimp, fimp in zip(model.named_parameters(), original.values(), sample.values()):
            locations = torch.where(fimp > oimp.mul(percentile))
            update = (oimp.mul(lambda_param).div(fimp)).pow(1)[locations]
            min_locs = torch.where(update > 1)
            update[update < 0] = 0
            update[min_locs] = 1
            p[locations] = p[locations].mul(update)
    return percentile


def test_adaptive_ssd_equals_the_reference_notebook():
    parts, expected = digits(), trained()
    loader = lambda index: DataLoader(TensorDataset(*data(index)), batch_size=256, shuffle=False)
    alpha = reference_adaptive_ssd(expected, loader(parts["retain"]), loader(parts["forget"]), 0.8)
    logged = {}
    unlearner = build({"class": "AdaptiveSSD", "parameters": {"dampening": 0.8, "batch_size": 256}}, "unlearner", "t")
    ctx = context()
    ctx.log_fn = lambda step, metrics: logged.update(metrics)
    got = unlearner.unlearn(trained(), ctx)
    assert_same_weights(got, expected)
    assert logged["adaptive_alpha"] == pytest.approx(alpha, rel=1e-6)
    changed = int((flat(got) != flat(trained())).sum())
    share = 100 - adaptive_percentile(parts.size("forget"), parts.size("forget") + parts.size("retain"))
    assert 0 < changed <= 1.05 * share / 100 * flat(got).numel()  # about ln(1 + 100|D_f|/|D|) per cent of the weights


# ============================================================================ RUM
class Recorder:
    """A stand-in step that records the partitions it was given and nudges the model."""

    def __init__(self, log: list):
        self.log = log
        self.uses_gold = False

    def unlearn(self, model, ctx):
        self.log.append((ctx.partitions["forget"].clone(), ctx.partitions["retain"].clone(), ctx.seed))
        with torch.no_grad():
            next(model.parameters()).add_(1.0)
        return model


def test_rum_splits_the_forget_set_by_the_proxy_and_runs_the_steps_in_sequence():
    parts, model = digits(), trained()
    # the code's confidence (learning_events.py): softmax_probs[idx][labels[idx]], ranked ascending
    x, y = data(parts["forget"])
    with torch.no_grad():
        confidence = torch.softmax(model(x), dim=1)[torch.arange(len(y)), y].double().numpy()
    assert np.allclose(final_proxy_scores(model, parts, parts["forget"]), confidence, atol=1e-7)
    ranked = parts["forget"][torch.as_tensor(np.argsort(confidence, kind="stable"))]
    low, mid, high = (torch.as_tensor(part) for part in np.array_split(ranked.numpy(), 3))  # near-equal thirds
    log: list = []
    rum = build({"class": "RUM", "parameters": {"unlearners": [{"class": "Identity"}] * 3}}, "unlearner", "t")
    rum._steps = [Recorder(log) for _ in range(3)]
    out = rum.unlearn(trained(), context())
    assert [torch.equal(f, s) for (f, _, _), s in zip(log, (low, mid, high))] == [True] * 3
    # main_forget.py --sequential: low: all - (h + m + l); mid: all - (h + m); high: all - h
    train = parts["train"]
    for (_, retain, _), excluded in zip(log, (ranked, torch.cat([mid, high]), high)):
        assert torch.equal(retain, train[~torch.isin(train, excluded)])
    assert len({seed for _, _, seed in log}) == 3  # each step reseeded
    assert torch.allclose(flat(out) - flat(trained()), torch.where(torch.arange(len(flat(out))) < 64 * 16, 3.0, 0.0))
    # retain "retain": D_r in every step; "descending": the high-proxy subset first
    log.clear()
    rum = build({"class": "RUM", "parameters": {"unlearners": [{"class": "Identity"}] * 3, "retain": "retain",
                                                 "order": "descending"}}, "unlearner", "t")
    rum._steps = [Recorder(log) for _ in range(3)]
    rum.unlearn(trained(), context())
    assert torch.equal(log[0][0], high) and all(torch.equal(r, parts["retain"]) for _, r, _ in log)


def test_rum_default_steps_are_the_codes_neggrad_plus_run_and_one_spec_is_refused():
    rum = build({"class": "RUM"}, "unlearner", "t")
    assert [(type(s).__name__, s.alpha, s.epochs, s.lr) for s in rum.steps()] == [
        ("AdvancedNegGrad", 0.99, 5, 0.01), ("AdvancedNegGrad", 0.97, 5, 0.01), ("AdvancedNegGrad", 0.97, 10, 0.001)]
    with pytest.raises(ConfigError):
        build({"class": "RUM", "parameters": {"unlearners": [{"class": "Identity"}]}}, "unlearner", "t")


# ============================================================================ challenge solutions
class LinearAnnealingLR(_LRScheduler):
    """deepunlearn munl/unlearning/kgltop2.py's scheduler, as written there."""

    def __init__(self, optimizer, num_annealing_steps, num_total_steps):
        self.num_annealing_steps = num_annealing_steps
        self.num_total_steps = num_total_steps
        super().__init__(optimizer)

    def get_lr(self):
        if self._step_count <= self.num_annealing_steps:
            return [base_lr * self._step_count / self.num_annealing_steps for base_lr in self.base_lrs]
        return [base_lr * (self.num_total_steps - self._step_count) / (self.num_total_steps - self.num_annealing_steps)
                for base_lr in self.base_lrs]


def retain_epochs(model, optimizer, scheduler, epochs, batch_size, g):
    retain = digits()["retain"]
    model.train()
    for _ in range(epochs):
        order = retain[torch.randperm(len(retain), generator=g)]
        for s in range(0, len(order), batch_size):
            x, y = data(order[s : s + batch_size])
            optimizer.zero_grad()
            nn.CrossEntropyLoss()(model(x), y).backward()
            optimizer.step()
        scheduler.step()
    return model.eval()


def reference_msg(model: nn.Module, init_rate: float, epochs: int, lr: float, g: torch.Generator) -> nn.Module:
    """kgltop2 ``KGLTop2.unlearn``: get_grads_for_snip, re_init_model_snip_ver2_little_grad (the
    gradient mask as ``Masker`` applies it), then SGD under ``LinearAnnealingLR``."""
    parts = digits()
    retain, forget = parts["retain"], parts["forget"]
    subset = retain[torch.randperm(len(retain), generator=g)[: len(forget)]]
    model.zero_grad()
    subset = subset[torch.randperm(len(subset), generator=g)]
    for s in range(0, len(subset), 64):
        x, y = data(subset[s : s + 64])
        F.cross_entropy(model(x), y).backward()
    for x, y in forget_batches(g, 64):
        (-F.cross_entropy(model(x), y)).backward()
    masks = {}
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                mask = torch.zeros_like(m.weight).bool()
                topk = torch.topk((-m.weight.grad.abs()).view(-1), k=round(init_rate * mask.nelement()))
                mask.view(-1)[topk.indices] = True
                grad_mask = mask.clone().float()
                grad_mask[grad_mask == 0] += 0.1
                new_weight = torch.empty_like(m.weight)
                nn.init.kaiming_normal_(new_weight, mode="fan_out", nonlinearity="relu", generator=g)
                new_weight[~mask] = m.weight[~mask]
                m.weight.copy_(new_weight)
                masks[m.weight] = grad_mask
    model.zero_grad()
    hooks = [w.register_hook(lambda grad, k=k: grad * k) for w, k in masks.items()]
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
    scheduler = LinearAnnealingLR(optimizer, num_annealing_steps=(epochs + 1) // 2, num_total_steps=epochs + 1)
    retain_epochs(model, optimizer, scheduler, epochs, 64, g)
    for h in hooks:
        h.remove()
    return model


def test_masked_small_gradients_equals_the_solution():
    expected = reference_msg(trained("conv"), 0.3, 3, 1e-2, torch.Generator().manual_seed(1))
    got = unlearn("MaskedSmallGradients", trained("conv"), epochs=3, lr=1e-2)
    assert_same_weights(got, expected)


def test_masked_small_gradients_schedule_is_the_solutions_linear_annealing():
    from erasure.unlearners.masked_small_gradients import annealing_factor
    for epochs in (1, 2, 5, 6):
        optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
        scheduler = LinearAnnealingLR(optimizer, (epochs + 1) // 2, epochs + 1)
        seen = []
        for _ in range(epochs):
            seen.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            scheduler.step()
        assert seen == pytest.approx([annealing_factor(e, epochs) for e in range(epochs)])


def test_convolution_transpose_equals_the_solution():
    model, g = trained("conv"), torch.Generator().manual_seed(1)
    for module in model.modules():  # kgltop5 ``rotate_weight``
        if isinstance(module, torch.nn.modules.conv.Conv2d):
            module.weight = torch.nn.Parameter(module.weight.swapaxes(2, 3))
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-2, momentum=0.9, weight_decay=5e-4)
    expected = retain_epochs(model, optimizer, torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=2), 2, 64, g)
    got = unlearn("ConvolutionTranspose", trained("conv"), epochs=2, lr=1e-2)
    assert_same_weights(got, expected)
