"""Multi-label classification: targets (N, L) of 0/1, BCE training, label metrics, label forgetting,
and the refusal of what does not apply (CrossEntropyLoss, class-based methods and metrics)."""
from __future__ import annotations

import copy
import csv
import json

import numpy as np
import pytest
import torch
from torch import nn

from conftest import make_workspace, tiny_config
from erasure.core.errors import ConfigError
from erasure.core.factory import build
from erasure.data.dataset import MULTI_LABEL, SINGLE_LABEL, Dataset
from erasure.data.forget import ClassForget, GroupForget, IndexForget, RandomForget
from erasure.data.partitions import Split, make_partitions
from erasure.evaluators.accuracy import subset_accuracy
from erasure.evaluators.multilabel import label_scores
from erasure.evaluators.sklearn_metric import sklearn_score
from erasure.models.training import task_loss
from erasure.unlearners._common import per_sample_fisher


def label_matrix(n: int = 60, labels: int = 4, seed: int = 0) -> torch.Tensor:
    return (torch.rand(n, labels, generator=torch.Generator().manual_seed(seed)) < 0.4).float()


def multi_label_data(n: int = 60, labels: int = 4) -> Dataset:
    g = torch.Generator().manual_seed(1)
    groups = torch.randint(0, 3, (n,), generator=g)
    return Dataset(torch.randn(n, 5, generator=g), label_matrix(n, labels), labels, {"site": groups}, name="toy")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The tiny multi-label world (label 0 forgotten) with its reference models trained."""
    workspace = make_workspace(tiny_config(tmp_path_factory.mktemp("ml"), task=MULTI_LABEL))
    state = workspace.prepare_seeds()[0]
    workspace.train_references(state)
    return workspace, state


# ----------------------------------------------------------------------------- data
def test_a_label_matrix_makes_multi_label_data_stored_as_float():
    data = Dataset(torch.randn(3, 2), torch.tensor([[1, 0, 1], [0, 0, 0], [1, 1, 1]]), 3, name="x")
    assert data.task == MULTI_LABEL and data.multi_label and data.targets.dtype == torch.float32
    assert Dataset(torch.randn(3, 2), torch.tensor([0, 2, 1]), 3).task == SINGLE_LABEL


@pytest.mark.parametrize("targets, num_classes, message", [
    (torch.tensor([[1.0, 2.0], [0.0, 1.0]]), 2, "only 0 and 1"),
    (torch.tensor([[1.0, 0.0], [0.0, 1.0]]), 3, "2 columns but num_classes is 3"),
])
def test_label_matrices_are_checked(targets, num_classes, message):
    with pytest.raises(ValueError, match=message):
        Dataset(torch.randn(2, 2), targets, num_classes, name="x")


def test_sklearn_multilabel_source_is_sklearns_generator():
    from sklearn.datasets import make_multilabel_classification

    data = build({"class": "SklearnMultiLabel", "parameters": {"n_samples": 50, "n_features": 6, "num_labels": 3,
                                                               "seed": 4}}, "data_source", "s").load()
    x, y = make_multilabel_classification(n_samples=50, n_features=6, n_classes=3, n_labels=2,
                                          allow_unlabeled=False, random_state=4)
    assert data.task == MULTI_LABEL and data.num_classes == 3 and data.input_shape == (6,)
    assert np.array_equal(data.inputs.numpy(), x) and np.array_equal(data.targets.numpy(), y)
    source = build({"class": "SklearnMultiLabel", "parameters": {"n_samples": 400, "attribute": "z"}}, "data_source", "s")
    with_z = source.load()
    agreement = float((with_z.attributes["z"] == with_z.targets[:, 0].long()).float().mean())
    assert 0.7 < agreement < 0.9  # z follows label 0 for 80% of the samples
    prepared = source.prepare(with_z, torch.arange(300))
    assert prepared.inputs[:300].mean(0).abs().max() < 1e-5 and prepared.task == MULTI_LABEL


def test_a_multi_label_split_is_uniform_where_labels_cannot_stratify():
    data = multi_label_data(40, 6)  # many label sets occur once: a stratified split would fail
    parts = make_partitions(data, Split(test_fraction=0.25), RandomForget(count=3), seed=0)
    assert parts.size("test") == 10 and parts.size("train") == 30


# --------------------------------------------------------------------------- forget
def test_class_forget_forgets_every_sample_carrying_a_label():
    data = multi_label_data()
    parts = make_partitions(data, Split(stratified=False), ClassForget([1, 3]), seed=0)
    carries = data.targets[:, [1, 3]].any(1)
    train, test = parts["train"], parts["test"]
    assert torch.equal(parts["forget"], train[carries[train]])
    assert torch.equal(parts["retain"], train[~carries[train]])
    assert torch.equal(parts["forget_test"], test[carries[test]])
    assert torch.equal(parts["retain_test"], test[~carries[test]])


def test_class_forget_fraction_takes_a_share_of_each_label_and_counts_a_sample_once():
    data = multi_label_data(200)
    train = torch.arange(200)
    chosen = ClassForget([0, 1], fraction=0.5).select(data, train, np.random.default_rng(0))
    assert torch.equal(chosen, torch.unique(chosen))
    for label in (0, 1):
        members = int(data.targets[:, label].sum())
        assert int(data.targets[chosen, label].sum()) >= round(0.5 * members)


def test_class_forget_refuses_a_label_that_never_occurs():
    data = multi_label_data()
    data.targets[:, 2] = 0
    with pytest.raises(ConfigError, match=r"label 2 is not in the training data of toy \(labels present: \[0, 1, 3\]\)"):
        ClassForget([2]).select(data, torch.arange(60), np.random.default_rng(0))


def test_random_index_and_group_forgetting_work_and_stratified_random_is_refused():
    data = multi_label_data()
    train = torch.arange(40)
    rng = np.random.default_rng(0)
    assert len(RandomForget(count=5).select(data, train, rng)) == 5
    assert torch.equal(IndexForget(indices=[3, 7]).select(data, train, rng), torch.tensor([3, 7]))
    group = GroupForget("site", [2]).select(data, train, rng)
    assert torch.equal(group, train[data.attributes["site"][train] == 2])
    with pytest.raises(ConfigError, match="multi-label; set \"stratified\": false") as err:
        RandomForget(count=5, stratified=True).select(data, train, rng)
    assert err.value.path == "stratified"


# ----------------------------------------------------------------------------- loss
def test_task_loss_is_cross_entropy_on_classes_and_mean_binary_cross_entropy_on_labels():
    logits = torch.randn(6, 4, generator=torch.Generator().manual_seed(0))
    classes = torch.tensor([0, 3, 1, 2, 2, 0])
    assert torch.equal(task_loss(logits, classes), nn.functional.cross_entropy(logits, classes))
    assert torch.equal(task_loss(logits, classes, "none"), nn.functional.cross_entropy(logits, classes, reduction="none"))
    labels = label_matrix(6)
    p = torch.sigmoid(logits.double())
    by_hand = -(labels * p.log() + (1 - labels) * (1 - p).log()).mean(1)  # per sample, averaged over labels
    assert torch.allclose(task_loss(logits, labels, "none").double(), by_hand, atol=1e-6)
    assert torch.allclose(task_loss(logits, labels), nn.BCEWithLogitsLoss()(logits, labels))


def test_per_sample_importances_use_the_label_loss(world):
    """SSD's diagonal Fisher on multi-label data: the mean over samples of each sample's squared
    gradient of its binary cross-entropy, computed here one sample at a time."""
    workspace, state = world
    parts = state.partitions
    model = copy.deepcopy(state.original).eval()
    index = parts["forget"][:7]
    fisher = per_sample_fisher(model, parts, index, chunk_size=3)
    expected = {n: torch.zeros_like(p) for n, p in model.named_parameters()}
    for i in index.tolist():
        x, y = parts.dataset.inputs[i : i + 1], parts.dataset.targets[i : i + 1]
        model.zero_grad()
        nn.BCEWithLogitsLoss()(model(x), y).backward()
        for n, p in model.named_parameters():
            expected[n] += p.grad.pow(2) / len(index)
    for n in expected:
        assert torch.allclose(fisher[n], expected[n], rtol=1e-4, atol=1e-9), n


@pytest.mark.parametrize("name, parameters, partition, sign", [
    ("NegGrad", {"epochs": 1, "lr": 0.01}, "forget", -1.0),
    ("FineTuning", {"epochs": 1, "lr": 0.05}, "retain", 1.0),
])
def test_neggrad_and_finetuning_take_bce_steps_on_multi_label_data(world, name, parameters, partition, sign):
    """The unlearner's weights equal a hand-written loop of (−)BCEWithLogitsLoss steps on the same batches."""
    workspace, state = world
    unlearner = build({"class": name, "parameters": parameters}, "unlearner", "u")
    ours = unlearner.unlearn(copy.deepcopy(state.original), workspace.make_context(state, name))
    model = copy.deepcopy(state.original)
    ctx = workspace.make_context(state, name)  # the same seed: the same batches
    if name == "NegGrad":
        optimizer = torch.optim.Adam(model.parameters(), lr=parameters["lr"])
    else:
        optimizer = torch.optim.SGD(model.parameters(), lr=parameters["lr"], momentum=0.9, weight_decay=5e-4)
    model.train()
    for x, y in ctx.batches(partition):
        optimizer.zero_grad()
        (sign * nn.BCEWithLogitsLoss()(model(x), y)).backward()
        optimizer.step()
    for (n, a), b in zip(ours.state_dict().items(), model.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), n
    assert not torch.equal(ours.head.weight, state.original.head.weight)


# -------------------------------------------------------------------------- metrics
def test_label_scores_equal_scikit_learn():
    from sklearn.metrics import accuracy_score, f1_score, hamming_loss

    truth = label_matrix(50, 5, seed=3)
    truth[:, 4] = 0  # a label that never occurs ...
    logits = torch.randn(50, 5, generator=torch.Generator().manual_seed(5))
    logits[:, 4] = -1.0  # ... and is never predicted: no F1, left out of the macro mean
    y, p = truth.numpy().astype(int), (logits > 0).numpy().astype(int)
    scores = label_scores(logits, truth)
    assert scores.hamming_accuracy == pytest.approx(1 - hamming_loss(y, p))
    assert scores.f1_micro == pytest.approx(f1_score(y, p, average="micro"))
    assert scores.f1_macro == pytest.approx(f1_score(y, p, average="macro", zero_division=np.nan))
    assert np.allclose(scores.label_f1, f1_score(y, p, average=None, zero_division=np.nan), equal_nan=True)
    assert np.isnan(scores.label_f1[4])
    assert np.allclose(scores.label_accuracy, (y == p).mean(0))
    assert subset_accuracy(logits, truth) == pytest.approx(accuracy_score(y, p))


def test_sklearn_metric_on_multi_label_data_equals_scikit_learn():
    from sklearn.metrics import f1_score, roc_auc_score

    truth, logits = label_matrix(40, 3, seed=1), torch.randn(40, 3, generator=torch.Generator().manual_seed(2))
    y = truth.numpy().astype(int)
    assert sklearn_score("f1_score", truth, logits, parameters={"average": "macro"}) == pytest.approx(
        f1_score(y, (logits > 0).numpy().astype(int), average="macro"))
    assert sklearn_score("roc_auc_score", truth, logits) == pytest.approx(
        roc_auc_score(y, torch.sigmoid(logits.double()).numpy()))


def test_outcome_losses_are_the_per_sample_label_loss(world):
    workspace, state = world
    unlearner = build({"class": "Identity"}, "unlearner", "u")
    ctx = workspace.make_context(state, "Identity")
    outcome = workspace.make_outcome(state, "Identity", unlearner, state.original, ctx, workspace.reference(state, "gold")[1])
    logits, targets = outcome.logits("unlearned", "test"), outcome.targets("test")
    expected = nn.functional.binary_cross_entropy_with_logits(logits, targets, reduction="none").mean(1)
    assert torch.allclose(outcome.losses("unlearned", "test"), expected)


# ------------------------------------------------------------------ whole runs (CLI)
def run_cli(tmp_path, config, capsys) -> tuple[int, str]:
    from erasure.cli import main

    path = tmp_path / "bad.jsonc"
    path.write_text(json.dumps(config))
    code = main([str(path), "--no-cache", "--no-progress"])
    return code, capsys.readouterr().err


@pytest.mark.parametrize("change, path, fragments", [
    (("training", "loss", {"class": "CrossEntropyLoss"}), "training.loss",
     ["CrossEntropyLoss takes one class index per sample", "multi-label (4 labels per sample", "BCEWithLogitsLoss"]),
    (("unlearners", 1, {"class": "RandomLabels"}), "unlearners[1]",
     ["RandomLabels handles single-label targets only", "unlearners for multi-label data:", "NegGrad"]),
    (("evaluators", 1, {"class": "MIAEfficacy"}), "evaluators[1]",
     ["MIAEfficacy handles single-label targets only", "evaluators for multi-label data:", "MultiLabelAccuracy"]),
])
def test_what_does_not_apply_to_multi_label_data_is_refused_before_training(tmp_path, capsys, change, path, fragments):
    config = tiny_config(tmp_path, task=MULTI_LABEL)
    config["unlearners"] = [{"class": "Identity"}, {"class": "NegGrad"}]
    config["evaluators"] = [{"class": "Accuracy"}, {"class": "UMIA"}]
    key, position, value = change
    if key == "training":
        config["training"][position] = value
    else:
        config[key][position] = value
    code, err = run_cli(tmp_path, config, capsys)
    assert code == 2 and "Traceback" not in err and "bad.jsonc" in err and path in err, err
    for fragment in fragments:
        assert fragment in err, err
    assert not (tmp_path / "out" / "results.csv").exists() or "NegGrad" not in (tmp_path / "out" / "results.csv").read_text()


def test_multi_label_metrics_are_refused_on_single_label_data(tmp_path, capsys):
    config = tiny_config(tmp_path, evaluators=[{"class": "MultiLabelAccuracy"}])
    code, err = run_cli(tmp_path, config, capsys)
    assert code == 2 and "evaluators[0]" in err and "MultiLabelAccuracy handles multi-label targets only" in err, err


def test_a_multi_label_run_end_to_end(tmp_path, capsys):
    """Label 0 forgotten: gold, retrained without any sample carrying it, never predicts it, so its
    F1 on forget_test drops to 0 while the original keeps it; retain-side metrics stay high."""
    config = tiny_config(tmp_path, task=MULTI_LABEL)
    config["training"]["epochs"] = 15
    config["unlearners"] = [{"class": "Identity"}, {"class": "GoldModel"}, {"class": "NegGrad", "parameters": {"epochs": 1}}]
    config["evaluators"] = [{"class": "Accuracy"}, {"class": "MultiLabelAccuracy", "parameters": {"per_label": True}},
                            {"class": "UMIA"}, {"class": "SklearnMetric", "parameters": {"metric": "f1_score",
                                                                                         "parameters": {"average": "micro"}}}]
    code, err = run_cli(tmp_path, config, capsys)
    assert code == 0, err
    with open(tmp_path / "out" / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert all(r["status"] in ("ok", "undefined") for r in rows), [r for r in rows if r["status"] == "error"]
    value = {(r["unlearner"], r["metric"]): float(r["value"]) for r in rows if r["status"] == "ok"}
    assert value[("GoldModel", "label_f1_forget_test/0")] == 0.0
    assert value[("Identity", "label_f1_forget_test/0")] > 0.6
    assert value[("GoldModel", "hamming_accuracy_retain_test")] > 0.8
    assert value[("Identity", "f1_score_test")] == pytest.approx(value[("Identity", "f1_micro_test")])
    for unlearner in ("Identity", "GoldModel", "NegGrad"):
        assert 0 <= value[(unlearner, "accuracy_test")] <= value[(unlearner, "hamming_accuracy_test")] <= 1
        assert 0 <= value[(unlearner, "umia_accuracy")] <= 1
