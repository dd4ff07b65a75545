"""Scores (AUS, NoMUS, AIN, Avg-Gap) and RelearnTime: formulas, requirements and parameters."""
import pytest
import torch

from erasure.data.dataset import Dataset
from erasure.data.partitions import Partitions
from erasure.evaluators.relearn import relearn_steps
from erasure.evaluators.scores import Scores, ain, aus, avg_gap, nomus
from erasure.models.training import TrainingRecipe, accuracy


def test_score_formulas_by_hand():
    # AUS = (1 − (0.9 − 0.85)) / (1 + |0.85 − 0.6|) = 0.95 / 1.25
    assert aus(0.9, 0.85, 0.6) == pytest.approx(0.76)
    # NoMUS = 0.5·0.8 + 0.5·(1 − 2·|0.7 − 0.5|) = 0.4 + 0.3
    assert nomus(0.8, 0.7) == pytest.approx(0.7)
    assert nomus(0.8, 0.7, weight=1.0) == pytest.approx(0.8)
    assert ain(30, 60, smoothing=0) == pytest.approx(0.5)
    assert ain(30, 60) == pytest.approx(30.01 / 60.01)  # ERASURE's +0.01 on both relearn times
    assert ain(0, 0) == 1 and ain(5, 0) == pytest.approx(501)  # gold relearns at once
    assert ain(5, 0, smoothing=0) != ain(5, 0, smoothing=0)  # NaN without smoothing
    assert avg_gap({"a": 0.9, "b": 0.5}, {"a": 0.8, "b": 0.7}) == pytest.approx(0.15)


def test_requires_follows_the_chosen_scores():
    assert set(Scores().requires) == {"accuracy_test", "accuracy_forget", "accuracy_retain", "umia_accuracy",
                                      "mia_efficacy", "relearn_steps", "relearn_steps_gold"}
    assert set(Scores(scores=["avg_gap"]).requires) == {"accuracy_forget", "mia_efficacy", "accuracy_retain",
                                                        "accuracy_test"}
    assert Scores(scores=["ain"]).requires == ("relearn_steps", "relearn_steps_gold")
    assert Scores(scores=["nomus"]).requires == ("accuracy_test", "umia_accuracy")


def _toy():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 5, generator=g)
    y = (x[:, 0] > 0).long()
    data = Dataset(x, y, num_classes=2, name="toy")
    idx = torch.arange(200)
    parts = Partitions(data, {"train": idx[:150], "forget": idx[:40], "retain": idx[40:150], "test": idx[150:]})
    return parts


def test_relearn_steps_counts_caps_and_honours_max_steps():
    parts = _toy()
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 2))
    recipe = TrainingRecipe(epochs=1, batch_size=8, optimizer={"class": "SGD", "parameters": {"lr": 0.5}})
    start = accuracy(model, parts, "forget")
    # already there: zero steps
    assert relearn_steps(model, parts, start, recipe, 100, torch.Generator().manual_seed(0)) == (0, False)
    steps, capped = relearn_steps(model, parts, 0.95, recipe, 200, torch.Generator().manual_seed(0))
    assert not capped and 0 < steps < 200
    # an unreachable target hits the cap, whatever the cap is
    assert relearn_steps(model, parts, 1.01, recipe, 7, torch.Generator().manual_seed(0)) == (7, True)
    assert relearn_steps(model, parts, 1.01, recipe, 13, torch.Generator().manual_seed(0)) == (13, True)
    # the input model is left untouched
    assert accuracy(model, parts, "forget") == start
    # the batch size matters
    steps_small = relearn_steps(model, parts, 0.95, recipe, 200, torch.Generator().manual_seed(0), batch_size=2)
    assert steps_small != (steps, capped)
