"""JiT: zero-shot unlearning by Lipschitz smoothing of the model around the forget samples."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from erasure.core.params import LogUniform, PositiveFloat, PositiveInt
from erasure.unlearners.base import TASKS, TrainingUnlearner, UnlearningContext


def perturb(x: Tensor, sigma: float, num_samples: int, generator: torch.Generator | None = None) -> Tensor:
    """``num_samples`` perturbations per sample, ``(num_samples, *x.shape)``: clamp(x + σ·ε, min(x), max(x)).

    The clamp bounds are the batch's minimum and maximum (as in the paper's code).
    """
    noise = torch.randn((num_samples, *x.shape), generator=generator, device="cpu").to(x.device, x.dtype)
    return (x.unsqueeze(0) + sigma * noise).clamp(x.min(), x.max())


def lipschitz_loss(model: nn.Module, x: Tensor, perturbed: Tensor, grad: bool = True, one_pass: bool = True) -> Tensor:
    """(1/N)·Σ_n Σ_i ‖f(x_i) − f(x'_ni)‖₂ / ‖x_i − x'_ni‖₂.

    f(x') takes no gradient; with ``grad`` False nothing does (a measurement). The N·B
    perturbations go through the model in one forward pass, or (``one_pass`` False) in N passes
    of B as in the reference code, which matters in train mode (batch-norm statistics).
    """
    n, b = perturbed.shape[:2]
    with torch.set_grad_enabled(grad):
        out = model(x)
    with torch.no_grad():
        if one_pass:
            out_p = model(perturbed.reshape(n * b, *x.shape[1:])).reshape(n, b, -1)
        else:
            out_p = torch.stack([model(p).reshape(b, -1) for p in perturbed])
    numerator = (out.unsqueeze(0) - out_p).flatten(2).norm(dim=2)
    denominator = (x.unsqueeze(0) - perturbed).flatten(2).norm(dim=2).clamp_min(1e-12)
    return (numerator / denominator).sum(1).mean()


def local_lipschitz_ratio(model: nn.Module, x: Tensor, sigma: float, num_samples: int,
                          generator: torch.Generator | None = None) -> float:
    """Mean over samples and perturbations of ‖f(x) − f(x')‖ / ‖x − x'‖ (the quantity JiT lowers)."""
    perturbed = perturb(x, sigma, num_samples, generator)
    return float(lipschitz_loss(model, x, perturbed, grad=False)) / len(x)


class JiT(TrainingUnlearner):
    """Just in Time unlearning (Foster et al., "An Information Theoretic Approach to Machine
    Unlearning", arXiv 2402.01401): zero-shot, it reads only the forget set.

    One pass over D_f in batches of ``batch_size``; for each batch it draws
    ``num_samples`` perturbations x' = clamp(x + σ·ε, min(x), max(x)) and takes
    one plain SGD step (no momentum) on
    (1/N)·Σ_n Σ_i ‖f(x_i) − f(x'_i)‖₂ / ‖x_i − x'_i‖₂, with f(x') held fixed
    (no gradient), f the model's outputs (logits). Needs tensor inputs (not graphs).

    The defaults reproduce the reference code (jwf40/Information-Theoretic-Unlearning,
    src/lipschitz.py, ``Lipschitz.modify_weight``), which produced the paper's numbers:
    ``accumulate_gradients`` (it zeroes the gradients once, before the loop, so step k applies
    the sum of the gradients of batches 1..k) and ``train_mode`` (the model is never switched
    to eval: dropout is active, batch-norm uses and updates batch statistics, and the N
    perturbation passes run one by one, as there). The paper's formula (gradients zeroed every
    batch, eval mode, the N·B perturbations in one forward pass) is both options False.

    σ 0.5, η 3e-4, N 25, batch 128 are the paper's full-class setting (sub-class and random
    forgetting: σ 0.01, η 3e-4; the reference function's defaults are σ 0.1, η 0.01).
    """

    tasks = TASKS
    #: tuned by the equal-budget protocol (erasure.tuning); the ranges contain the defaults
    search_space = {"sigma": LogUniform(0.01, 1.0), "lr": LogUniform(1e-5, 1e-2)}

    def __init__(self, sigma: PositiveFloat = 0.5, lr: PositiveFloat = 3e-4, num_samples: PositiveInt = 25,
                 batch_size: PositiveInt = 128, accumulate_gradients: bool = True, train_mode: bool = True):
        self.sigma = sigma
        self.lr = lr
        self.num_samples = num_samples
        self.batch_size = batch_size
        self.accumulate_gradients = accumulate_gradients
        self.train_mode = train_mode

    def unlearn(self, model: nn.Module, ctx: UnlearningContext) -> nn.Module:
        if ctx.partitions.dataset.kind != "tensor":
            raise ValueError(f"JiT perturbs input tensors; it does not apply to {ctx.partitions.dataset.kind} data")
        optimizer = torch.optim.SGD(model.parameters(), lr=self.lr)
        model.train(self.train_mode)
        optimizer.zero_grad(set_to_none=True)
        for x, _ in ctx.batches("forget", self.batch_size):
            perturbed = perturb(x, self.sigma, self.num_samples, ctx.generator)
            if not self.accumulate_gradients:
                optimizer.zero_grad(set_to_none=True)
            lipschitz_loss(model, x, perturbed, one_pass=not self.train_mode).backward()
            optimizer.step()
        ctx.end_epoch(model)
        optimizer.zero_grad(set_to_none=True)
        return model.eval()
