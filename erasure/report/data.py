"""One results file or directory, summarised once for every table and figure of the report."""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from erasure.results.directory import Artifact, Results, load_results, read_artifacts
from erasure.results.summary import (GOLD_GAP, ROLE_METHOD, Seeds, final_values, seed_gold_gaps, summarize,
                                     trajectory_table)
from erasure.results.targets import Target


@dataclass
class RunSummary:
    """The summary records of one run and the per-seed values behind them."""

    results: Results
    title: str
    records: list[dict[str, Any]]
    artifacts: list[Artifact] = field(default_factory=list)

    @property
    def reference(self) -> str:
        return self.results.reference

    @property
    def identity(self) -> str:
        return self.results.identity

    @property
    def targets(self) -> dict[str, Target]:
        return self.results.targets

    @cached_property
    def _by_key(self) -> dict[tuple[str, str], dict[str, Any]]:
        return {(r["unlearner"], r["metric"]): r for r in self.records}

    @cached_property
    def unlearners(self) -> list[str]:
        """Labels in table order: the references, then by rank."""
        return list(dict.fromkeys(r["unlearner"] for r in self.records))

    @cached_property
    def metrics(self) -> list[str]:
        return list(dict.fromkeys(r["metric"] for r in self.records))

    def record(self, unlearner: str, metric: str) -> dict[str, Any] | None:
        return self._by_key.get((unlearner, metric))

    def role(self, unlearner: str) -> str:
        r = next((r for r in self.records if r["unlearner"] == unlearner), None)
        return r["role"] if r else ROLE_METHOD

    def self_check(self, metric: str) -> str:
        return next((r.get("self_check", "") for r in self.records if r["metric"] == metric), "")

    @cached_property
    def _grouped(self) -> dict[tuple[str, str], Seeds]:
        grouped = dict(final_values(self.results.rows))
        for u, gaps in seed_gold_gaps(grouped, self.reference, self.targets, self.results.ranking).items():
            grouped[(u, GOLD_GAP)] = gaps
        return grouped

    def seed_values(self, metric: str) -> dict[str, Seeds]:
        """label → seed → value of ``metric`` (``gold_gap`` included)."""
        return {u: v for (u, m), v in self._grouped.items() if m == metric and v}

    def trajectories(self) -> dict[str, dict[str, dict[int, list[float]]]]:
        """label → metric → step → values over seeds (the rows with a step)."""
        return trajectory_table(self.results.rows)

    @property
    def seeds(self) -> int:
        return max((r["n"] for r in self.records), default=0)

    @cached_property
    def tuning(self) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """The tuning protocol's trials (``tuning/trials.csv``) and chosen parameters (``tuning/best.json``), if it ran."""
        import csv
        import json

        folder = self.results.directory / "tuning"
        if not (folder / "trials.csv").is_file():
            return [], {}
        with open(folder / "trials.csv", newline="") as f:
            trials = list(csv.DictReader(f))
        best = json.loads((folder / "best.json").read_text()) if (folder / "best.json").is_file() else {}
        return trials, best


def load_run(path: str | Path, title: str | None = None, reference: str | None = None,
                  identity: str | None = None) -> RunSummary:
    """Load and summarise one results file or directory (see :func:`erasure.results.directory.load_results`)."""
    results = load_results(path, reference, identity)
    records = summarize(results.rows, results.reference, results.targets, results.identity, results.ranking)
    known = set(r["unlearner"] for r in records)
    artifacts = [a for a in read_artifacts(results.directory) if a.unlearner in known or not known]
    return RunSummary(results, title or results.name, records, artifacts)
