"""Reference fidelity of CFk/EUk, NegGrad, AdvancedNegGrad, RandomLabels, FineTuning, FisherForgetting,
MIRegularized and WassersteinBarycenter (docs/fidelity.md).

Each test re-implements the core of the authors' code from its description (shash42/Evaluating-Inexact-
Unlearning, aiim-research/ERASURE, meghdadk/SCRUB, if-loops/selective-synaptic-dampening,
AdityaGolatkar/SelectiveForgetting, xushizhou/Machine_Unlearn_via_Info_Reg) and compares weights or
values with ours on a toy model, replaying the same seeded batches.
"""
from __future__ import annotations

import copy
import functools
import itertools
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from conftest import trained_digits
from erasure.core.factory import build
from erasure.core.registry import load_builtins
from erasure.data.dataset import Dataset
from erasure.data.forget import ClassForget
from erasure.data.partitions import Split, make_partitions
from erasure.models.base import layer_groups
from erasure.models.resnet import ResNet18
from erasure.models.training import TrainingRecipe, train_model
from erasure.models.zoo import CNN, MLP
from erasure.unlearners._common import last_layers
from erasure.unlearners.base import UnlearningContext

load_builtins()
ROOT = Path(__file__).resolve().parent.parent




def context(parts, model_fn, seed: int = 1, batch_size: int = 32, log: list | None = None) -> UnlearningContext:
    torch.manual_seed(seed)
    logged = log if log is not None else []
    return UnlearningContext(parts, torch.device("cpu"), parts.dataset.num_classes, TrainingRecipe(epochs=1, batch_size=batch_size),
                             seed, torch.Generator().manual_seed(seed), np.random.default_rng(seed), model_fn, lambda: None,
                             log_fn=lambda step, metrics: logged.append((step, dict(metrics))))


def run(name: str, model: nn.Module, ctx: UnlearningContext, **params) -> nn.Module:
    return build({"class": name, "parameters": params}, "unlearner", "u").unlearn(copy.deepcopy(model), ctx)


def assert_same_weights(a: nn.Module, b: nn.Module, atol: float = 1e-6) -> None:
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.allclose(x.float(), y.float(), rtol=1e-5, atol=atol), name


@functools.lru_cache(maxsize=None)
def image_partitions(size: int = 16):
    """120 random 3×size×size images of 4 classes; class 1 is forgotten."""
    g = torch.Generator().manual_seed(0)
    data = Dataset(torch.randn(120, 3, size, size, generator=g), torch.arange(120) % 4, 4, name="images")
    return make_partitions(data, Split(0.25), ClassForget([1]), 0)


digits = trained_digits  # (partitions, trained MLP), cached: copy the model before changing it


def tiny_resnet() -> ResNet18:
    """A width-4 ResNet-18 whose batch norms hold non-default weights and statistics, as after training."""
    torch.manual_seed(0)
    model = ResNet18((3, 16, 16), 4, width=4).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 1.5)
    return model


# ------------------------------------------------------------------- 6. CFk / EUk: layers with their norms
def reference_retrain_modules(model: nn.Module, k: int) -> list[str]:
    """shash42 ``resetFinalResnet``: walk Conv2d/BatchNorm2d/Linear modules from the last registered
    backwards, making each trainable, until k convolutions or linear layers have been counted."""
    found = [(n, m) for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.BatchNorm2d, nn.Linear))]
    chosen, done = [], 0
    for name, module in reversed(found):
        chosen.append(name)
        done += isinstance(module, (nn.Conv2d, nn.Linear))
        if done >= k:
            break
    return chosen


def test_resnet18_layers_are_convolutions_with_their_batch_norms():
    model, parts = tiny_resnet(), image_partitions()
    groups = [[n for n, _ in g] for g in layer_groups(model, parts.dataset.inputs[:2])]
    assert len(groups) == 21  # 20 convolutions (with their BNs) and the head
    assert groups[0] == ["conv1", "bn1"] and groups[-1] == ["head"]
    assert groups[-2] == ["layers.7.conv2", "layers.7.bn2"]
    assert groups[-4] == ["layers.6.shortcut.0", "layers.6.shortcut.1"]  # the stride-2 block: conv1, conv2, shortcut
    ctx = context(parts, tiny_resnet)
    assert [n for n, _ in last_layers(model, ctx, 2)] == ["layers.7.conv2", "layers.7.bn2", "head"]
    for k in range(1, 22):  # the reference counts the same layers (registration order = forward order here)
        assert sorted(n for n, _ in last_layers(model, ctx, k)) == sorted(reference_retrain_modules(model, k)), k


def test_mlp_and_cnn_layers_are_their_linear_and_conv_modules():
    parts, mlp = digits()
    x = parts.dataset.inputs[:2]
    assert [[n for n, _ in g] for g in layer_groups(mlp, x)] == [["body.1"], ["body.3"], ["head"]]
    cnn = CNN((1, 8, 8), 10, channels=[4, 8], hidden=16)
    assert [[n for n, _ in g] for g in layer_groups(cnn, x)] == [["body.0"], ["body.3"], ["body.7"], ["head"]]


class PreNorm(nn.Module):
    """A normalisation before any computation layer, a LayerNorm after one, a norm before the head."""

    def __init__(self):
        super().__init__()
        self.head = nn.Linear(8, 3)
        self.inorm = nn.BatchNorm1d(64)
        self.fc = nn.Linear(64, 8)
        self.ln = nn.LayerNorm(8)

    def forward(self, x):
        return self.head(self.ln(torch.relu(self.fc(self.inorm(x.flatten(1))))))


def test_leading_norms_join_the_first_layer_and_later_ones_the_layer_before():
    model = PreNorm()
    groups = [[n for n, _ in g] for g in layer_groups(model, torch.randn(2, 1, 8, 8))]
    assert groups == [["inorm", "fc", "ln"], ["head"]]


def test_cfk_k2_on_resnet18_trains_the_last_conv_with_its_bn_and_the_head_only():
    model, parts = tiny_resnet(), image_partitions()
    out = run("CFk", model, context(parts, tiny_resnet), k=2, epochs=1)
    trained = ("head.", "layers.7.conv2.", "layers.7.bn2.")
    changed = {k for k, v in out.state_dict().items() if not torch.equal(v, model.state_dict()[k])}
    assert {k.rsplit(".", 1)[0] + "." for k in changed} == set(trained)
    assert "layers.7.bn2.running_mean" in changed  # the trained BN runs in train mode; frozen ones keep their statistics


def reference_reinit(model: nn.Module, k: int) -> None:
    """shash42 ``resetFinalResnet(reinit=True)`` with ``_reinit``: Kaiming-normal convolution/linear
    weights and zero biases, last layer first; batch norms are left as they are."""
    modules = dict(model.named_modules())
    with torch.no_grad():
        for name in reference_retrain_modules(model, k):
            m = modules[name]
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight)
                if m.bias is not None:
                    m.bias.fill_(0)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_euk_kaiming_init_equals_the_reference_reinit(k):
    from erasure.unlearners.euk import reinitialise_last_layers

    parts = image_partitions()
    ours, theirs = tiny_resnet(), tiny_resnet()
    ctx = context(parts, tiny_resnet)
    torch.manual_seed(7)
    names = reinitialise_last_layers(ours, ctx, k, "kaiming")
    torch.manual_seed(7)
    reference_reinit(theirs, k)
    assert sorted(names) == sorted(reference_retrain_modules(theirs, k))
    for (name, a), b in zip(ours.state_dict().items(), theirs.state_dict().values()):
        assert torch.equal(a, b), name
    assert not torch.equal(ours.head.weight, tiny_resnet().head.weight)
    assert torch.equal(ours.layers[7].bn2.running_var, tiny_resnet().layers[7].bn2.running_var)  # norms are kept


def test_euk_architecture_init_resets_the_norms_too():
    from erasure.unlearners.euk import reinitialise_last_layers

    model, parts = tiny_resnet(), image_partitions()
    reinitialise_last_layers(model, context(parts, lambda: ResNet18((3, 16, 16), 4, width=4)), 2, "architecture")
    fresh = ResNet18((3, 16, 16), 4, width=4)
    assert torch.equal(model.layers[7].bn2.weight, fresh.layers[7].bn2.weight)
    assert torch.equal(model.layers[7].bn2.running_var, fresh.layers[7].bn2.running_var)


def test_euk_init_changes_the_result_on_digits():
    parts, model = digits()
    ctx_args = (parts, lambda: MLP((1, 8, 8), 10, hidden=[32, 16]))
    kaiming = run("EUk", model, context(*ctx_args), epochs=1)
    own = run("EUk", model, context(*ctx_args), epochs=1, init="architecture")
    assert torch.equal(kaiming.body[1].weight, model.body[1].weight)  # k = 1: only the head moves
    assert not torch.equal(kaiming.head.weight, own.head.weight)


# ------------------------------------------------------- 7. defaults that trace to the reference code
def test_neggrad_defaults_are_erasures_adam_loop():
    """aiim-research/ERASURE NegGrad.py: torch.optim.Adam with its defaults, 5 epochs of −CE on D_f."""
    parts, model = digits()
    ours = run("NegGrad", model, context(parts, None))
    theirs, g = copy.deepcopy(model), torch.Generator().manual_seed(1)
    optimizer = torch.optim.Adam(theirs.parameters())
    theirs.train()
    for _ in range(5):
        for x, y in parts.batches("forget", 32, True, g):
            optimizer.zero_grad()
            (-F.cross_entropy(theirs(x), y)).backward()
            optimizer.step()
    assert_same_weights(ours, theirs)
    assert not torch.equal(ours.head.weight, model.head.weight)


def test_advanced_neggrad_defaults_are_scrubs_neggrad_plus():
    """meghdadk/SCRUB train_negrad (large-scale notebook): plain SGD lr 0.01, α 0.9999, 10 epochs,
    loss α·CE(retain batch) − (1−α)·CE(cycled forget batch), one pass over D_r per epoch."""
    parts, model = digits()
    ours = run("AdvancedNegGrad", model, context(parts, None))
    theirs, g = copy.deepcopy(model), torch.Generator().manual_seed(1)
    optimizer = torch.optim.SGD(theirs.parameters(), lr=0.01)
    theirs.train()
    for _ in range(10):
        forget = list(parts.batches("forget", 32, True, g))
        for (xr, yr), (xf, yf) in zip(parts.batches("retain", 32, True, g), itertools.cycle(forget)):
            loss = 0.9999 * F.cross_entropy(theirs(xr), yr) - (1 - 0.9999) * F.cross_entropy(theirs(xf), yf)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    assert_same_weights(ours, theirs)


def test_random_labels_defaults_are_ssds_amnesiac_baseline():
    """if-loops/selective-synaptic-dampening ``amnesiac``: each forget sample relabelled once with a
    random other class, mixed with D_r, 3 shuffled epochs of Adam at lr 1e-4."""
    parts, model = digits("random")
    ours = run("RandomLabels", model, context(parts, None))
    theirs, g = copy.deepcopy(model), torch.Generator().manual_seed(1)
    forget, retain = parts["forget"], parts["retain"]
    labels = parts.dataset.targets.clone()
    labels[forget] = (labels[forget] + torch.randint(1, 10, forget.shape, generator=g)) % 10
    index = torch.cat([forget, retain])
    optimizer = torch.optim.Adam(theirs.parameters(), lr=1e-4)
    theirs.train()
    for _ in range(3):
        order = index[torch.randperm(len(index), generator=g)]
        for start in range(0, len(order), 32):
            chunk = order[start:start + 32]
            optimizer.zero_grad()
            F.cross_entropy(theirs(parts.dataset.take(chunk)), labels[chunk]).backward()
            optimizer.step()
    assert_same_weights(ours, theirs)
    redrawn = run("RandomLabels", model, context(parts, None), redraw=True)
    assert not torch.equal(redrawn.head.weight, ours.head.weight)


def test_random_labels_with_redraw_and_two_passes_is_erasures_successive_random_labels():
    """aiim-research/ERASURE ``SuccessiveRandomLabels``: each epoch a pass over D_f, each sample
    given a random class other than its own, then a pass over D_r; Adam with torch's defaults."""
    parts, model = digits("random")
    ours = run("RandomLabels", model, context(parts, None), redraw=True, pass_order="forget_then_retain",
               epochs=5, lr=1e-3)
    theirs, g = copy.deepcopy(model), torch.Generator().manual_seed(1)
    forget, retain = parts["forget"], parts["retain"]
    x, y = parts.dataset.inputs, parts.dataset.targets
    optimizer = torch.optim.Adam(theirs.parameters())
    theirs.train()
    for _ in range(5):
        wrong = (y[forget] + torch.randint(1, 10, forget.shape, generator=g)) % 10
        relabelled = dict(zip(forget.tolist(), wrong.tolist()))
        for index, label_of in ((forget, lambda i: relabelled[i]), (retain, lambda i: int(y[i]))):
            order = index[torch.randperm(len(index), generator=g)]
            for start in range(0, len(order), 32):
                chunk = order[start:start + 32]
                optimizer.zero_grad()
                F.cross_entropy(theirs(x[chunk]), torch.tensor([label_of(i) for i in chunk.tolist()])).backward()
                optimizer.step()
    assert_same_weights(ours, theirs)
    assert all(relabelled[i] != int(y[i]) for i in forget.tolist())


def test_finetuning_defaults_are_ssds_finetune_baseline():
    """SSD ``finetune`` → ``fit_one_cycle(5, lr=0.02)``: SGD, momentum 0.9, weight decay 5e-4, no schedule."""
    parts, model = digits()
    ours = run("FineTuning", model, context(parts, None))
    theirs, g = copy.deepcopy(model), torch.Generator().manual_seed(1)
    optimizer = torch.optim.SGD(theirs.parameters(), lr=0.02, momentum=0.9, weight_decay=5e-4)
    theirs.train()
    for _ in range(5):
        for x, y in parts.batches("retain", 32, True, g):
            F.cross_entropy(theirs(x), y).backward()
            optimizer.step()
            optimizer.zero_grad()
    assert_same_weights(ours, theirs)


def config_rows(path: Path) -> list[dict]:
    from erasure.core.config import read_config

    return read_config(path).get("unlearners", [])  # a base file that others include may have none


OURS_B = {"FineTuning", "NegGrad", "AdvancedNegGrad", "RandomLabels", "CFk", "EUk", "FisherForgetting", "MIRegularized",
          "WassersteinBarycenter"}


@pytest.mark.parametrize("path", sorted((ROOT / "configs").rglob("*.jsonc")), ids=lambda p: p.name)
def test_rows_labelled_paper_use_the_reference_optimizer(path):
    for row in config_rows(path):
        if row["class"] in OURS_B and "paper" in row.get("label", ""):
            assert "optimizer" not in row.get("parameters", {}), (path.name, row["label"])


def test_class_forgetting_benchmark_names_the_rows_that_do_nothing():
    text = (ROOT / "configs/benchmarks/digits_class_forget.jsonc").read_text()
    rows = {row.get("label", row["class"]) for row in config_rows(ROOT / "configs/benchmarks/digits_class_forget.jsonc")}
    said = re.search(r"equal Identity[^\n]*\n(?:\s*//[^\n]*\n)*", text)
    assert said, "the benchmark must say which rows equal Identity on its saturated original"
    for label in ("FineTuning (paper)", "AdvancedNegGrad (paper)", "AdvancedNegGrad (paper, small-scale)", "CFk"):
        assert label in rows and label in said.group(0), label


# ---------------------------------------------------------------- 8. FisherForgetting (Golatkar)
class ToyCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 3, padding=1)
        self.bn = nn.BatchNorm2d(6)
        self.conv2 = nn.Conv2d(6, 5, 3)
        self.head = nn.Linear(5, 4)

    def forward(self, x):
        out = torch.relu(self.conv2(torch.relu(self.bn(self.conv1(x)))))
        return self.head(out.mean((2, 3)))


@functools.lru_cache(maxsize=None)
def toy_cnn_world():
    parts = image_partitions(6)
    torch.manual_seed(0)
    model = ToyCNN()
    train_model(model, parts, "train", TrainingRecipe(epochs=5, batch_size=16), torch.Generator().manual_seed(0))
    return parts, model.eval()


def golatkar_hessian(model: nn.Module, inputs: torch.Tensor, num_classes: int) -> dict[str, torch.Tensor]:
    """Forgetting.ipynb ``hessian``: batch size 1, one backward pass per class, grad2_acc += p(y|x)·grad²."""
    model.eval()
    acc = {n: torch.zeros_like(p) for n, p in model.named_parameters()}
    for x in inputs:
        output = model(x[None])
        prob = F.softmax(output, dim=-1).detach()
        for y in range(num_classes):
            model.zero_grad()
            F.cross_entropy(output, torch.tensor([y])).backward(retain_graph=True)
            for n, p in model.named_parameters():
                acc[n] += prob[0, y] * p.grad.pow(2)
    return {n: a / len(inputs) for n, a in acc.items()}


def golatkar_mean_var(p, fisher, alpha, num_classes, class_to_forget):
    """Forgetting.ipynb ``get_mean_var``."""
    var = (1.0 / (fisher + 1e-8)).clamp(max=1e3)
    if p.size(0) == num_classes:
        var = var.clamp(max=1e2)
    var = alpha * var
    if p.ndim > 1:
        var = var.mean(dim=1, keepdim=True).expand_as(p).clone()
    mu = p.detach().clone()
    if p.size(0) == num_classes and class_to_forget is not None:
        mu[class_to_forget] = 0
        var[class_to_forget] = 0.0001
    if p.size(0) == num_classes or p.ndim == 1:
        var = var * 10
    return mu, var


@pytest.mark.parametrize("zero_forgotten_classes", [True, False])
def test_fisher_forgetting_equals_golatkars_hessian_and_get_mean_var(zero_forgotten_classes):
    parts, model = toy_cnn_world()
    alpha = 1e-4
    ours = run("FisherForgetting", model, context(parts, None, seed=3), alpha=alpha, gradient_memory_mb=0.01,
               zero_forgotten_classes=zero_forgotten_classes)
    theirs = copy.deepcopy(model)
    fisher = golatkar_hessian(theirs, parts.inputs("retain"), 4)
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for name, p in theirs.named_parameters():
            mu, var = golatkar_mean_var(p, fisher[name], alpha, 4, 1 if zero_forgotten_classes else None)
            p.copy_(mu + var.sqrt() * torch.randn(p.shape, generator=g))
    assert_same_weights(ours, theirs, atol=1e-6)


def test_fisher_conv_variance_is_averaged_over_input_channels_only():
    parts, model = toy_cnn_world()
    unlearner = build({"class": "FisherForgetting"}, "unlearner", "u")
    var = unlearner.variances(model, context(parts, None))["conv2.weight"]  # (out 5, in 6, 3, 3)
    assert torch.equal(var, var[:, :1].expand_as(var))  # one value across input channels
    assert not torch.allclose(var, var[:, :, :1, :1].expand_as(var))  # but one per kernel position


@pytest.mark.parametrize("chunk", [1, 7, 64])
def test_fisher_chunked_equals_unchunked(chunk):
    from erasure.unlearners.fisher import expected_fisher_diagonal

    parts, model = toy_cnn_world()
    whole = expected_fisher_diagonal(model, parts.batches("retain", 16), 4, None)
    chunked = expected_fisher_diagonal(model, parts.batches("retain", 16), 4, chunk)
    for name in whole:
        assert torch.allclose(whole[name], chunked[name], rtol=1e-5, atol=1e-12), name


def test_fisher_chunks_bound_the_gradients_in_memory(monkeypatch):
    import erasure.unlearners.fisher as fisher

    seen = []
    real = fisher.vmap

    def spy(fn, in_dims):
        batched = real(fn, in_dims=in_dims)
        return lambda params, x, c: (seen.append(len(x)), batched(params, x, c))[1]

    monkeypatch.setattr(fisher, "vmap", spy)
    parts, model = toy_cnn_world()
    fisher.expected_fisher_diagonal(model, parts.batches("retain", 16), 4, 10)
    assert max(seen) == 10 and sum(seen) == 4 * parts.size("retain")
    size = sum(p.numel() * 4 for p in model.parameters())
    assert build({"class": "FisherForgetting", "parameters": {"gradient_memory_mb": 10.5 * size / 2**20}},
                 "unlearner", "u").max_batch_gradients(model) == 10


# ------------------------------------------------------------ 9. MIRegularized: the per-batch Î
def reference_mi(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Data_Unlearning_MNIST_Plot.py ``compute_mutual_information_multiclass``."""
    eps = 1e-10
    probs = torch.softmax(logits, dim=1).clamp(eps, 1.0 - eps)
    n = len(probs)
    p_z1 = labels.float().mean()
    p_z0 = 1.0 - p_z1
    joint1 = (probs * labels.unsqueeze(1)).sum(0) / n
    joint0 = (probs * (1 - labels).unsqueeze(1)).sum(0) / n
    p_y = joint1 + joint0
    return (joint1 * torch.log(joint1 / (p_y * p_z1 + eps) + eps)).sum() + (joint0 * torch.log(joint0 / (p_y * p_z0 + eps) + eps)).sum()


def test_mi_regularized_logs_the_per_batch_estimate_the_reference_plots():
    parts, model = digits()
    log: list = []
    ours = run("MIRegularized", model, context(parts, None, log=log), gamma=3.5, epochs=3)
    theirs, g, shuffle = copy.deepcopy(model), torch.Generator().manual_seed(1), torch.Generator().manual_seed(9)
    optimizer = torch.optim.Adam(theirs.parameters(), lr=1e-3)
    history = []
    for _ in range(3):  # train_unlearn_model: CE on the remain batch + γ·Î on the shuffled pool
        theirs.train()
        values = []
        for (xr, yr), (xu, _) in zip(parts.batches("retain", 64, True, g), parts.batches("forget", 16, True, g)):
            optimizer.zero_grad()
            ce = F.cross_entropy(theirs(xr), yr)
            pool = torch.cat([xr, xu, xr])
            z = torch.cat([torch.zeros(len(xr) + len(xu)), torch.ones(len(xr))])
            order = torch.randperm(len(pool), generator=shuffle)
            mi = reference_mi(theirs(pool[order]), z[order])
            (ce + 3.5 * mi).backward()
            optimizer.step()
            values.append(mi.item())
        history.append(sum(values) / len(values))
    assert_same_weights(ours, theirs, atol=1e-5)
    logged = [metrics["mutual_information_batches"] for step, metrics in log if step > 0]
    assert logged == pytest.approx(history, rel=1e-4)
    assert "mutual_information_batches" not in log[0][1]  # nothing is trained before step 1
    assert all(abs(m["mutual_information_batches"] - m["mutual_information"]) > 1e-6 for s, m in log if s > 0)


def test_mi_stop_rule_reads_the_whole_set_estimate():
    parts, model = digits()
    log: list = []
    run("MIRegularized", model, context(parts, None, log=log), gamma=5.0, epochs=4)
    whole = {s: m["mutual_information"] for s, m in log}
    batches = {s: m["mutual_information_batches"] for s, m in log if s > 0}
    threshold = whole[2]
    stops_whole = min(s for s, v in whole.items() if v <= threshold)
    stops_batches = min((s for s, v in batches.items() if v <= threshold), default=None)
    assert stops_batches != stops_whole  # the two estimates disagree here, so the test tells them apart
    stopped: list = []
    run("MIRegularized", model, context(parts, None, log=stopped), gamma=5.0, epochs=4,
        stop="mutual_information", stop_threshold=threshold)
    assert stopped[-1][0] == stops_whole


# ------------------------------------------------- 10. WassersteinBarycenter: exact plans, checked
def test_exact_two_groups_of_3000_coincide_after_the_map():
    from erasure.unlearners.wasserstein import exact_barycenter_transform

    rng = np.random.default_rng(0)
    n = 3000  # POT's default cap of 100,000 iterations stops the network simplex early here
    x = np.concatenate([rng.normal(size=(n, 2)), rng.normal(size=(n, 2)) * 1.5 + 2])
    z = np.repeat([0, 1], n)
    moved = exact_barycenter_transform(x, z, np.arange(2 * n), rng)
    a, b = moved[:n], moved[n:]  # equal sizes: an optimal plan is a permutation and both groups land on the same points
    assert np.allclose(a[np.lexsort(a.T)], b[np.lexsort(b.T)], atol=1e-9)  # so W2²(group 0, group 1) = 0


def test_exact_two_groups_equal_an_assignment_solved_by_scipy():
    from scipy.optimize import linear_sum_assignment

    from erasure.unlearners.wasserstein import exact_barycenter_transform

    rng = np.random.default_rng(1)
    n = 300
    x = np.concatenate([rng.normal(size=(n, 3)), rng.normal(size=(n, 3)) + 1])
    z = np.repeat([0, 1], n)
    moved = exact_barycenter_transform(x, z, np.arange(2 * n), rng)
    cost = ((x[:n, None, :] - x[None, n:, :]) ** 2).sum(-1)
    rows, partner = linear_sum_assignment(cost)
    expected = np.empty_like(x)
    expected[:n] = 0.5 * x[:n] + 0.5 * x[n:][partner]  # McCann interpolation at λ = 1/2
    expected[n:][partner] = 0.5 * x[n:][partner] + 0.5 * x[:n]
    assert np.allclose(moved, expected, atol=1e-9)


@pytest.mark.filterwarnings("ignore:numItermax reached")  # POT warns; we raise
def test_exact_plans_that_stop_early_fail_loudly():
    from erasure.unlearners.wasserstein import exact_barycenter_transform

    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(size=(300, 2)), rng.normal(size=(300, 2)) + 1])
    z = np.repeat([0, 1], 300)
    with pytest.raises(RuntimeError, match="did not reach the optimum within 500 network-simplex iterations.*max_iterations"):
        exact_barycenter_transform(x, z, np.arange(600), rng, max_iterations=500)
    x3 = np.concatenate([x, rng.normal(size=(300, 2)) - 1])
    with pytest.raises(RuntimeError, match="did not reach the optimum"):
        exact_barycenter_transform(x3, np.repeat([0, 1, 2], 300), np.arange(900), rng, max_iterations=500)


def test_free_support_barycenter_is_pots_fixed_point():
    import ot

    from erasure.unlearners.wasserstein import free_support_barycenter

    rng = np.random.default_rng(0)
    samples = [rng.normal(size=(80, 2)) + shift for shift in ([0, 0], [4, 0], [0, 4])]
    weights = np.array([0.5, 0.3, 0.2])
    start = np.concatenate(samples)[rng.choice(240, size=40, replace=False)]
    ours = free_support_barycenter(samples, weights, start)
    theirs = ot.lp.free_support_barycenter(samples, [ot.unif(80)] * 3, start, weights=weights)
    assert np.allclose(ours, theirs, atol=1e-9)
    with pytest.raises(RuntimeError, match="did not settle within 1 fixed-point steps"):
        free_support_barycenter(samples, weights, start, max_steps=1)
