"""Removal-enabled training for certified removal (Guo et al., "Certified Data Removal from
Machine Learning Models", ICML 2020; reference code facebookresearch/certified-removal:
test_removal.py, utils.py).

Fixed features (``features`` "penultimate": the config's model trained with the recipe on the
whole training set, then frozen, its ``features`` output; "input": the flattened inputs, the
reference's MNIST setting) are L2-normalised per sample; a one-vs-rest L2-regularised logistic
regression without bias (targets ±1) is fitted on them by L-BFGS from zero with the loss
perturbation b·w / n, b ~ N(0, std²) per weight (the reference's ``ovr_lr_optimize``):
mean over samples of Σ_k −log σ(y_k x·w_k) + lam·‖w‖²/2 + (b·w)/n.

With "penultimate" the extractor saw every training sample, so a certificate covers the head
only (the reference trains its extractor on public or differentially private data).
"""
from __future__ import annotations

import math
from typing import Any, Literal

import torch
from torch import Tensor, nn

from erasure.core.params import PositiveFloat, PositiveInt
from erasure.core.seeding import derive_seed
from erasure.data.partitions import Partitions
from erasure.models.schemes.base import ModelMaker, TrainingScheme
from erasure.models.training import evaluating, train_model


class LinearHeadModel(nn.Module):
    """``normalise(features(x)) @ weight``: a frozen extractor (or none) and a linear head with its
    loss perturbation ``b`` and the removal account (``bound``: the accumulated gradient residual
    norm bound; ``removed``: samples removed so far)."""

    def __init__(self, extractor: nn.Module | None, width: int, num_classes: int, device: torch.device):
        super().__init__()
        self.extractor = extractor
        if extractor is not None:
            extractor.requires_grad_(False)
        self.weight = nn.Parameter(torch.zeros(width, num_classes, device=device))
        self.register_buffer("b", torch.zeros(width, num_classes, device=device))
        self.register_buffer("bound", torch.zeros((), device=device, dtype=torch.float64))
        self.register_buffer("removed", torch.zeros((), device=device, dtype=torch.long))

    def features(self, x: Any) -> Tensor:
        """The normalised fixed features of a batch (no gradients flow into the extractor)."""
        if self.extractor is None:
            f = x.flatten(1).float()
        else:
            with evaluating(self.extractor):
                f = self.extractor.features(x).flatten(1).float()
        return f / f.norm(dim=1, keepdim=True).clamp_min(1e-12)

    def forward(self, x: Any) -> Tensor:
        return self.features(x) @ self.weight


def feature_matrix(model: LinearHeadModel, partitions: Partitions, index: Tensor, batch_size: int = 1024) -> Tensor:
    """The normalised features of the samples ``index``, in order."""
    with torch.no_grad():
        return torch.cat([model.features(x) for x, _ in partitions.batches(index, batch_size)]) if len(index) else \
            model.weight.new_zeros(0, model.weight.shape[0])


def signs(targets: Tensor, num_classes: int) -> Tensor:
    """±1 one-vs-rest targets (the reference's ``onehot``)."""
    return nn.functional.one_hot(targets, num_classes).float() * 2 - 1


def ovr_loss(w: Tensor, X: Tensor, Y: Tensor, lam: float, b: Tensor | None = None) -> Tensor:
    """The perturbed objective: mean Σ_k −log σ(y_k x·w_k) + lam‖w‖²/2 (+ (b·w)/n)."""
    loss = -nn.functional.logsigmoid((X @ w) * Y).mean(0).sum() + lam * w.pow(2).sum() / 2
    return loss if b is None else loss + (b * w).sum() / X.shape[0]


def fit_head(X: Tensor, Y: Tensor, lam: float, b: Tensor, steps: int) -> Tensor:
    """L-BFGS from zero on :func:`ovr_loss` (the reference's ``ovr_lr_optimize``)."""
    w = torch.zeros(X.shape[1], Y.shape[1], device=X.device, requires_grad=True)
    optimizer = torch.optim.LBFGS([w], tolerance_grad=1e-10, tolerance_change=1e-10)

    def closure() -> Tensor:
        optimizer.zero_grad()
        loss = ovr_loss(w, X, Y, lam, b)
        loss.backward()
        return loss

    with torch.enable_grad():
        for _ in range(steps):
            optimizer.step(closure)
    return w.detach()


def hessian(w: Tensor, X: Tensor, y: Tensor, lam: float) -> Tensor:
    """Hessian of the summed loss of one binary model on (X, y): Xᵀ diag(σ(1−σ)) X + lam·n·I
    (the reference's ``lr_hessian_inv`` before the inverse)."""
    z = torch.sigmoid((X @ w) * y)
    return X.T @ ((z * (1 - z)).unsqueeze(1) * X) + lam * X.shape[0] * torch.eye(X.shape[1], device=X.device, dtype=X.dtype)


def gradient(w: Tensor, X: Tensor, y: Tensor, lam: float) -> Tensor:
    """Gradient of the summed loss of one binary model on (X, y) (the reference's ``lr_grad``)."""
    z = torch.sigmoid((X @ w) * y)
    return X.T @ ((z - 1) * y) + lam * X.shape[0] * w


def newton_removal(w: Tensor, X_removed: Tensor, y_removed: Tensor, X_rest: Tensor, y_rest: Tensor,
                   lam: float) -> tuple[Tensor, float]:
    """One Newton step removing (X_removed, y_removed) from a binary model fitted on them and
    (X_rest, y_rest): Δ = H_rest⁻¹ Σ ∇ℓ(w; removed); returns (w + Δ, the data-dependent bound
    ‖Δ‖·‖X_rest Δ‖·‖X_rest‖₂ / 4 on the remaining gradient's norm, Guo et al.'s Corollary 1 as
    test_removal.py computes it, with the exact spectral norm instead of its power iteration)."""
    delta = torch.linalg.solve(hessian(w, X_rest, y_rest, lam), gradient(w, X_removed, y_removed, lam))
    spectral = torch.linalg.matrix_norm(X_rest, ord=2) if len(X_rest) else X_rest.new_zeros(())
    bound = float(delta.norm() * (X_rest @ delta).norm() * spectral / 4)
    return w + delta, bound


def epsilon_of(bound: float, std: float, delta: float) -> float:
    """The ε of (ε, δ)-certified removal for an accumulated gradient residual bound with loss
    perturbation N(0, std²): Guo et al.'s Theorem 3, std = c·ε'/ε with c = sqrt(2·ln(1.5/δ))."""
    return math.sqrt(2 * math.log(1.5 / delta)) * bound / std


class CertifiedTraining(TrainingScheme):
    """A removal-enabled linear head on fixed features (see the module docstring). Reference
    defaults: ``lam`` 1e-6, ``std`` 10, 100 L-BFGS steps."""

    def __init__(self, lam: PositiveFloat = 1e-6, std: PositiveFloat = 10.0,
                 features: Literal["penultimate", "input"] = "penultimate", steps: PositiveInt = 100):
        self.lam = lam
        self.std = std
        self.features = features
        self.steps = steps

    def prepare(self, make_model: ModelMaker, partitions: Partitions, seed: int) -> LinearHeadModel:
        extractor = make_model() if self.features == "penultimate" else None
        dataset = partitions.dataset
        device = dataset.targets.device
        if extractor is None:
            width = math.prod(dataset.input_shape)
        else:
            if not callable(getattr(extractor, "features", None)):
                raise TypeError(f"{type(extractor).__name__} has no features(); use CertifiedTraining features 'input'")
            with evaluating(extractor):
                width = extractor.features(gather_one(partitions)).flatten(1).shape[1]
        return LinearHeadModel(extractor, width, dataset.num_classes, device)

    def fit(self, model: nn.Module, partitions: Partitions, index: Tensor, recipe: Any,
            generator: torch.Generator, candidates: Tensor | None = None) -> LinearHeadModel:
        seed = int(torch.randint(2**31 - 1, (1,), generator=generator))
        if model.extractor is not None:  # fixed: trained on the whole training set, for original and gold alike
            model.extractor.requires_grad_(True)
            train_model(model.extractor, partitions, partitions["train"], recipe,
                        torch.Generator().manual_seed(derive_seed(seed, "extractor")))
            model.extractor.requires_grad_(False)
        noise = torch.Generator().manual_seed(derive_seed(seed, "perturbation"))
        with torch.no_grad():
            model.b.copy_(self.std * torch.randn(model.b.shape, generator=noise).to(model.b.device))
        X = feature_matrix(model, partitions, index)
        Y = signs(partitions.dataset.targets[index], model.weight.shape[1])
        with torch.no_grad():
            model.weight.copy_(fit_head(X, Y, self.lam, model.b, self.steps))
        return model


def gather_one(partitions: Partitions) -> Any:
    """One training sample's inputs (to measure the feature width)."""
    return next(partitions.batches(partitions["train"][:1], 1))[0]
