"""Population attacks: reference computations and behaviour on models built to be extreme."""
import numpy as np
import pytest
import torch
from scipy import stats
from sklearn.linear_model import LogisticRegression
from sklearn.svm import SVC

from erasure.evaluators.mia import entropy_member_rate, softmax_entropy, svc_nonmember_rate, true_class_confidence
from erasure.evaluators.umia import loss_attack_accuracy


def test_softmax_entropy_matches_scipy():
    logits = torch.randn(50, 7, generator=torch.Generator().manual_seed(0)) * 3
    probs = torch.softmax(logits, 1).numpy()
    np.testing.assert_allclose(softmax_entropy(logits), stats.entropy(probs, axis=1), rtol=1e-5)


def test_true_class_confidence_picks_target_column():
    logits = torch.randn(20, 4, generator=torch.Generator().manual_seed(1))
    y = torch.randint(0, 4, (20,), generator=torch.Generator().manual_seed(2))
    expected = torch.softmax(logits, 1).numpy()[np.arange(20), y.numpy()]
    np.testing.assert_allclose(true_class_confidence(logits, y), expected, rtol=1e-6)


def test_entropy_member_rate_equals_direct_sklearn_fit():
    rng = np.random.default_rng(0)
    member, nonmember, target = rng.normal(0, 1, 300), rng.normal(1.5, 1, 100), rng.normal(0.7, 1, 80)
    clf = LogisticRegression(class_weight="balanced").fit(
        np.r_[member, nonmember].reshape(-1, 1), np.r_[np.ones(300), np.zeros(100)])
    assert entropy_member_rate(member, nonmember, target) == pytest.approx(clf.predict(target.reshape(-1, 1)).mean())
    # members have low entropy: targets drawn like members are called members, like non-members are not
    assert entropy_member_rate(member, nonmember, rng.normal(0, 0.3, 50)) > 0.9
    assert entropy_member_rate(member, nonmember, rng.normal(3, 0.3, 50)) < 0.1


def test_svc_nonmember_rate_matches_direct_fit_and_honours_C():
    rng = np.random.default_rng(0)
    member, nonmember, target = rng.uniform(0.8, 1, 400), rng.uniform(0.3, 0.9, 100), rng.uniform(0.3, 1, 100)
    got = svc_nonmember_rate(member, nonmember, target, np.random.default_rng(5), C=3.0)
    sub = member[np.random.default_rng(5).choice(400, 100, replace=False)]
    clf = SVC(C=3.0, gamma="auto").fit(np.r_[sub, nonmember].reshape(-1, 1), np.r_[np.ones(100), np.zeros(100)])
    assert got == pytest.approx(1 - clf.predict(target.reshape(-1, 1)).mean())
    values = {svc_nonmember_rate(member, nonmember, target, np.random.default_rng(5), C=c) for c in (1e-3, 3.0, 1e3)}
    assert len(values) > 1


def _train(x, y, epochs, seed, hidden=64):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(x.shape[1], hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 10))
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    for _ in range(epochs):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return model.eval()


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.data, dtype=torch.float32) / 16
    # label noise makes memorisation visible: the model can only fit it by remembering members
    y = torch.tensor(d.target)
    flip = torch.rand(len(y), generator=torch.Generator().manual_seed(0)) < 0.3
    y = torch.where(flip, (y + 1) % 10, y)
    return x, y


@pytest.fixture(scope="module")
def memoriser(digits):
    x, y = digits
    return _train(x[:150], y[:150], 400, 0)


def test_memorising_model_is_caught_by_population_attacks(digits, memoriser):
    x, y = digits
    members, nonmembers = slice(0, 150), slice(1000, 1150)
    model = memoriser
    with torch.no_grad():
        lm = torch.nn.functional.cross_entropy(model(x[members]), y[members], reduction="none").numpy()
        ln = torch.nn.functional.cross_entropy(model(x[nonmembers]), y[nonmembers], reduction="none").numpy()
    assert loss_attack_accuracy(lm, ln) > 0.75


def test_held_out_data_from_same_distribution_gives_chance(digits, memoriser):
    x, y = digits
    model = memoriser
    with torch.no_grad():
        la = torch.nn.functional.cross_entropy(model(x[1000:1150]), y[1000:1150], reduction="none").numpy()
        lb = torch.nn.functional.cross_entropy(model(x[1200:1350]), y[1200:1350], reduction="none").numpy()
    assert abs(loss_attack_accuracy(la, lb) - 0.5) < 0.12
