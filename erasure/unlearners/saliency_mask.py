"""SaliencyMask: SalUn's weight-saliency mask as a step of its own, for the ``gradient_mask`` option."""
from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import Tensor, nn

from erasure.core.errors import ConfigError
from erasure.core.params import OpenFraction, PathText, PositiveInt
from erasure.unlearners._options import write_gradient_mask
from erasure.unlearners.base import Unlearner, UnlearningContext

log = logging.getLogger("erasure.unlearners")


def saliency_mask(model: nn.Module, ctx: UnlearningContext, ratio: float, batch_size: int) -> dict[str, Tensor]:
    """Boolean masks keeping the ⌊``ratio``·P⌋ weights (of P) with the largest |∇ forget loss| (one global threshold).

    The forget loss is −CE summed over the batches of D_f, as in SalUn's ``generate_mask.py``
    (OPTML-Group/Unlearn-Saliency, Classification/generate_mask.py ``save_gradient_ratio``).
    """
    params = dict(model.named_parameters())
    grads = {n: torch.zeros_like(p) for n, p in params.items()}
    model.eval()
    for x, y in ctx.partitions.batches("forget", batch_size):
        model.zero_grad(set_to_none=True)
        (-nn.functional.cross_entropy(model(x), y)).backward()
        for n, p in params.items():
            if p.grad is not None:
                grads[n] += p.grad
    model.zero_grad(set_to_none=True)
    scores = torch.cat([g.abs().flatten() for g in grads.values()])
    keep = int(ratio * scores.numel())
    chosen = torch.zeros_like(scores, dtype=torch.bool)
    chosen[torch.topk(scores, keep).indices] = True
    masks, start = {}, 0
    for n, g in grads.items():
        masks[n] = chosen[start : start + g.numel()].view_as(g)
        start += g.numel()
    return masks


class SaliencyMask(Unlearner):
    """The weight-saliency mask of SalUn (Fan et al., ICLR 2024; :func:`saliency_mask`): the top
    ``ratio`` of all weights by |∇θ (−CE on D_f)|. The model is returned unchanged.

    The mask is kept in the context under ``name``, where the later steps of the same ``Cascade``
    apply it with ``"gradient_mask": name`` (the options of
    :class:`~erasure.unlearners.base.TrainingUnlearner`); with ``path`` it is also written, as a
    ``torch.save``-d {parameter name: bool tensor}, to ``path`` inside the job's directory
    ``output.dir/files/seed<seed>/<label>/``, from where another run's ``gradient_mask`` can read
    it. ``batch_size`` None uses the original recipe's (SalUn's is 256). ERASURE's
    ``SaliencyMapGeneration`` is this step with a file.
    """

    def __init__(self, ratio: OpenFraction = 0.5, name: str = "saliency", path: PathText | None = None,
                 batch_size: PositiveInt | None = None):
        self.ratio = ratio
        self.name = name
        self.path = path
        self.batch_size = batch_size

    def check(self) -> None:
        if self.path is not None and (Path(self.path).is_absolute() or ".." in Path(self.path).parts):
            raise ConfigError(f"expected a relative path without '..' (it is written inside the job's directory), "
                              f"got {self.path!r}", "path")

    def unlearn(self, model: nn.Module, ctx: UnlearningContext) -> nn.Module:
        masks = saliency_mask(model, ctx, self.ratio, self.batch_size or ctx.recipe.batch_size)
        ctx.masks[self.name] = masks
        if self.path is not None:
            if ctx.output_dir is None:
                log.info("SaliencyMask: this context has no output directory, so %s is not written", self.path)
            else:
                write_gradient_mask(masks, ctx.output_dir / self.path)
        return model.eval()
