"""Ray Core tasks: the reference models of each seed are tasks whose results the seed's jobs take
as arguments, so Ray starts a job only once its references exist; results stream back to the
driver as tasks finish.

Install with ``pip install erasure[ray]`` (or ``requirements-ray.txt``). What crosses the wire:
the config (JSON data), each task (seed, label, parameters) and each result (rows of numbers
and strings, per-example arrays). Models are not sent: workers share them through the model cache,
which must then live on a filesystem every node sees (``cache.dir`` or ``$ERASURE_CACHE_DIR``).
"""
from __future__ import annotations

import logging
import sys
from typing import Any

from erasure.core.errors import ConfigError
from erasure.execution.executors import Executor, OnResult, dead_worker_rows
from erasure.execution.jobs import JobResult, Plan, Task
from erasure.execution.settings import Execution
from erasure.execution.worker import WorkerSetup, workspace_from_setup

log = logging.getLogger("erasure")
_WORKSPACES: dict[str, Any] = {}  # per worker process: one workspace per run


def execute_task(setup: WorkerSetup, task: Task, *_references: Any) -> JobResult:
    """Run one task in a Ray worker (the references are arguments only so Ray orders the tasks)."""
    import torch

    for path in reversed(setup.sys_path):
        if path not in sys.path:
            sys.path.insert(0, path)
    torch.set_num_threads(setup.threads)
    workspace = _WORKSPACES.get(setup.run_id)
    if workspace is None:
        _WORKSPACES.clear()  # one run at a time per worker: free the previous run's data
        workspace = _WORKSPACES[setup.run_id] = workspace_from_setup(setup)
    return workspace.execute(task)


class RayExecutor(Executor):
    """Ray Core tasks asking for ``cpus_per_job`` CPUs and ``gpus_per_job`` GPUs each (fractions
    share a GPU); connects to ``ray_address`` or starts a local Ray (shut down afterwards)."""

    name = "ray"

    def __init__(self, setup: WorkerSetup, settings: Execution, gpus_per_job: float, run: dict[str, Any]):
        try:
            import ray
        except ImportError as exc:
            raise ConfigError("the ray executor needs Ray: pip install 'erasure[ray]' (or -r requirements-ray.txt)",
                              "execution.executor") from exc
        self.ray = ray
        self.owns_ray = not ray.is_initialized()
        if self.owns_ray:
            ray.init(address=settings.ray_address, include_dashboard=False, configure_logging=False)
        self.setup = WorkerSetup(**{**setup.__dict__, "device": "cuda" if gpus_per_job > 0 else "cpu"})
        self.options = {"num_cpus": settings.cpus_per_job, "num_gpus": gpus_per_job,
                        "max_retries": settings.max_retries, "retry_exceptions": False}
        self.remote = ray.remote(execute_task)
        self.run_template = run

    def run(self, plan: Plan, on_result: OnResult) -> None:
        ray = self.ray
        setup = ray.put(self.setup)
        pending: dict[Any, Task] = {}
        for seed in plan.seeds:
            references = [self.remote.options(**self.options).remote(setup, t) for t in plan.references.get(seed, [])]
            pending.update(zip(references, plan.references.get(seed, [])))
            for job in plan.jobs[seed]:
                pending[self.remote.options(**self.options).remote(setup, job, *references)] = job
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                task = pending.pop(ref)
                try:
                    result = ray.get(ref)
                except Exception as exc:  # the worker died (after its retries), or Ray itself failed
                    log.warning("Ray task %s failed: %s", task.describe(), exc)
                    reason = f"the Ray task failed ({type(exc).__name__}): {' '.join(str(exc).split())[:300]}"
                    result = dead_worker_rows(task, self.run_template, reason)
                on_result(result)

    def close(self) -> None:
        if self.owns_ray and self.ray.is_initialized():
            self.ray.shutdown()
