"""GoldDistance, ZRF and RelearnTime: reference computations and parameters."""
import numpy as np
import pytest
import torch
from scipy import stats
from scipy.spatial.distance import jensenshannon

from erasure.evaluators.gold_distance import activation_distance, js_divergence, kl_divergence, parameter_distance


def _logits(seed, n=40, c=6):
    return torch.randn(n, c, generator=torch.Generator().manual_seed(seed)) * 3


def test_kl_and_js_match_scipy():
    a, b = _logits(0), _logits(1)
    pa, pb = torch.softmax(a, 1).numpy(), torch.softmax(b, 1).numpy()
    np.testing.assert_allclose(kl_divergence(a, b).numpy(), stats.entropy(pa, pb, axis=1), rtol=1e-4)
    np.testing.assert_allclose(js_divergence(a, b).numpy(), jensenshannon(pa, pb, axis=1) ** 2, rtol=1e-4, atol=1e-7)
    assert float(js_divergence(a, a).abs().max()) < 1e-6 and float(kl_divergence(a, a).abs().max()) < 1e-6


def test_js_is_finite_for_one_hot_outputs():
    a = torch.tensor([[100.0, -100.0], [-100.0, 100.0]])
    b = torch.tensor([[-100.0, 100.0], [-100.0, 100.0]])
    js = js_divergence(a, b)
    assert torch.isfinite(js).all()
    assert js[0].item() == pytest.approx(np.log(2), rel=1e-4) and js[1].item() == pytest.approx(0, abs=1e-6)


def test_activation_and_parameter_distance():
    a, b = _logits(2), _logits(3)
    expected = np.linalg.norm(torch.softmax(a, 1).numpy() - torch.softmax(b, 1).numpy(), axis=1)
    np.testing.assert_allclose(activation_distance(a, b).numpy(), expected, rtol=1e-5)
    m1, m2 = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    flat = lambda m: torch.cat([p.detach().flatten() for p in m.parameters()])
    assert parameter_distance(m1, m2) == pytest.approx(float((flat(m1) - flat(m2)).norm()), rel=1e-6)
    assert np.isnan(parameter_distance(m1, torch.nn.Linear(4, 2)))
