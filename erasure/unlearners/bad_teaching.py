"""BadTeaching: distil from a competent teacher on D_r and from an incompetent one on D_f."""
from __future__ import annotations

from typing import Annotated

import torch
from torch import Tensor, nn

from erasure.core.factory import build
from erasure.core.params import (IntRange, LogUniform, MethodOptimizerSpec, OpenFraction, PositiveFloat,
                                 PositiveInt, Spec, Uniform)
from erasure.unlearners._common import index_batches
from erasure.unlearners.base import TrainingUnlearner, UnlearningContext, build_optimizer

ModelSpec = Annotated[dict, Spec("model")]


def bad_teacher_loss(student_logits: Tensor, competent_logits: Tensor, incompetent_logits: Tensor, is_forget: Tensor,
                     temperature: float) -> Tensor:
    """KL(teacher ‖ student) where the teacher is the incompetent one on forget rows, the competent one
    elsewhere (the paper's ``UnlearnerLoss``, ``kl_div`` with its element-wise mean)."""
    flag = is_forget.float().unsqueeze(1)
    teacher = flag * torch.softmax(incompetent_logits / temperature, 1) + (1 - flag) * torch.softmax(competent_logits / temperature, 1)
    pointwise = nn.functional.kl_div(torch.log_softmax(student_logits / temperature, 1), teacher, reduction="none")
    return pointwise.mean()


class BadTeaching(TrainingUnlearner):
    """Bad-teacher knowledge distillation (Chundawat, Tarun, Mandal & Kankanhalli, "Can Bad Teaching
    Induce Forgetting? Unlearning in Deep Networks Using an Incompetent Teacher", AAAI 2023).

    The student starts as the original; the competent teacher is a frozen copy of the original,
    the incompetent teacher a randomly initialised model (``teacher`` None: the config's own
    architecture; or any model spec, built for this data). Each batch mixes D_f and a random
    ``retain_fraction`` of D_r; the student minimises KL towards the incompetent teacher on
    forget rows and towards the competent one on retain rows, at temperature ``temperature``.

    Defaults (the paper's code): 1 epoch, Adam at lr 1e-4, temperature 1, retain subset 30%,
    batch size 256.
    """

    #: tuned by the equal-budget protocol (erasure.tuning); the ranges contain the defaults
    search_space = {"epochs": IntRange(1, 10), "lr": LogUniform(1e-5, 1e-2), "temperature": Uniform(1.0, 4.0),
                    "retain_fraction": Uniform(0.1, 0.95)}

    def __init__(self, epochs: PositiveInt = 1, lr: PositiveFloat = 1e-4, temperature: PositiveFloat = 1.0,
                 retain_fraction: OpenFraction = 0.3, batch_size: PositiveInt = 256,
                 teacher: ModelSpec | None = None, optimizer: MethodOptimizerSpec | None = None):
        self.epochs = epochs
        self.lr = lr
        self.temperature = temperature
        self.retain_fraction = retain_fraction
        self.batch_size = batch_size
        self.teacher = teacher
        self.optimizer = optimizer

    def incompetent_teacher(self, ctx: UnlearningContext) -> nn.Module:
        if self.teacher is None:
            model = ctx.new_model()
        else:
            data = ctx.partitions.dataset
            model = build(self.teacher, "model", "teacher", input_shape=data.input_shape, num_classes=ctx.num_classes)
        model = model.to(ctx.device).eval()
        for p in model.parameters():
            p.requires_grad_(False)
        return model

    def unlearn(self, model: nn.Module, ctx: UnlearningContext) -> nn.Module:
        parts = ctx.partitions
        competent = ctx.frozen_copy(model)
        incompetent = self.incompetent_teacher(ctx)
        retain = parts["retain"]
        keep = torch.randperm(len(retain), generator=ctx.generator)[: int(round(self.retain_fraction * len(retain)))]
        index = torch.cat([parts["forget"], retain[keep.to(retain.device)]])
        is_forget = torch.zeros(len(parts.dataset.targets), dtype=torch.bool, device=index.device)
        is_forget[parts["forget"]] = True
        optimizer = build_optimizer(self.optimizer, {"class": "Adam"}, model.parameters(), self.lr)
        model.train()
        for _ in range(self.epochs):
            for chunk in index_batches(index, self.batch_size, ctx.generator):
                x = parts.dataset.take(chunk)
                with torch.no_grad():
                    good, bad = competent(x), incompetent(x)
                optimizer.zero_grad(set_to_none=True)
                bad_teacher_loss(model(x), good, bad, is_forget[chunk], self.temperature).backward()
                optimizer.step()
            ctx.end_epoch(model)
        return model.eval()
