"""RUM: refine the forget set by a memorization proxy, then unlearn its subsets in sequence."""
from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from erasure.core.errors import ConfigError, join_path
from erasure.core.factory import build
from erasure.core.params import Choice, PositiveInt
from erasure.data.partitions import Partitions
from erasure.unlearners.base import UnlearningContext
from erasure.unlearners.cascade import Cascade, UnlearnerSpec

Proxy = Literal["confidence", "max_confidence", "entropy", "binary_accuracy"]
SGD_RUM = {"class": "SGD", "parameters": {"momentum": 0.9, "weight_decay": 5e-4}}


@torch.no_grad()
def final_proxy_scores(model: nn.Module, partitions: Partitions, index: Tensor, proxy: Proxy = "confidence",
                       batch_size: int = 512) -> np.ndarray:
    """Per-sample proxy scores of the samples at ``index`` from one model's softmax outputs (eval
    mode), the proxies of RUM's memorization_proxy/learning_events.py taken at the end of
    training instead of averaged over its epochs: ``confidence`` p_y (the true class's
    probability), ``max_confidence`` max_c p_c, ``entropy`` Σ_c p_c·log p_c (the code's
    negative entropy), ``binary_accuracy`` 1 if the prediction is right. Lower confidence goes
    with higher memorization (RUM, Sec. 5). The history-averaged proxy, as RUM's code computes it
    while training, is :func:`erasure.data.memorization.memorization_proxy` (``MemorizationForget``);
    an unlearner sees only the finished original, so it takes the final one."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    scores = []
    try:
        for x, y in partitions.batches(index, batch_size):
            p = F.softmax(model(x).float(), dim=1)
            if proxy == "confidence":
                s = p.gather(1, y.view(-1, 1)).squeeze(1)
            elif proxy == "max_confidence":
                s = p.max(1).values
            elif proxy == "entropy":
                s = (p * p.clamp_min(1e-45).log()).sum(1)
            else:
                s = (p.argmax(1) == y).float()
            scores.append(s.cpu())
    finally:
        for m, mode in modes:
            m.training = mode
    return torch.cat(scores).double().numpy() if scores else np.zeros(0)


def split_by_score(index: Tensor, scores: np.ndarray, groups: int) -> list[Tensor]:
    """``index`` split into ``groups`` near-equal parts by ascending score (ties by position)."""
    order = torch.as_tensor(np.argsort(scores, kind="stable"), device=index.device)
    return [index[part] for part in torch.tensor_split(order, groups)]


class RUM(Cascade):
    """RUM, "Refined-Unlearning Meta-algorithm" (Zhao, Kurmanji, Bărbulescu, Triantafillou &
    Triantafillou, "What makes unlearning hard and what to do about it", NeurIPS 2024; reference
    code kairanzhao/RUM, main_rum.py, main_rum_proxy.py, main_forget.py ``--sequential``).

    Refinement: D_f is split into as many subsets as there are ``unlearners`` (three in the
    paper: low, medium, high memorization) by a memorization proxy computed from the original
    model (:func:`final_proxy_scores`, ``proxy``). Meta-unlearning: step i runs the unlearner
    spec ``unlearners[i]`` on subset i, in order of ascending proxy score (``order``
    "descending" reverses it), each on the model the step before returned (a
    :class:`~erasure.unlearners.cascade.Cascade`, so each step's context is reseeded and an
    ``Identity`` step is RUM's "do nothing on this subset").

    Each step's forget set is its subset. Its retain set is, as in the code's sequential runs,
    the training set minus that subset and every subset still to come
    (``retain="code"``: the subsets already handled rejoin the retain set) or D_r throughout
    (``retain="retain"``). Evaluation is on the whole D_f.

    The paper's proxy splits rank by a proxy averaged over the original's training epochs
    (learning events); here it is read from the trained original alone, so confidence ranks the
    samples the original fits least (the most memorized) lowest.

    With ``unlearners`` None the steps are the code's proxy run (main_rum_proxy.py): NegGrad+
    (``AdvancedNegGrad``) on each subset with α 0.99 / 0.97 / 0.97, 5 / 5 / 10 epochs, lr 0.01 /
    0.01 / 0.001, SGD with momentum 0.9 and weight decay 5e-4.
    """

    #: tuned by the equal-budget protocol (erasure.tuning): the refinement's choices (the steps' own
    #: parameters are their specs'); the defaults are the code's
    search_space = {"proxy": Choice(("confidence", "max_confidence", "entropy", "binary_accuracy")),
                    "order": Choice(("ascending", "descending")), "retain": Choice(("code", "retain"))}

    #: The code's proxy run (main_rum_proxy.py): NegGrad+ on each subset, SGD (momentum 0.9, weight decay 5e-4)
    DEFAULT_STEPS: ClassVar[list[dict]] = [
        {"class": "AdvancedNegGrad", "parameters": {"alpha": alpha, "epochs": epochs, "lr": lr, "optimizer": SGD_RUM}}
        for alpha, epochs, lr in ((0.99, 5, 0.01), (0.97, 5, 0.01), (0.97, 10, 0.001))]

    contract_config: ClassVar[dict[str, Any]] = {"parameters": {"unlearners": [
        {"class": "Identity"},
        {"class": "FineTuning", "parameters": {"epochs": 1, "lr": 0.01}},
        {"class": "NegGrad", "parameters": {"epochs": 1, "lr": 1e-3}},
    ]}}

    def __init__(self, unlearners: list[UnlearnerSpec] | None = None, proxy: Proxy = "confidence",
                 order: Literal["ascending", "descending"] = "ascending", retain: Literal["code", "retain"] = "code",
                 batch_size: PositiveInt = 512):
        super().__init__(unlearners)  # type: ignore[arg-type]
        self.proxy = proxy
        self.order = order
        self.retain = retain
        self.batch_size = batch_size

    def check(self) -> None:
        if self.unlearners is not None and len(self.unlearners) < 2:
            raise ConfigError("RUM needs one unlearner spec per memorization subset (at least 2; the paper's 3)",
                              "unlearners")
        self._steps = [build(spec, "unlearner", join_path("unlearners", i)) for i, spec in enumerate(self.specs())]

    def specs(self) -> list[dict]:
        """The step specs: ``unlearners``, or the code's three NegGrad+ steps."""
        return self.DEFAULT_STEPS if self.unlearners is None else self.unlearners

    def subsets(self, model: nn.Module, partitions: Partitions) -> list[Tensor]:
        """The forget set split by the proxy, in the order the steps take them."""
        forget = partitions["forget"]
        scores = final_proxy_scores(model, partitions, forget, self.proxy, self.batch_size)
        parts = split_by_score(forget, scores, len(self.specs()))
        return parts[::-1] if self.order == "descending" else parts

    def unlearn(self, model: nn.Module, ctx: UnlearningContext) -> nn.Module:
        parts = ctx.partitions
        subsets = self.subsets(model, parts)
        for i, (step, subset) in enumerate(zip(self.steps(), subsets)):
            if self.retain == "code":
                later = torch.cat([subset, *subsets[i + 1:]])
                retain = parts["train"][~torch.isin(parts["train"], later)]
            else:
                retain = parts["retain"]
            step_parts = Partitions(parts.dataset, {**parts.indices, "forget": subset, "retain": retain},
                                    parts.forget_spec, dict(parts.extras))
            step_ctx = dataclasses.replace(ctx.for_step(i), partitions=step_parts)
            model = step.unlearn(model, step_ctx)
            if not isinstance(model, nn.Module):
                raise TypeError(f"step {i} ({type(step).__name__}) returned {type(model).__name__}, expected an nn.Module")
            ctx.log(None, {f"step{i}_forget_size": float(len(subset))})
        return model
