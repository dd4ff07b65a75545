"""FisherForgetting: Gaussian noise shaped by the inverse diagonal Fisher of the retain set."""
from __future__ import annotations

from typing import Any, Iterable

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, vmap

from erasure.core.params import LogUniform, PositiveFloat, PositiveInt
from erasure.unlearners._common import forgotten_classes, last_layers
from erasure.unlearners.base import Unlearner, UnlearningContext


def expected_fisher_diagonal(model: nn.Module, batches: Iterable[tuple[Any, Tensor]], num_classes: int,
                             max_batch_gradients: int | None = None) -> dict[str, Tensor]:
    """Diagonal of the Fisher information, E_x Σ_c p(c|x)·(∇θ log p(c|x))², with per-sample gradients.

    Golatkar's ``hessian`` (AdityaGolatkar/SelectiveForgetting, Forgetting.ipynb) loops over
    samples and classes one backward pass at a time; here the per-(sample, class) gradients
    come from ``torch.func.vmap`` over ``grad``, at most ``max_batch_gradients`` of them at once
    (None: all B·C pairs of a batch), so the peak memory is about that many copies of the
    parameters plus their per-sample activations. Chunking changes only the summation order.
    The model must be free of batch-dependent layers in eval mode (batch-norm is fine).
    """
    params = {n: p.detach() for n, p in model.named_parameters()}
    buffers = {n: b.detach() for n, b in model.named_buffers()}

    def nll(p: dict[str, Tensor], x: Tensor, c: Tensor) -> Tensor:
        logits = functional_call(model, (p, buffers), (x.unsqueeze(0),))
        return nn.functional.cross_entropy(logits, c.unsqueeze(0))

    per_pair = vmap(grad(nll), in_dims=(None, 0, 0))
    total = {n: torch.zeros_like(p) for n, p in params.items()}
    count = 0
    was_training = model.training
    model.eval()
    try:
        for x, _ in batches:
            with torch.no_grad():
                probs = torch.softmax(model(x), dim=1)  # (B, C)
            pairs = probs.numel()
            step = max_batch_gradients or pairs
            for start in range(0, pairs, step):
                k = torch.arange(start, min(start + step, pairs), device=probs.device)
                grads = per_pair(params, x[k // num_classes], k % num_classes)
                weight = probs.reshape(-1)[k]
                for n, g in grads.items():
                    total[n] += torch.einsum("k,k...->...", weight, g.pow_(2))
                del grads
            count += len(probs)
    finally:
        model.train(was_training)
    return {n: t / max(count, 1) for n, t in total.items()}


class FisherForgetting(Unlearner):
    """Fisher forgetting (Golatkar, Achille & Soatto, "Eternal Sunshine of the Spotless Net:
    Selective Forgetting in Deep Networks", CVPR 2020; reference code AdityaGolatkar/SelectiveForgetting,
    Forgetting.ipynb ``hessian`` and ``get_mean_var``).

    F is the diagonal Fisher of the model on D_r (expectation over the model's own predictive
    distribution, per-sample gradients batched with ``torch.func``, as many per-(sample, class)
    gradients at once as fit in ``gradient_memory_mb``). Every parameter gets
    θ ← θ + √v·ε, ε ~ N(0, 1), with v = ``alpha`` · min(1/(F + 1e-8), ``max_variance``), as in
    ``get_mean_var``: the head's variance is clamped at ``max_variance``/10; a weight's variance
    is averaged over its input units (dimension 1: a convolution keeps one variance per output
    channel and kernel position); the head and 1-d parameters (biases, norms) get 10× the
    variance. For class forgetting (when ``zero_forgotten_classes``), the head rows of the
    forgotten classes are set to 0 with variance 1e-4 (×10, like the rest of the head).
    The head is the last layer in forward order (the reference takes every parameter whose
    first dimension is the number of classes).

    Defaults: ``alpha`` 1e-6 (the paper's range is 1e-6..1e-8), ``max_variance`` 1e3;
    ``batch_size`` None uses the original recipe's; ``gradient_memory_mb`` 1024 MiB for the
    gradients held at once (their activations come on top: ResNet-18 on 32×32 inputs, 24 at a
    time, peaks about 1.8 GB above the process's baseline; see docs/fidelity.md). The
    variance scales linearly with ``alpha``.
    """

    #: tuned by the equal-budget protocol (erasure.tuning); the ranges contain the defaults
    search_space = {"alpha": LogUniform(1e-9, 1e-4)}

    def __init__(self, alpha: PositiveFloat = 1e-6, max_variance: PositiveFloat = 1e3, zero_forgotten_classes: bool = True,
                 batch_size: PositiveInt | None = None, gradient_memory_mb: PositiveFloat = 1024.0):
        self.alpha = alpha
        self.max_variance = max_variance
        self.zero_forgotten_classes = zero_forgotten_classes
        self.batch_size = batch_size
        self.gradient_memory_mb = gradient_memory_mb

    def max_batch_gradients(self, model: nn.Module) -> int:
        """How many per-(sample, class) gradients fit in ``gradient_memory_mb`` (at least one)."""
        size = sum(p.numel() * p.element_size() for p in model.parameters())
        return max(1, int(self.gradient_memory_mb * 2**20 // max(size, 1)))

    def variances(self, model: nn.Module, ctx: UnlearningContext) -> dict[str, Tensor]:
        """Per-parameter noise variance (before the forgotten-class override)."""
        fisher = expected_fisher_diagonal(model, ctx.batches("retain", self.batch_size, shuffle=False), ctx.num_classes,
                                          self.max_batch_gradients(model))
        head_name, head = last_layers(model, ctx, 1)[0]
        head_params = {f"{head_name}.{n}" if head_name else n for n, _ in head.named_parameters()}
        out = {}
        for name, f in fisher.items():
            is_head = name in head_params
            var = (1.0 / (f + 1e-8)).clamp(max=self.max_variance / 10 if is_head else self.max_variance) * self.alpha
            if var.dim() > 1:  # over input units / channels only: a conv kernel keeps one variance per position
                var = var.mean(dim=1, keepdim=True).expand_as(var).clone()
            if is_head or var.dim() == 1:
                var = var * 10
            out[name] = var
        return out

    def unlearn(self, model: nn.Module, ctx: UnlearningContext) -> nn.Module:
        variances = self.variances(model, ctx)
        forgotten = self._forgotten_classes(ctx)
        head_name, head = last_layers(model, ctx, 1)[0]
        head_params = {f"{head_name}.{n}" if head_name else n for n, _ in head.named_parameters()}
        with torch.no_grad():
            for name, p in model.named_parameters():
                mean, var = p.detach().clone(), variances[name]
                if forgotten is not None and name in head_params and p.shape[0] == ctx.num_classes:
                    mean[forgotten] = 0.0
                    var[forgotten] = 1e-4 * 10  # the authors set 1e-4, then scale the head's variance by 10
                noise = torch.randn(p.shape, generator=ctx.generator).to(p.device, p.dtype)
                p.copy_(mean + var.sqrt() * noise)
        return model.eval()

    def _forgotten_classes(self, ctx: UnlearningContext) -> Tensor | None:
        """The classes of a class-forgetting request (every sample of them forgotten), else None."""
        return forgotten_classes(ctx.partitions) if self.zero_forgotten_classes else None
