"""BoundaryExpanding: train the forget set into an extra "shadow" class, then prune it."""
from __future__ import annotations

import torch
from torch import nn

from erasure.core.params import IntRange, LogUniform, MethodOptimizerSpec, PositiveFloat, PositiveInt
from erasure.unlearners._common import last_layers
from erasure.unlearners.base import TrainingUnlearner, UnlearningContext, build_optimizer
from erasure.unlearners.salun import SGD_SALUN


def shadow_row(head: nn.Linear) -> tuple[nn.Parameter, nn.Parameter | None]:
    """Weights of one extra output of ``head``: the last row of a fresh ``nn.Linear`` one output
    wider, so it has that layer's default random initialisation (from the global generator), as
    the new row of the reference's ``expand_model``."""
    wide = nn.Linear(head.in_features, head.out_features + 1, bias=head.bias is not None,
                     device=head.weight.device, dtype=head.weight.dtype)
    bias = nn.Parameter(wide.bias.detach()[-1:].clone()) if head.bias is not None else None
    return nn.Parameter(wide.weight.detach()[-1:].clone()), bias


class BoundaryExpanding(TrainingUnlearner):
    """Boundary Expanding (Chen et al., "Boundary Unlearning: Rapid Forgetting of Deep Networks via
    Shifting the Decision Space", CVPR 2023; no official code: OPTML-Group/Unlearn-Saliency,
    Classification/unlearn/boundary_ex.py).

    The classification head (the last layer in forward order, an ``nn.Linear``) gets one extra
    output, a shadow class (a forward hook adds its logit, so the model's own weights keep their
    shapes); the whole model (train mode) minimises CE of the forget samples towards the shadow
    class, one pass over D_f per epoch; then the shadow output is pruned, as the paper does (the
    reference keeps it at evaluation; a model here keeps its C outputs).

    Defaults are the reference's: 10 epochs, SGD (momentum 0.9, weight decay 5e-4) at lr 0.01
    (arg_parser; its step decay at epochs 91, 136 never applies), the optimizer built after the
    head is widened. ``batch_size`` None uses the original recipe's (the reference's is 256).
    """

    #: the reference unlearns on the training set's loader with its crop-and-flip transforms
    #: (Unlearn-Saliency main_forget.py / main_random.py copy marked_loader's dataset), as SalUn
    augments = True
    #: tuned by the equal-budget protocol (erasure.tuning); the ranges contain the defaults
    search_space = {"epochs": IntRange(1, 10), "lr": LogUniform(1e-5, 1e-1)}

    def __init__(self, epochs: PositiveInt = 10, lr: PositiveFloat = 0.01, batch_size: PositiveInt | None = None,
                 optimizer: MethodOptimizerSpec | None = None):
        self.epochs = epochs
        self.lr = lr
        self.batch_size = batch_size
        self.optimizer = optimizer

    def unlearn(self, model: nn.Module, ctx: UnlearningContext) -> nn.Module:
        name, head = last_layers(model, ctx, 1)[-1]
        if not isinstance(head, nn.Linear) or head.out_features != ctx.num_classes:
            raise ValueError(f"BoundaryExpanding widens the model's last layer, which must be an nn.Linear with "
                             f"{ctx.num_classes} outputs; {name or 'the model'} is {type(head).__name__}")
        weight, bias = shadow_row(head)
        shadow_params = [weight] if bias is None else [weight, bias]
        hook = head.register_forward_hook(
            lambda _module, inputs, out: torch.cat([out, nn.functional.linear(inputs[0], weight, bias)], dim=1))
        optimizer = build_optimizer(self.optimizer, SGD_SALUN, [*model.parameters(), *shadow_params], self.lr)
        model.train()
        try:
            for _ in range(self.epochs):
                for x, y in ctx.batches("forget", self.batch_size):
                    optimizer.zero_grad(set_to_none=True)
                    shadow = torch.full_like(y, ctx.num_classes)
                    nn.functional.cross_entropy(model(x), shadow).backward()
                    optimizer.step()
                ctx.end_epoch(model)
        finally:
            hook.remove()
        return model.eval()
