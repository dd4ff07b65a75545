"""SCAR: push forget features towards the nearest other class (Mahalanobis) while distilling the
original on out-of-distribution inputs."""
from __future__ import annotations

from typing import Annotated

import torch
from torch import Tensor, nn

from erasure.core.factory import instantiate
from erasure.core.params import (Fraction, IntRange, LogUniform, NonNegativeFloat, NonNegativeInt, PositiveFloat,
                                 PositiveInt, Spec, Uniform)
from erasure.unlearners._common import forgotten_classes
from erasure.unlearners.base import TrainingUnlearner, UnlearningContext

SourceSpec = Annotated[dict, Spec("data_source")]


def shrunk(cov: Tensor, gamma1: float, gamma2: float) -> Tensor:
    """Σ + γ₁·V₁·I + γ₂·V₂·(1 − I), V₁ the mean variance, V₂ the mean non-zero covariance
    (the reference's ``cov_mat_shrinkage``)."""
    eye = torch.eye(len(cov), dtype=cov.dtype, device=cov.device)
    off = cov * (1 - eye)
    v2 = off.sum() / (off != 0).sum()
    return cov + gamma1 * eye * torch.diagonal(cov).mean() + gamma2 * (1 - eye) * v2


def class_statistics(features: Tensor, labels: Tensor, classes: list[int], delta: float, gamma1: float,
                     gamma2: float) -> tuple[Tensor, Tensor]:
    """Per class: the mean of the Tukey-transformed features f^δ and the pseudo-inverse of their
    covariance, shrunk twice and normalised to a correlation matrix."""
    means, inverses = [], []
    for c in classes:
        samples = features[labels == c].pow(delta)
        cov = shrunk(shrunk(torch.cov(samples.T), gamma1, gamma2), gamma1, gamma2)
        sigma = torch.sqrt(torch.diagonal(cov))
        means.append(samples.mean(0))
        inverses.append(torch.linalg.pinv(cov / (sigma.unsqueeze(1) * sigma.unsqueeze(0))))
    return torch.stack(means), torch.stack(inverses)


def mahalanobis(features: Tensor, means: Tensor, inverses: Tensor, delta: float) -> Tensor:
    """(B, K) squared Mahalanobis distances between the L2-normalised f^δ and each normalised class mean."""
    diff = nn.functional.normalize(features.pow(delta), dim=-1)[:, None, :] - nn.functional.normalize(means, dim=-1)
    return torch.einsum("bkd,kde,bke->bk", diff, inverses, diff)


def scar_distill(student_logits: Tensor, teacher_logits: Tensor) -> Tensor:
    """e^(1e-4)·KL(teacher ‖ student), batch mean: the reference's ``distill`` with its 1e-4 shifts."""
    teacher = torch.log_softmax(teacher_logits + 1e-4, dim=1)
    student = torch.log_softmax(student_logits + 1e-4, dim=1)
    return nn.functional.kl_div(student + 1e-4, teacher + 1e-4, reduction="batchmean", log_target=True)


def forget_accuracy(model: nn.Module, ctx: UnlearningContext, batch_size: int) -> float:
    model.eval()
    with torch.no_grad():
        correct = sum(int((model(x).argmax(1) == y).sum()) for x, y in ctx.partitions.batches("forget", batch_size))
    model.train()
    return correct / ctx.partitions.size("forget")


class SCAR(TrainingUnlearner):
    """Selective-distillation for Class and Architecture-agnostic unleaRning (Bonato, Cotogni &
    Sabetta, "Is Retain Set All You Need in Machine Unlearning? Restoring Performance of Unlearned
    Models with Out-Of-Distribution Images", ECCV 2024; reference code
    jbonato1/SCAR, src/Unlearning_methods.py ``SCAR``). Reads no retained training sample
    beyond the class statistics: it distils on surrogate, out-of-distribution inputs.

    Class statistics of the retained classes come from the original's penultimate features
    (``features``) on D_r: per class the mean and shrunk-covariance inverse of f^δ (Tukey δ).
    Each epoch, for every forget batch (unshuffled) and ``retain_batches`` + 1 surrogate batches
    (reshuffled per forget batch), one Adam step on λ₁·mean d_M(f(x_f), closest other class)
    + λ₂·e^(1e-4)·KL(original(x_s)/T ‖ model(x_s)); the closest class of each forget sample is
    fixed in the first epoch. On class forgetting the surrogate samples the original assigns to
    a forgotten class are dropped and the forgotten classes' teacher logits set to the batch's
    minimum. Training stops once forget accuracy falls below ``target_accuracy`` from the third
    epoch on (checked after every step).

    ``surrogate`` is a data source of out-of-distribution inputs of the data's input shape (its
    labels are ignored), e.g. the reference's ImageNet or COCO subsets; None draws the
    reference's Gaussian-noise surrogate: ``noise_samples`` inputs of N(0, 1) values (the code
    itself refuses to run with no surrogate at all).

    Defaults are the reference's CIFAR-10 class-removal command (command.sh): 10 epochs, Adam at
    lr 1e-3 without weight decay, batch 1024, T 2, λ₁ 1, λ₂ 0.1, δ 0.5, γ₁ = γ₂ = 3, 5 + 1
    surrogate batches per forget batch, target accuracy 0.01. Needs a model with ``features``
    and ``head`` and non-negative features (post-ReLU, as f^δ takes roots).
    """

    #: tuned by the equal-budget protocol (erasure.tuning); the ranges contain the defaults
    search_space = {"epochs": IntRange(1, 10), "lr": LogUniform(1e-5, 1e-2), "lambda_1": LogUniform(0.1, 10.0),
                    "lambda_2": LogUniform(0.01, 10.0), "temperature": Uniform(1.0, 4.0)}

    def __init__(self, epochs: PositiveInt = 10, lr: PositiveFloat = 1e-3, temperature: PositiveFloat = 2.0,
                 lambda_1: NonNegativeFloat = 1.0, lambda_2: NonNegativeFloat = 0.1, delta: PositiveFloat = 0.5,
                 gamma1: NonNegativeFloat = 3.0, gamma2: NonNegativeFloat = 3.0, retain_batches: NonNegativeInt = 5,
                 target_accuracy: Fraction = 0.01, weight_decay: NonNegativeFloat = 0.0, batch_size: PositiveInt = 1024,
                 surrogate: SourceSpec | None = None, noise_samples: PositiveInt = 10000):
        self.epochs = epochs
        self.lr = lr
        self.temperature = temperature
        self.lambda_1 = lambda_1
        self.lambda_2 = lambda_2
        self.delta = delta
        self.gamma1 = gamma1
        self.gamma2 = gamma2
        self.retain_batches = retain_batches
        self.target_accuracy = target_accuracy
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.surrogate = surrogate
        self.noise_samples = noise_samples

    def surrogate_inputs(self, ctx: UnlearningContext) -> Tensor:
        data = ctx.partitions.dataset
        if self.surrogate is None:
            return torch.randn((self.noise_samples, *data.input_shape), generator=ctx.generator).to(ctx.device)
        other = instantiate(self.surrogate, "data_source").load()
        if other.kind != "tensor" or other.input_shape != data.input_shape:
            raise ValueError(f"SCAR's surrogate must hold tensor inputs of shape {data.input_shape}, like the data; "
                             f"{self.surrogate['class']} gives {other.kind} inputs of shape {other.input_shape}")
        return other.inputs.to(ctx.device, data.inputs.dtype)

    def unlearn(self, model: nn.Module, ctx: UnlearningContext) -> nn.Module:
        if not (hasattr(model, "features") and hasattr(model, "head")):
            raise ValueError("SCAR needs a model with features() and head (an erasure Model)")
        parts, bs = ctx.partitions, self.batch_size
        forgotten = forgotten_classes(parts)
        dropped = forgotten.tolist() if forgotten is not None else []
        kept = [c for c in range(ctx.num_classes) if c not in dropped]
        teacher = ctx.frozen_copy(model)
        model.eval()
        with torch.no_grad():
            batches = list(parts.batches("retain", bs))
            features = torch.cat([model.features(x) for x, _ in batches])
            labels = torch.cat([y for _, y in batches])
        means, inverses = class_statistics(features, labels, kept, self.delta, self.gamma1, self.gamma2)
        pool = self.surrogate_inputs(ctx)
        forget_batches = list(parts.batches("forget", bs))
        closest: dict[int, Tensor] = {}
        optimizer = torch.optim.Adam(model.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        model.train()
        for epoch in range(self.epochs):
            stop = False
            for b, (xf, yf) in enumerate(forget_batches):
                order = torch.randperm(len(pool), generator=ctx.generator).to(pool.device)
                for r, chunk in enumerate(order.split(bs)):
                    xs = pool[chunk]
                    if r > self.retain_batches:  # the reference's forward passes before it breaks off
                        with torch.no_grad():
                            model.features(xf), model(xs)
                        break
                    optimizer.zero_grad()
                    dists = mahalanobis(model.features(xf), means, inverses, self.delta)
                    if b not in closest:
                        ranked = torch.argsort(dists, dim=1)
                        closest[b] = torch.where(ranked[:, 0] == yf, ranked[:, 1], ranked[:, 0])
                    loss = self.lambda_1 * dists[torch.arange(len(dists)), closest[b]].mean()
                    out = model(xs)
                    with torch.no_grad():
                        target = teacher(xs)
                    if dropped:
                        keep = ~torch.isin(target.argmax(1), forgotten)
                        target, out = target[keep], out[keep]
                        target[:, dropped] = target.min() if len(target) else 0.0
                    if len(target):
                        loss = loss + self.lambda_2 * scar_distill(out, target / self.temperature)
                    loss.backward()
                    optimizer.step()
                    if epoch > 1 and forget_accuracy(model, ctx, bs) < self.target_accuracy:
                        stop = True
                        break
                if stop:
                    break
            ctx.end_epoch(model)
            if stop or (epoch > 1 and forget_accuracy(model, ctx, bs) < self.target_accuracy):
                break
        return model.eval()
