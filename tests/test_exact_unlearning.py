"""Exact, logged and certified unlearning (SISA, Amnesiac, CertifiedRemoval), their training
schemes, and deletion requests as a stream (configs/examples/deletion_stream.jsonc)."""
from __future__ import annotations

import copy
import csv
import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from conftest import make_workspace, tiny_config
from erasure.cli import main
from erasure.core.seeding import derive_seed
from erasure.evaluators.exact import exact_gap
from erasure.execution.experiment import UnlearnerEntry, build_experiment
from erasure.models.schemes.base import parameter_vector
from erasure.models.schemes.linear_head import epsilon_of, newton_removal
from erasure.models.schemes.sisa import SISATraining, delete, slice_epochs
from erasure.models.schemes.update_log import UpdateLogTraining, undo
from erasure.models.training import predict_logits
from erasure.report.data import load_run
from erasure.report.figures import deletion_stream
from erasure.unlearners.certified_removal import BudgetSpent, CertifiedRemoval, remove
from erasure.unlearners.sisa import SISA
from erasure.unlearners.amnesiac import Amnesiac

ROOT = Path(__file__).resolve().parent.parent
RECIPE = {"epochs": 4, "batch_size": 16, "optimizer": {"class": "Adam", "parameters": {"lr": 0.01}}}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A tiny experiment with two deletion requests of one sample each."""
    config = tiny_config(tmp_path_factory.mktemp("exact"), training=copy.deepcopy(RECIPE))
    config["data"]["forget"] = [{"class": "RandomForget", "parameters": {"count": 1}}] * 2
    workspace = make_workspace(config)
    return workspace, workspace.prepare_seeds()[0]


def test_sisa_unlearning_equals_sisa_from_scratch_and_retrains_only_the_touched_shard(world):
    workspace, state = world
    sisa = SISA(shards=4, slices=3)
    recipe = workspace.job_recipe(sisa)
    original = workspace.reference(state, "original", recipe)[0]
    parts = state.requests[0].unlearning
    # a sample in the last slice of shard 1: only that shard retrains, from the checkpoint before its last slice
    k = 1
    sample = original.order[original.slice_end(k, 1)].view(1)
    unlearned = copy.deepcopy(original)
    retrained, spent = delete(unlearned, sample, parts, recipe)
    assert retrained == [k]
    start, _ = unlearned.shard_range(k)
    assert spent == slice_epochs(recipe.epochs, 3)[2] * int(unlearned.present[start:unlearned.slice_end(k, 2)].sum())
    # the ensemble trained from scratch without the sample, with the same seeds, is the same
    scheme = SISATraining(shards=4, slices=3)
    scratch = scheme.prepare(lambda *names: workspace.make_model(parts.dataset, derive_seed(state.seed, "model-init", *names)),
                             parts, state.seed)
    scheme.fit(scratch, parts, parts["train"][parts["train"] != sample], recipe, torch.Generator())
    for a, b in zip(unlearned.state_dict().values(), scratch.state_dict().values()):
        assert torch.equal(a, b)
    assert exact_gap(predict_logits(unlearned, parts, "test"), predict_logits(scratch, parts, "test")) == 0
    assert not torch.equal(parameter_vector(unlearned.shards[k]), parameter_vector(original.shards[k]))
    for j in set(range(4)) - {k}:  # the other shards are untouched
        assert torch.equal(parameter_vector(unlearned.shards[j]), parameter_vector(original.shards[j]))
    # the vote: the class most shards predict (ties to the lowest index, as numpy's argmax of the summed votes)
    x, _ = next(parts.batches("test", 64))
    votes = sum(F.one_hot(m(x).argmax(1), parts.dataset.num_classes) for m in unlearned.shards)
    assert torch.equal(unlearned(x).argmax(1), votes.argmax(1))
    # the request's sample, through the runner: the gold model under the scheme is the unlearned ensemble
    unlearned = sisa.unlearn(copy.deepcopy(original), workspace.make_context(state, "SISA", recipe=recipe))
    gold = workspace.reference(state, "gold", recipe)[0]
    assert exact_gap(predict_logits(unlearned, parts, "test"), predict_logits(gold, parts, "test")) == 0
    for a, b in zip(unlearned.state_dict().values(), gold.state_dict().values()):
        assert torch.equal(a, b)


def hand_logged_training(model, parts, index, candidates, epochs, batch_size, lr, generator):
    """An independent loop: Adam steps over seeded shuffled batches; the parameter update and the
    members of every batch holding a candidate."""
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    log = []
    for _ in range(epochs):
        order = index[torch.randperm(len(index), generator=generator)]
        for start in range(0, len(order), batch_size):
            batch = order[start:start + batch_size]
            before = torch.cat([p.detach().flatten() for p in model.parameters()])
            optimizer.zero_grad()
            F.cross_entropy(model(parts.dataset.take(batch)), parts.dataset.targets[batch]).backward()
            optimizer.step()
            after = torch.cat([p.detach().flatten() for p in model.parameters()])
            if bool(torch.isin(batch, candidates).any()):
                log.append((after - before, set(batch.tolist())))
    return log


def test_amnesiac_subtracts_exactly_the_logged_updates_of_the_batches_that_held_the_samples(world):
    workspace, state = world
    amnesiac = Amnesiac()
    recipe = workspace.job_recipe(amnesiac)
    parts = state.partitions.before_forget()
    candidates = state.requests[-1].evaluation["forget"]
    make = lambda: workspace.make_model(parts.dataset, derive_seed(state.seed, "model-init"))  # noqa: E731
    logged = UpdateLogTraining().prepare(make, parts, state.seed)
    UpdateLogTraining().fit(logged, parts, parts["train"], recipe, torch.Generator().manual_seed(5), candidates)
    hand = make()
    log = hand_logged_training(hand, parts, parts["train"], candidates, 4, 16, 0.01, torch.Generator().manual_seed(5))
    assert len(log) == len(logged.updates) > 0
    for (update, members), kept, row in zip(log, logged.updates, logged.members):
        assert torch.allclose(update, kept, atol=1e-7)
        assert members == set(row[row >= 0].tolist())
    first = state.requests[0].unlearning["forget"]
    trained = parameter_vector(logged.model)
    undo(logged, first)
    expected = trained - sum(u for u, members in log if members & set(first.tolist()))
    assert torch.allclose(parameter_vector(logged.model), expected, atol=1e-6)
    # the second request takes back only updates not taken back already
    second = state.requests[1].unlearning["forget"]
    hit = undo(logged, second)
    both = [u for u, members in log if members & set(second.tolist()) and not members & set(first.tolist())]
    assert int(hit.sum()) == len(both)
    assert torch.allclose(parameter_vector(logged.model), expected - sum(both, torch.zeros_like(expected)), atol=1e-5)
    # a sample in no logged batch cannot be undone: refused, nothing changes
    absent = parts["train"][~torch.isin(parts["train"], logged.members)][:1]
    assert len(absent) == 1
    before = parameter_vector(logged.model)
    with pytest.raises(RuntimeError, match="no logged batch"):
        undo(logged, absent)
    assert torch.equal(parameter_vector(logged.model), before)
    # the log's memory is bounded: past max_log_mb, training stops with a message
    with pytest.raises(RuntimeError, match="update log is full"):
        UpdateLogTraining(log="all", max_log_mb=0.01).fit(UpdateLogTraining().prepare(make, parts, state.seed), parts,
                                                        parts["train"], recipe, torch.Generator().manual_seed(5))
    # through the runner: the job's rows say how many updates it undid
    rows = workspace.run_job(state, UnlearnerEntry("Amnesiac", amnesiac, {"class": "Amnesiac"}))
    assert [r["value"] for r in rows if r["metric"] == "undone_updates"][0] > 0
    assert all(r["status"] == "ok" for r in rows), rows


# ---- certified removal: the reference's formulas (facebookresearch/certified-removal, test_removal.py)
def ref_lr_grad(w, X, y, lam):
    z = torch.sigmoid(y * X.mv(w))
    return X.t().mv((z - 1) * y) + lam * X.size(0) * w


def ref_lr_hessian_inv(w, X, y, lam):
    z = torch.sigmoid(X.mv(w).mul_(y))
    D = z * (1 - z)
    H = X.t().mm(D.unsqueeze(1) * X)
    return (H + lam * X.size(0) * torch.eye(X.size(1), dtype=X.dtype)).inverse()


def ref_spectral_norm(A, num_iters=200):
    x = torch.ones(A.size(0), dtype=A.dtype)
    norm = 1
    for _ in range(num_iters):
        x = A.mv(x)
        norm = x.norm()
        x /= norm
    return math.sqrt(norm)


def test_certified_removal_newton_step_and_epsilon_match_the_reference():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(40, 5, generator=g, dtype=torch.float64)
    X /= X.norm(dim=1, keepdim=True)
    Y = torch.where(torch.rand(40, 3, generator=g) < 0.3, 1.0, -1.0).double()
    w0 = torch.randn(5, 3, generator=g, dtype=torch.float64) * 0.3
    lam, removes = 1e-2, 3
    # the reference's removal loop: point i removed from every class, X_rem = X[i+1:]
    w_ref, bound_ref = w0.clone(), torch.zeros(removes, dtype=torch.float64)
    K = X.t().mm(X)
    for i in range(removes):
        for k in range(3):
            X_rem, y_rem = X[i + 1:], Y[i + 1:, k]
            H_inv = ref_lr_hessian_inv(w_ref[:, k], X_rem, y_rem, lam)
            grad_i = ref_lr_grad(w_ref[:, k], X[i].unsqueeze(0), Y[i, k].unsqueeze(0), lam)
            if k == 0:
                K -= torch.outer(X[i], X[i])
            Delta = H_inv.mv(grad_i)
            w_ref[:, k] += Delta
            bound_ref[i] += Delta.norm() * X_rem.mv(Delta).norm() * ref_spectral_norm(K) / 4
    w, spent = remove(type("M", (), {"weight": w0})(), X[:removes], Y[:removes], X[removes:], Y[removes:], lam, "sample")
    assert torch.allclose(w, w_ref, atol=1e-10)
    assert spent == pytest.approx(float(bound_ref.sum()), rel=1e-6)
    # one step for a single point is the same step
    w1, b1 = newton_removal(w0[:, 0], X[:1], Y[:1, 0], X[1:], Y[1:, 0], lam)
    assert torch.allclose(w1, w0[:, 0] + ref_lr_hessian_inv(w0[:, 0], X[1:], Y[1:, 0], lam).mv(
        ref_lr_grad(w0[:, 0], X[:1], Y[:1, 0], lam)), atol=1e-12)
    # one Newton step for a whole request of one sample is the same step
    w_request, spent_request = remove(type("M", (), {"weight": w0})(), X[:1], Y[:1], X[1:], Y[1:], lam, "request")
    w_sample, spent_sample = remove(type("M", (), {"weight": w0})(), X[:1], Y[:1], X[1:], Y[1:], lam, "sample")
    assert torch.allclose(w_request, w_sample) and spent_request == pytest.approx(spent_sample)
    # (ε, δ): σ = c·ε'/ε with c = sqrt(2 ln(1.5/δ)) (Guo et al., Theorem 3)
    assert epsilon_of(0.5, 10.0, 1e-4) == pytest.approx(math.sqrt(2 * math.log(1.5e4)) * 0.5 / 10)


def test_certified_removal_accounts_for_epsilon_and_refuses_a_request_past_the_budget(world):
    workspace, state = world
    method = CertifiedRemoval(lam=0.01, steps=5, epsilon=1.0)
    recipe = workspace.job_recipe(method)
    model = copy.deepcopy(workspace.reference(state, "original", recipe)[0])
    epsilons = []
    for request in range(2):
        ctx = workspace.make_context(state, "CR", request=request, recipe=recipe)
        model = method.unlearn(model, ctx)
        epsilons.append(ctx.extras["trajectory"][0][2])
        assert ctx.extras["trajectory"][0][1] == "epsilon"
    assert 0 < epsilons[0] < epsilons[1] <= 1.0
    assert epsilons[1] == pytest.approx(epsilon_of(float(model.bound), 10.0, 1e-4))
    spent = CertifiedRemoval(lam=0.01, steps=5, epsilon=epsilons[1] * 1.0001)
    before = model.weight.detach().clone()
    with pytest.raises(BudgetSpent, match="refused"):
        spent.unlearn(model, workspace.make_context(state, "CR", request=0, recipe=recipe))
    assert torch.equal(model.weight, before), "a refused request leaves the model as it was"


def test_a_method_scheme_that_differs_from_the_configs_is_a_config_error(tmp_path, capsys):
    config = tiny_config(tmp_path, unlearners=[{"class": "SISA", "parameters": {"shards": 3}}],
                         training={**RECIPE, "scheme": {"class": "SISATraining", "parameters": {"shards": 4}}})
    path = tmp_path / "bad.jsonc"
    path.write_text(json.dumps(config))
    assert main([str(path), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "bad.jsonc" in err and "unlearners[0]" in err and "SISATraining" in err and "Traceback" not in err
    config["unlearners"][0]["parameters"]["shards"] = 4  # the same scheme: accepted
    build_experiment(config)


def test_scheme_models_are_cached_by_scheme(tmp_path):
    config = tiny_config(tmp_path, unlearners=[{"class": "SISA", "parameters": {"shards": 2}}, {"class": "Amnesiac"}],
                         training=RECIPE)
    config["data"]["forget"] = {"class": "RandomForget", "parameters": {"count": 2}}
    config["cache"] = {"enabled": True, "dir": str(tmp_path / "cache")}
    first = make_workspace(config, use_cache=True)
    state = first.prepare_seeds()[0]
    plain = first.reference(state, "original")[0]
    again = make_workspace(config, use_cache=True)
    for entry, kind in zip(first.exp.unlearners, ("ShardedEnsemble", "LoggedModel")):
        recipe = first.job_recipe(entry.unlearner)
        trained = first.reference(state, "original", recipe)[0]
        assert type(trained).__name__ == kind and type(plain).__name__ == "MLP"
        loaded = again.reference(again.prepare_seeds()[0], "original", recipe)[0]
        assert not any("trained" in e for e in again.events), again.events
        for (name, a), b in zip(trained.state_dict().items(), loaded.state_dict().values()):
            assert torch.equal(a, b), name
    assert len(trained.updates) > 0, "the update log (its length known only after training) comes back whole"


def test_the_deletion_stream_example_runs_with_a_row_per_request_and_method(tmp_path, capsys):
    out = tmp_path / "stream"
    assert main([str(ROOT / "configs/examples/deletion_stream.jsonc"), "--no-progress",
                 "--set", f"output.dir={out}"]) == 0, capsys.readouterr().err
    rows = list(csv.DictReader(open(out / "results.csv")))
    value = {(r["unlearner"], r["request"], r["metric"]): float(r["value"]) for r in rows if r["status"] == "ok"}
    methods = {"SISA", "Amnesiac", "CertifiedRemoval", "FineTuning", "NegGrad"}
    for method in methods:
        for request in ("0", "1", "2"):
            for metric in ("wall_seconds", "cpu_seconds", "retrain_fraction", "exact_gap", "accuracy_forget",
                           "accuracy_retain", "accuracy_test"):
                assert (method, request, metric) in value, (method, request, metric)
    for request in ("0", "1", "2"):
        assert value[("SISA", request, "exact_gap")] == 0
        assert value[("SISA", request, "retrain_fraction")] < 1
    epsilons = [value[("CertifiedRemoval", r, "epsilon")] for r in ("0", "1", "2")]
    assert 0 < epsilons[0] < epsilons[1] < epsilons[2] <= 2.0, "the example's budget"
    # the report's figure: cumulative cost against the gap to gold, a point per request and method
    figure = deletion_stream(load_run(out))
    gap, exact = figure.panels
    assert {t.name for t in gap.traces} >= methods
    sisa = next(t for t in exact.traces if t.name == "SISA")
    assert sisa.y == [0.0, 0.0, 0.0] and sisa.x == sorted(sisa.x) and len(set(sisa.x)) == 3
