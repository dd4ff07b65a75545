"""Result files that stay where they belong.

- :func:`atomic_write_text` / :func:`atomic_write_bytes`: a whole file written through a temporary file and ``os.replace``,
  never through a symbolic link.
- :func:`escape_cell` / :func:`unescape_cell`: text cells a spreadsheet would run as a formula
  get a leading ``'`` (OWASP's advice for CSV injection), undone when erasure reads them back.
- :func:`open_append`: a file appended to, never through a symbolic link.
- :func:`lock_output_dir`: one run at a time per output directory.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from erasure.core.errors import ConfigError

LOCK_NAME = ".erasure.lock"
#: First characters that make a spreadsheet read a cell as a formula (and the escape mark itself).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "'")


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` in one step (:func:`atomic_write_bytes`)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` in one step: a temporary file beside it, fsync, ``os.replace``.

    A reader sees the old file or the new one, never half of it. ``path`` may not be a
    symbolic link or a directory (a planted link must not redirect the write); the temporary
    file is created exclusively, so it cannot be a link either.
    """
    path = Path(path)
    if path.is_symlink():
        raise ConfigError(f"{path} is a symbolic link; refusing to write through it "
                          "(remove the link or choose another output.dir)", "output.dir")
    if path.is_dir():
        raise ConfigError(f"{path} is a directory; cannot write a file there", "output.dir")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def open_append(path: str | Path) -> Any:
    """Open ``path`` to append text (created if absent), never through a symbolic link."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
    except OSError as exc:
        if path.is_symlink():
            raise ConfigError(f"{path} is a symbolic link; refusing to write through it "
                              "(remove the link or choose another output.dir)", "output.dir") from exc
        raise
    return os.fdopen(fd, "a", newline="", encoding="utf-8")


def escape_cell(value: Any) -> Any:
    """A text cell starting like a formula (``=``, ``+``, ``-``, ``@``, tab, CR) or with the escape
    mark ``'`` gets one more ``'`` in front; numbers are left alone (so ``-0.5`` stays a number)."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def unescape_cell(text: str) -> str:
    """Undo :func:`escape_cell` on a cell read back from a CSV file."""
    return text[1:] if text.startswith("'") else text


def lock_output_dir(directory: str | Path) -> Any:
    """Take the lock ``directory/.erasure.lock`` that keeps a second run out of an output directory.

    Held by another process (or thread), it is refused at once with a :class:`ConfigError`.
    Returns filelock's proxy: ``with lock_output_dir(d): ...`` holds it for a block (a driver, for
    a whole run), ``proxy.lock.release()`` lets it go. Within one thread it is reentrant, so
    :class:`~erasure.results.writers.CSVWriter` takes it again from ``open`` to ``close`` while a
    driver holds it. The operating system drops it when the process dies: no stale lock after a kill.
    """
    from filelock import FileLock, Timeout

    Path(directory).mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(Path(directory).resolve() / LOCK_NAME), timeout=0, is_singleton=True)
    try:
        return lock.acquire()
    except Timeout:
        raise ConfigError(f"another erasure run is writing to {directory} (it holds {lock.lock_file}); "
                          "wait for it to finish or choose another output.dir", "output.dir") from None
