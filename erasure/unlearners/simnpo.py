"""SimNPO: NPO without a reference model, as a classification loss."""
from __future__ import annotations

from torch import Tensor
from torch.nn import functional as F

from erasure.core.params import (IntRange, LogUniform, MethodOptimizerSpec, NonNegativeFloat, PositiveFloat,
                                 PositiveInt, Uniform)
from erasure.unlearners.npo import NPO, RetainLoss


def simnpo_loss(logits: Tensor, targets: Tensor, beta: float, gamma: float) -> Tensor:
    """−(2/β)·mean_i log σ(β·(CE(x_i, y_i) − γ)): SimNPO with the cross-entropy of a sample (one
    label, so the length normalisation |y| is 1) as its negative log-likelihood
    (OPTML-Group/Unlearn-Simple, TOFU/dataloader.py, loss ``simnpo``)."""
    return -F.logsigmoid(beta * (F.cross_entropy(logits, targets, reduction="none") - gamma)).mean() * 2 / beta


class SimNPO(NPO):
    """SimNPO (Fan, Liu, Lin, Jia, Zhang, Mei & Liu, "Simplicity Prevails: Rethinking Negative
    Preference Optimization for LLM Unlearning", arXiv 2410.07163; reference code
    OPTML-Group/Unlearn-Simple, TOFU/dataloader.py, ``compute_loss``).

    NPO's loop (see :class:`~erasure.unlearners.npo.NPO`) with the reference-free
    :func:`simnpo_loss` on the forget batch: no reference model. The code puts the margin γ
    inside the product, β·(CE − γ) (the paper writes β·CE − γ; equal at the default γ 0).

    Defaults are the reference's TOFU run (config/forget.yaml): ``simnpo_grad_diff``, β 2.5,
    γ 0, forget weight (``npo_coeff``) 0.1375, retain weight 1, 10 epochs, AdamW (weight decay
    0.01) at lr 1e-5; ``batch_size`` None uses the original recipe's.
    """

    #: tuned by the equal-budget protocol (erasure.tuning); the ranges contain the defaults
    search_space = {"beta": LogUniform(0.1, 10.0), "forget_weight": LogUniform(0.05, 2.0), "gamma": Uniform(0.0, 2.0),
                    "epochs": IntRange(1, 10), "lr": LogUniform(1e-5, 1e-2)}

    def __init__(self, beta: PositiveFloat = 2.5, gamma: NonNegativeFloat = 0.0, retain_loss: RetainLoss = "grad_diff",
                 forget_weight: NonNegativeFloat = 0.1375, retain_weight: NonNegativeFloat = 1.0, epochs: PositiveInt = 10,
                 lr: PositiveFloat = 1e-5, batch_size: PositiveInt | None = None, optimizer: MethodOptimizerSpec | None = None):
        super().__init__(beta, retain_loss, forget_weight, retain_weight, epochs, lr, batch_size, optimizer)
        self.gamma = gamma

    def forget_loss(self, logits: Tensor, reference_logits: Tensor | None, targets: Tensor) -> Tensor:
        return simnpo_loss(logits, targets, self.beta, self.gamma)

    def needs_reference(self) -> bool:
        return False
