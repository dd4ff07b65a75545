"""WassersteinBarycenter: feature unlearning on the data through Wasserstein barycenters (Xu & Strohmer)."""
from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np
import torch
from torch import nn

from erasure.core.params import PositiveInt
from erasure.data.dataset import Dataset
from erasure.data.partitions import Partitions
from erasure.models.training import train_model
from erasure.unlearners.base import TASKS, Unlearner, UnlearningContext

COVARIANCE_RIDGE = 1e-6  # added to each group covariance so constant features (e.g. blank pixels) stay invertible
MAX_SUPPORT = 500  # support size cap of the free-support barycenter (three or more groups)


def group_weights(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The groups present in ``z`` and their shares λ_z = P(Z=z)."""
    groups, counts = np.unique(z, return_counts=True)
    return groups, counts / counts.sum()


def gaussian_barycenter_maps(x: np.ndarray, z: np.ndarray, ridge: float = COVARIANCE_RIDGE) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Per-group affine maps x ↦ x·A_z + b_z onto the Bures–Wasserstein barycenter of the group Gaussians.

    Group means m_z and covariances Σ_z (+ ridge·I); barycenter (m̄, Σ̄) with
    weights λ_z from ``ot.gaussian.bures_wasserstein_barycenter``; maps from
    ``ot.gaussian.bures_wasserstein_mapping(m_z, m̄, Σ_z, Σ̄)``, i.e.
    A_z = Σ_z^{-1/2}(Σ_z^{1/2} Σ̄ Σ_z^{1/2})^{1/2} Σ_z^{-1/2}, b_z = m̄ − m_z·A_z.
    """
    import ot

    groups, weights = group_weights(z)
    eye = np.eye(x.shape[1])
    means, covs = [], []
    for g in groups:
        xg = x[z == g]
        if len(xg) < 2:
            raise ValueError(f"group {g} has {len(xg)} training sample(s); a covariance needs at least 2")
        means.append(xg.mean(0))
        covs.append(np.cov(xg, rowvar=False).reshape(x.shape[1], x.shape[1]) + ridge * eye)
    mean_bar, cov_bar = ot.gaussian.bures_wasserstein_barycenter(np.stack(means), np.stack(covs), weights)
    maps = {}
    for g, m, c in zip(groups, means, covs):
        a, b = ot.gaussian.bures_wasserstein_mapping(m, mean_bar, c, cov_bar)
        maps[int(g)] = (np.asarray(a), np.asarray(b).reshape(-1))
    return maps


def gaussian_barycenter_transform(x: np.ndarray, z: np.ndarray, train: np.ndarray) -> np.ndarray:
    """Every row of ``x`` mapped by its group's affine map, the maps fitted on the rows ``train``."""
    maps = gaussian_barycenter_maps(x[train], z[train])
    _check_groups(z, maps)
    out = np.empty_like(x)
    for g, (a, b) in maps.items():
        rows = z == g
        out[rows] = x[rows] @ a + b
    return out


def exact_barycenter_transform(x: np.ndarray, z: np.ndarray, train: np.ndarray, rng: np.random.Generator,
                               max_iterations: int | None = None) -> np.ndarray:
    """Every row of ``x`` moved to the empirical W2 barycenter of the group conditionals fitted on ``train``.

    Two groups: exact OT plan G = ot.emd between the groups' training samples
    (uniform weights, squared Euclidean cost), barycentric projection
    T_{0→1}(x_i) = Σ_j G_ij x1_j / Σ_j G_ij and McCann interpolation
    x̂ = λ_0·x + λ_1·T_{0→1}(x) (and the mirror for group 1, along Gᵀ). Three or more: the
    free-support barycenter (:func:`free_support_barycenter`, support of
    min(largest group, 500) points started from random training rows), then the
    barycentric projection of each group onto it. Both go through
    ``ot.da.EMDTransport`` (``transform``, and ``inverse_transform`` for the mirror):
    training rows use the plan itself; other (test) rows take the image of their
    nearest training row of the same group plus their offset from it (EMDTransport's
    out-of-sample rule). Every plan is solved to optimality (:func:`exact_transport`) or
    this raises.
    """
    train = np.asarray(train)
    x_train, z_train = x[train], z[train]
    groups, weights = group_weights(z_train)
    _check_groups(z, dict.fromkeys(int(g) for g in groups))
    outside = np.ones(len(x), dtype=bool)
    outside[train] = False
    members = {int(g): train[z_train == g] for g in groups}  # dataset rows of each group's training samples
    sources = {g: x[rows] for g, rows in members.items()}
    if len(groups) == 2:  # one plan; group 1 is carried back along its transpose
        g0, g1 = int(groups[0]), int(groups[1])
        transport = exact_transport(sources[g0], sources[g1], max_iterations)
        images = {g0: lambda points: transport.transform(Xs=points),
                  g1: lambda points: transport.inverse_transform(Xt=points)}
        keep = {int(g): float(w) for g, w in zip(groups, weights)}  # McCann: x̂ = λ_z·x + (1 − λ_z)·T(x)
    else:
        size = min(max(len(s) for s in sources.values()), MAX_SUPPORT)
        start = x_train[rng.choice(len(x_train), size=size, replace=False)]
        support = free_support_barycenter([sources[int(g)] for g in groups], weights, start, max_iterations)
        transports = {g: exact_transport(sources[g], support, max_iterations) for g in sources}
        images = {g: lambda points, g=g: transports[g].transform(Xs=points) for g in sources}
        keep = {int(g): 0.0 for g in groups}
    out = np.empty_like(x)
    for g, rows in members.items():
        out[rows] = keep[g] * sources[g] + (1 - keep[g]) * images[g](sources[g])  # in-sample: the plan
        others = np.flatnonzero(outside & (z == g))
        if len(others):  # out-of-sample: nearest training row's image plus the offset
            out[others] = keep[g] * x[others] + (1 - keep[g]) * images[g](x[others])
    return out


def network_simplex_iterations(n: int, m: int, max_iterations: int | None) -> int:
    """The iteration cap for an n×m plan: ``max_iterations``, else max(100,000, n·m).

    The network simplex needs about 0.014–0.052·n·m iterations on random data (measured
    for n, m ≤ 5,000 in 2 to 64 dimensions), so POT's fixed default of 100,000 is reached
    near 2,000 points per side; n·m leaves a margin of about 20×.
    """
    return max_iterations or max(100_000, n * m)


def check_optimal(log: dict, n: int, m: int, iterations: int) -> None:
    """Raise unless POT's ``emd`` log says the plan is optimal (result code 1)."""
    if log.get("result_code") != 1:
        raise RuntimeError(
            f"exact optimal transport between {n} and {m} points did not reach the optimum within {iterations:,} "
            f"network-simplex iterations (POT: {log.get('warning') or 'result code ' + str(log.get('result_code'))}); "
            "raise WassersteinBarycenter's 'max_iterations' or use variant 'gaussian'")


def exact_transport(source: np.ndarray, target: np.ndarray, max_iterations: int | None = None) -> Any:
    """``ot.da.EMDTransport`` fitted from uniform ``source`` to uniform ``target``, checked optimal."""
    import ot

    iterations = network_simplex_iterations(len(source), len(target), max_iterations)
    transport = ot.da.EMDTransport(max_iter=iterations, log=True).fit(Xs=source, Xt=target)
    check_optimal(transport.log_, len(source), len(target), iterations)
    return transport


def free_support_barycenter(samples: list[np.ndarray], weights: np.ndarray, start: np.ndarray,
                            max_iterations: int | None = None, max_steps: int = 100, tolerance: float = 1e-7) -> np.ndarray:
    """Locations of the uniform W2 barycenter of ``samples`` (weights λ_z) on ``len(start)`` free points.

    The fixed point of ``ot.lp.free_support_barycenter`` (Cuturi & Doucet 2014, Algorithm 2
    with θ = 1): X ← Σ_z λ_z·diag(1/b)·G_z·X_z, G_z the optimal plan from X to group z,
    until the squared displacement is at most ``tolerance``. Written out because POT's
    function neither passes an iteration cap to its plans nor reports whether they or the
    fixed point converged; here every plan is checked optimal and a fixed point that does
    not settle within ``max_steps`` steps raises.
    """
    import ot

    support, b = start, ot.unif(len(start))
    for _ in range(max_steps):
        moved = np.zeros_like(support)
        for xz, weight in zip(samples, weights):
            iterations = network_simplex_iterations(len(support), len(xz), max_iterations)
            plan, log = ot.emd(b, ot.unif(len(xz)), ot.dist(support, xz), numItermax=iterations, log=True)
            check_optimal(log, len(support), len(xz), iterations)
            moved += weight * (plan @ xz) / b[:, None]
        shift = float(((moved - support) ** 2).sum())
        support = moved
        if shift <= tolerance:
            return support
    raise RuntimeError(f"the free-support barycenter did not settle within {max_steps} fixed-point steps "
                       f"(last squared displacement {shift:.3g})")


def _check_groups(z: np.ndarray, fitted: dict) -> None:
    unseen = sorted(set(np.unique(z).tolist()) - set(fitted))
    if unseen:
        raise ValueError(f"attribute value {unseen[0]} does not occur in the training split, so it has no map")


class WassersteinBarycenter(Unlearner):
    """Feature unlearning on the data (Xu & Strohmer, "Machine Unlearning via Information
    Theoretic Regularization", arXiv 2502.05684; the JMLR 2023 fair-representation barycenter).

    For each group z of the sensitive attribute Z (``attribute``, by default the
    one of ``FeatureForget``), X|Z=z is mapped onto the W2 barycenter of the
    group conditionals with weights λ_z = P(Z=z); the maps are fitted on the train
    partition and applied to every sample (train and test), so X̂ carries as
    little of Z as a transport map can remove while moving X as little as
    possible. Then a fresh model (``ctx.new_model()``) is trained on X̂ with the
    original's recipe and returned, and ``ctx.evaluation_partitions`` is set to
    the same partitions over X̂, so evaluators see the data as that model does.

    Variants: ``gaussian`` (closed form, Bures–Wasserstein barycenter and affine
    maps of ``ot.gaussian``; the paper's default) and ``exact`` (empirical OT:
    barycentric projection with McCann interpolation for two groups, free-support
    barycenter for more; see :func:`exact_barycenter_transform`). Every exact plan is solved
    to optimality: ``max_iterations`` caps the network-simplex iterations per plan (None:
    max(100,000, n·m) for an n×m plan, see :func:`network_simplex_iterations`), and a plan
    that does not reach the optimum within it raises instead of returning a feasible,
    sub-optimal map.

    Representation transported: the model's raw input tensor, flattened per
    sample (for images, the pixels as a C·H·W vector; tabular rows as they are),
    then reshaped back; the model's penultimate features are not used. Needs
    tensor inputs (not graphs).
    """

    tasks = TASKS
    contract_config: ClassVar[dict[str, Any]] = {"forget": {"class": "FeatureForget", "parameters": {"attribute": "group"}}}

    def __init__(self, variant: Literal["gaussian", "exact"] = "gaussian", attribute: str | None = None,
                 max_iterations: PositiveInt | None = None):
        self.variant = variant
        self.attribute = attribute
        self.max_iterations = max_iterations

    def attribute_name(self, partitions: Partitions) -> str:
        name = self.attribute or getattr(partitions.forget_spec, "attribute", None)
        if name is None:
            raise ValueError("no attribute to unlearn: set 'attribute' or use the FeatureForget forget spec")
        if name not in partitions.dataset.attributes:
            known = ", ".join(sorted(partitions.dataset.attributes)) or "none"
            raise ValueError(f"the data has no attribute {name!r} (attributes: {known})")
        return name

    def transform(self, partitions: Partitions, rng: np.random.Generator) -> Dataset:
        """The dataset with every sample moved onto the barycenter (maps fitted on train)."""
        dataset = partitions.dataset
        if dataset.kind != "tensor":
            raise ValueError(f"WassersteinBarycenter needs tensor inputs, got {dataset.kind} data")
        inputs = dataset.inputs
        x = inputs.detach().reshape(len(inputs), -1).double().cpu().numpy()
        z = dataset.attributes[self.attribute_name(partitions)].cpu().numpy()
        train = partitions["train"].cpu().numpy()
        if self.variant == "gaussian":
            moved = gaussian_barycenter_transform(x, z, train)
        else:
            moved = exact_barycenter_transform(x, z, train, rng, self.max_iterations)
        new_inputs = torch.as_tensor(moved, dtype=inputs.dtype, device=inputs.device).reshape(inputs.shape)
        return Dataset(new_inputs, dataset.targets, dataset.num_classes, dataset.attributes, dataset.splits,
                       f"{dataset.name}-barycenter-{self.variant}")

    def unlearn(self, model: nn.Module, ctx: UnlearningContext) -> nn.Module:
        partitions = ctx.partitions.with_dataset(self.transform(ctx.partitions, ctx.rng))
        fresh = train_model(ctx.new_model(), partitions, "train", ctx.recipe, ctx.generator)
        ctx.evaluation_partitions = partitions
        return fresh
