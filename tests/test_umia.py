"""The loss attack against independent expectations."""
import numpy as np

from erasure.evaluators.umia import loss_attack_accuracy


def test_separable_losses_are_found():
    rng = np.random.default_rng(0)
    members, nonmembers = rng.normal(0.1, 0.05, 300), rng.normal(2.0, 0.3, 500)
    assert loss_attack_accuracy(members, nonmembers) > 0.95


def test_identical_distributions_give_chance():
    rng = np.random.default_rng(1)
    accuracy = loss_attack_accuracy(rng.exponential(1.0, 2000), rng.exponential(1.0, 2000))
    assert abs(accuracy - 0.5) < 0.05


def test_tiny_groups_still_work_and_empty_is_nan():
    assert 0.0 <= loss_attack_accuracy(np.array([0.1, 0.2, 0.3]), np.array([1.0, 2.0, 3.0, 4.0])) <= 1.0
    assert np.isnan(loss_attack_accuracy(np.array([0.1]), np.array([1.0, 2.0])))
