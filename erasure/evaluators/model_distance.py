"""ModelDistance: how far the unlearned model moved from the original (or from gold), in weights and outputs
(ERASURE's ``ModelDistance``, aiim-research/ERASURE erasure/evaluations/distances.py and weights.py)."""
from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from torch import Tensor, nn

from erasure.core.params import PartitionName
from erasure.evaluators.base import Evaluator, Outcome
from erasure.evaluators.gold_distance import PARTITIONS, activation_distance, js_divergence, kl_divergence, parameter_distance
from erasure.results.targets import as_gold, ideal


def layer_distances(a: nn.Module, b: nn.Module) -> dict[str, float]:
    """‖θ_a − θ_b‖₂ per layer (the parameters of one module, e.g. a Linear's weight and bias), in
    module order; empty when the architectures differ."""
    pa, pb = dict(a.named_parameters()), dict(b.named_parameters())
    if pa.keys() != pb.keys() or any(pa[k].shape != pb[k].shape for k in pa):
        return {}
    squares: dict[str, float] = {}
    with torch.no_grad():
        for name, x in pa.items():
            layer = name.rpartition(".")[0] or name
            squares[layer] = squares.get(layer, 0.0) + float(((x.double() - pb[name].double().to(x.device)) ** 2).sum())
    return {layer: float(np.sqrt(s)) for layer, s in squares.items()}


def mean_tensor_distance(a: nn.Module, b: nn.Module) -> float:
    """Mean over parameter tensors of ‖Δ‖₂ (ERASURE's default weight distance, ``l2norm``)."""
    pa, pb = list(a.parameters()), list(b.parameters())
    if len(pa) != len(pb) or any(x.shape != y.shape for x, y in zip(pa, pb)):
        return float("nan")
    with torch.no_grad():
        return float(np.mean([float((x.double() - y.double().to(x.device)).norm()) for x, y in zip(pa, pb)]))


def hausdorff_distance(p_logits: Tensor, q_logits: Tensor) -> float:
    """Hausdorff distance between the two sets of output probability vectors (rows):
    max(sup_p inf_q ‖p − q‖₂, sup_q inf_p ‖p − q‖₂), with scipy's ``directed_hausdorff``."""
    from scipy.spatial.distance import directed_hausdorff

    p = torch.softmax(p_logits.double(), 1).cpu().numpy()
    q = torch.softmax(q_logits.double(), 1).cpu().numpy()
    return float(max(directed_hausdorff(p, q)[0], directed_hausdorff(q, p)[0]))


class ModelDistance(Evaluator):
    """Distances between the unlearned model and ``reference`` ("original" by default, or "gold");
    every metric starts with ``distance_<reference>_``:

    - ``weight_l2`` = ‖θ_unlearned − θ_ref‖₂, ``weight_l2/<layer>`` the same per layer (module,
      with ``per_layer``), ``weight_l2_mean`` = the mean over parameter tensors of their L2
      distance (ERASURE's ``l2norm``);
    - per partition p (``partitions``, default forget, retain and test): ``output_l2_<p>`` = mean
      L2 distance between output probabilities (Chundawat et al. 2023's activation distance),
      ``kl_<p>`` = mean KL(unlearned ‖ ref), ``js_<p>`` = mean Jensen-Shannon divergence (nats),
      ``hausdorff_<p>`` = Hausdorff distance between the two sets of output probability vectors.

    All 0 for Identity with the original as reference. ERASURE's activation distances hook every
    module's output one sample at a time; here the outputs are the model's (batched, shared with
    the other evaluators), and its Hausdorff is directed (unlearned to reference), which is at
    most this symmetric one.
    """

    @property
    def metric_targets(self) -> dict:  # type: ignore[override]
        """To the original, gold's own distance to it is the target; to gold, none is best."""
        return {f"distance_{self.reference}_*": as_gold(0, None) if self.reference == "original" else ideal(0, 0, None)}

    def __init__(self, reference: Literal["original", "gold"] = "original", partitions: list[PartitionName] | None = None,
                 per_layer: bool = True):
        self.reference = reference
        self.partitions = partitions
        self.per_layer = per_layer

    def evaluate(self, outcome: Outcome) -> dict[str, float]:
        prefix = f"distance_{self.reference}_"
        reference = outcome.model_named(self.reference)
        out = {prefix + "weight_l2": parameter_distance(outcome.model, reference),
               prefix + "weight_l2_mean": mean_tensor_distance(outcome.model, reference)}
        if self.per_layer:
            out.update({f"{prefix}weight_l2/{layer}": d for layer, d in layer_distances(outcome.model, reference).items()})
        for p in self.partitions or PARTITIONS:
            if outcome.partitions.size(p) == 0:
                continue
            u, r = outcome.logits("unlearned", p), outcome.logits(self.reference, p)
            out[f"{prefix}output_l2_{p}"] = float(activation_distance(u, r).mean())
            out[f"{prefix}kl_{p}"] = float(kl_divergence(u, r).mean())
            out[f"{prefix}js_{p}"] = float(js_divergence(u, r).mean())
            out[f"{prefix}hausdorff_{p}"] = hausdorff_distance(u, r)
        return out
