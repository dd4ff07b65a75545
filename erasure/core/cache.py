"""On-disk cache of trained models, keyed by a content hash.

Each entry is ``<key>.pt`` (a ``state_dict`` saved with ``torch.save``) and
``<key>.json`` (the SHA-256 of the ``.pt`` file, the training timing and what
the key was made of). Entries load with ``weights_only=True``; an entry whose
checksum, metadata or contents do not match is reported, removed and rebuilt.

Several processes (a local worker pool, Ray workers on a shared filesystem) may
ask for the same key at once: the first takes ``<key>.lock`` and trains, the
others wait for the lock and then load what it wrote, so every model is trained
once. A cache directory that cannot be written (read-only, full) degrades to
"no cache" with a warning; the run goes on (a corrupt entry in a read-only
cache is skipped, and the model trained without caching).

Default location: ``$ERASURE_CACHE_DIR`` if set, else ``~/.cache/erasure/models``;
a config's ``"cache": {"dir": ...}`` overrides both.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from erasure.core.timing import Timing

log = logging.getLogger("erasure.cache")


def default_cache_dir() -> Path:
    env = os.environ.get("ERASURE_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "erasure" / "models"


def index_hash(index: torch.Tensor) -> str:
    """A short content hash of a tensor's bytes (an index set, a graph's edges), for cache keys."""
    return hashlib.sha256(index.detach().cpu().numpy().tobytes()).hexdigest()[:16]


def content_key(**parts: Any) -> str:
    """SHA-256 (first 24 hex digits) of the canonical JSON of ``parts``."""
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _atomic_write(path: Path, write: Callable[[Any], None], mode: str = "wb") -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _timing(record: Any) -> Timing:
    """The recorded timing (fields this version does not know are ignored)."""
    if not isinstance(record, dict):
        raise ValueError("metadata has no timing")
    return Timing.from_record(record)


class ModelCache:
    """Stores and restores trained models; ``enabled=False`` makes every lookup miss and saves nothing."""

    def __init__(self, directory: str | Path | None = None, enabled: bool = True):
        self.directory = Path(directory).expanduser() if directory else default_cache_dir()
        self.enabled = enabled

    def _paths(self, key: str) -> tuple[Path, Path]:
        return self.directory / f"{key}.pt", self.directory / f"{key}.json"

    def _disable(self, reason: str) -> None:
        log.warning("model cache %s is not usable (%s); going on without a cache", self.directory, reason)
        self.enabled = False

    def load(self, key: str, model: nn.Module) -> tuple[dict, Timing] | None:
        """Fill ``model`` from the entry ``key``; ``(metadata, timing)``, or None on a miss or a corrupt entry."""
        if not self.enabled:
            return None
        weights, meta_path = self._paths(key)
        if not meta_path.exists() and not meta_path.is_symlink():
            return None
        try:
            meta = json.loads(meta_path.read_text())
            if not isinstance(meta, dict) or not isinstance(meta.get("sha256"), str):
                raise ValueError("metadata has no checksum")
            timing = _timing(meta.get("timing"))
            if not weights.is_file():
                raise ValueError("the weights file is missing or not a file")
            if _sha256(weights) != meta["sha256"]:
                raise ValueError("checksum mismatch")
            state = torch.load(weights, map_location=next(model.parameters()).device, weights_only=True)
            model.load_state_dict(state)
        except Exception as exc:  # a truncated, edited or foreign entry
            log.warning("cache entry %s is corrupt (%s); removing it and rebuilding", weights, exc)
            try:
                _remove(weights)
                _remove(meta_path)
            except OSError as error:  # a read-only cache: skip the entry, train without caching
                self._disable(f"cannot remove its corrupt entry {weights.name}: {error.strerror or error}")
            return None
        return meta, timing

    def save(self, key: str, model: nn.Module, meta: dict) -> None:
        """Store ``model``; a directory that cannot be written switches the cache off with a warning."""
        if not self.enabled:
            return
        weights, meta_path = self._paths(key)
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            _atomic_write(weights, lambda f: torch.save(state, f))
            record = dict(meta, sha256=_sha256(weights))
            _atomic_write(meta_path, lambda f: f.write(json.dumps(record, indent=1, default=str)), mode="w")
        except OSError as exc:  # read-only, full, or not a directory
            try:
                _remove(weights)
            except OSError:
                pass
            self._disable(exc.strerror or str(exc))

    def _lock(self, key: str) -> Any:
        """An exclusive lock on ``key`` shared by every process using this directory (or None if it cannot be made)."""
        from filelock import FileLock

        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            lock = FileLock(str(self.directory / f"{key}.lock"))
            lock.acquire()
        except OSError as exc:
            self._disable(exc.strerror or str(exc))
            return None
        return lock

    def get_or_train(
        self, key: str, model: nn.Module, train: Callable[[nn.Module], Timing], meta: dict | None = None
    ) -> tuple[nn.Module, Timing, bool]:
        """Load ``model``'s weights from the cache, or ``train`` it (returning its timing) and store it.

        Returns ``(model, timing, hit)``; on a hit the timing is the one recorded when it was trained.
        While one process trains a key, the others wait for it and load its result.
        """
        found = self.load(key, model)
        if found is None and self.enabled:
            lock = self._lock(key)
            try:
                found = self.load(key, model)  # written while we waited?
                if found is None:
                    timing = train(model)
                    self.save(key, model, dict(meta or {}, timing=timing.as_dict()))
                    return model.eval(), timing, False
            finally:
                if lock is not None:
                    lock.release()
        if found is not None:
            return model.eval(), found[1], True
        return model.eval(), train(model), False
