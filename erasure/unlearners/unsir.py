"""UNSIR: impair with error-maximising noise, then repair on the retain set."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from erasure.core.params import Fraction, NonNegativeFloat, NonNegativeInt, MethodOptimizerSpec, PositiveFloat, PositiveInt
from erasure.unlearners._common import fit_on_tensors
from erasure.unlearners.base import Unlearner, UnlearningContext, build_optimizer

ADAM = {"class": "Adam"}


def error_maximizing_noise(model: nn.Module, labels: Tensor, input_shape: tuple[int, ...], steps: int, lr: float,
                           l2: float, generator: torch.Generator) -> Tensor:
    """Noise inputs N (one per label) that maximise CE(f(N), labels) − l2·mean‖N‖², by Adam on N.

    The model is frozen meanwhile; the noise is never clamped (the L2 penalty bounds it).
    """
    noise = torch.randn((len(labels), *input_shape), generator=generator).to(labels.device).requires_grad_(True)
    optimizer = torch.optim.Adam([noise], lr=lr)
    flags = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    was_training = model.training
    model.eval()
    try:
        for _ in range(steps):
            optimizer.zero_grad(set_to_none=True)
            loss = -nn.functional.cross_entropy(model(noise), labels) + l2 * noise.pow(2).flatten(1).sum(1).mean()
            loss.backward()
            optimizer.step()
    finally:
        model.train(was_training)
        for p, flag in zip(model.parameters(), flags):
            p.requires_grad_(flag)
    return noise.detach()


class UNSIR(Unlearner):
    """Unlearning by Selective Impair and Repair (Tarun, Chundawat, Mandal & Kankanhalli, "Fast Yet
    Effective Machine Unlearning", IEEE TNNLS 2023).

    1. Noise: for each forgotten class, a batch of ``noise_batch_size`` inputs maximising the
       model's CE on that class (minus ``noise_l2`` times the mean squared norm), ``noise_steps``
       Adam steps at ``noise_lr``. With ``per_sample`` (Choi & Na's variant, for random
       forgetting) one noise input per forget sample, labelled like it, instead.
    2. Impair: ``impair_epochs`` epochs on the noise (repeated ``noise_repeats`` times) together
       with a random ``retain_fraction`` of D_r, at ``lr``.
    3. Repair: ``repair_epochs`` epochs on D_r at ``repair_lr``.

    Defaults (methods.md; the authors' notebook): noise steps 25, noise lr 0.1, noise L2 weight
    0.1, noise batch 256 repeated 20 times, impair lr 1e-4 for one epoch on noise ∪ 20% of D_r
    (their 1,000 of 5,000 images per CIFAR-10 class), repair one epoch at lr 1e-4, Adam
    throughout (``optimizer`` replaces it for impair and repair). Tensor inputs only.
    """

    def __init__(self, noise_steps: PositiveInt = 25, noise_lr: PositiveFloat = 0.1, noise_l2: NonNegativeFloat = 0.1,
                 noise_batch_size: PositiveInt = 256, noise_repeats: PositiveInt = 20, per_sample: bool = False,
                 retain_fraction: Fraction = 0.2, lr: PositiveFloat = 1e-4, impair_epochs: PositiveInt = 1,
                 repair_lr: PositiveFloat = 1e-4, repair_epochs: NonNegativeInt = 1, batch_size: PositiveInt | None = None,
                 optimizer: MethodOptimizerSpec | None = None):
        self.noise_steps = noise_steps
        self.noise_lr = noise_lr
        self.noise_l2 = noise_l2
        self.noise_batch_size = noise_batch_size
        self.noise_repeats = noise_repeats
        self.per_sample = per_sample
        self.retain_fraction = retain_fraction
        self.lr = lr
        self.impair_epochs = impair_epochs
        self.repair_lr = repair_lr
        self.repair_epochs = repair_epochs
        self.batch_size = batch_size
        self.optimizer = optimizer

    def noise(self, model: nn.Module, ctx: UnlearningContext) -> tuple[Tensor, Tensor]:
        """The learned noise inputs and their labels."""
        parts = ctx.partitions
        forget_labels = parts.targets("forget")
        if self.per_sample:
            labels = forget_labels
        else:
            labels = torch.unique(forget_labels).repeat_interleave(self.noise_batch_size)
        inputs = parts.dataset.inputs
        if not isinstance(inputs, Tensor):
            raise TypeError("UNSIR learns noise in input space and needs tensor inputs")
        return error_maximizing_noise(model, labels, tuple(inputs.shape[1:]), self.noise_steps, self.noise_lr,
                                      self.noise_l2, ctx.generator), labels

    def unlearn(self, model: nn.Module, ctx: UnlearningContext) -> nn.Module:
        parts = ctx.partitions
        batch_size = self.batch_size or ctx.recipe.batch_size
        noise, noise_labels = self.noise(model, ctx)
        retain = parts["retain"]
        keep = torch.randperm(len(retain), generator=ctx.generator)[: int(round(self.retain_fraction * len(retain)))]
        subset = retain[keep.to(retain.device)]
        inputs = torch.cat([noise.repeat(self.noise_repeats, *[1] * (noise.dim() - 1)), parts.dataset.take(subset)])
        targets = torch.cat([noise_labels.repeat(self.noise_repeats), parts.dataset.targets[subset]])
        model.train()
        impair = build_optimizer(self.optimizer, ADAM, model.parameters(), self.lr)
        for _ in range(self.impair_epochs):
            fit_on_tensors(model, impair, inputs, targets, batch_size, ctx.generator)
        repair = build_optimizer(self.optimizer, ADAM, model.parameters(), self.repair_lr)
        for _ in range(self.repair_epochs):
            for x, y in ctx.batches("retain", batch_size):
                repair.zero_grad(set_to_none=True)
                nn.functional.cross_entropy(model(x), y).backward()
                repair.step()
        return model.eval()
