"""DELETE: decoupled distillation to erase, from the forget set alone."""
from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from erasure.core.params import IntRange, LogUniform, MethodOptimizerSpec, PositiveFloat, PositiveInt
from erasure.unlearners.base import SGD_MOMENTUM, TrainingUnlearner, UnlearningContext, build_optimizer

#: the reference's soft-label rule "inf": the true class's teacher logit is set to this before the softmax
MASKED_LOGIT = -1e10


def masked_teacher_targets(teacher_logits: Tensor, targets: Tensor) -> Tensor:
    """softmax(teacher logits) with the true class masked out (its logit −1e10): the
    distribution over the other classes that DELETE distils (the "dark knowledge")."""
    masked = teacher_logits.clone()
    masked[torch.arange(len(targets), device=targets.device), targets] = MASKED_LOGIT
    return F.softmax(masked, dim=1)


def delete_loss(student_logits: Tensor, teacher_logits: Tensor, targets: Tensor) -> Tensor:
    """KL(masked teacher ‖ student) with ``reduction="batchmean"``, as the reference's
    ``nn.KLDivLoss(reduction="batchmean")(log_softmax(student), softmax(masked teacher))``."""
    return F.kl_div(F.log_softmax(student_logits, dim=1), masked_teacher_targets(teacher_logits, targets),
                    reduction="batchmean")


class DELETE(TrainingUnlearner):
    """DELETE (Zhou, Zheng, Mo, Lu, Lin & Zheng, "Decoupled Distillation to Erase: A General
    Unlearning Method for Any Class-centric Tasks", CVPR 2025; reference code shaaaaron/DELETE,
    method/delete.py). Reads only the forget set: no D_r.

    The teacher is the frozen original in eval mode; for each forget batch its logits have the
    true class masked (−1e10) and their softmax is the target of the student (the model, train
    mode) under KL divergence (batch mean), one SGD step (momentum 0.9) per batch. The student
    thus moves its forget predictions to the teacher's ranking of the other classes, which keeps
    the knowledge of the remaining classes without reading them.

    Defaults are the reference's CIFAR-10 / ResNet-18 config (config/cifar10_resnet18.yaml): 20
    epochs, lr 1e-4 (CIFAR-100: 5e-5). The code has one ``--batch_size`` for training the
    original and for unlearning (128 in that config, 64 in others), so ``batch_size`` None, the
    default, is the original recipe's; ``freeze_batch_norm`` keeps batch-norm layers in eval mode (the
    code's ``disable_bn``, which it sets for single-class Tiny-ImageNet).
    """

    #: the reference's forget loader reads the training set with its flip-and-crop transforms
    #: (main.py: get_transforms(..., wo_dataaug=False by default), get_unlearn_loader(trainset, ...))
    augments = True
    #: tuned by the equal-budget protocol (erasure.tuning); the ranges contain the defaults
    search_space = {"epochs": IntRange(1, 20), "lr": LogUniform(1e-5, 1e-1)}

    def __init__(self, epochs: PositiveInt = 20, lr: PositiveFloat = 1e-4, batch_size: PositiveInt | None = None,
                 freeze_batch_norm: bool = False,
                 optimizer: MethodOptimizerSpec | None = None):
        self.epochs = epochs
        self.lr = lr
        self.batch_size = batch_size
        self.freeze_batch_norm = freeze_batch_norm
        self.optimizer = optimizer

    def unlearn(self, model: nn.Module, ctx: UnlearningContext) -> nn.Module:
        teacher = ctx.frozen_copy(model)
        optimizer = build_optimizer(self.optimizer, SGD_MOMENTUM, model.parameters(), self.lr)
        for _ in range(self.epochs):
            for x, y in ctx.batches("forget", self.batch_size):  # None: the recipe's
                model.train()
                if self.freeze_batch_norm:
                    for m in model.modules():
                        if isinstance(m, nn.modules.batchnorm._BatchNorm):
                            m.eval()
                optimizer.zero_grad(set_to_none=True)
                with torch.no_grad():
                    teacher_logits = teacher(x)
                delete_loss(model(x), teacher_logits, y).backward()
                optimizer.step()
            ctx.end_epoch(model)
        return model.eval()
