"""User-facing errors. The CLI turns a :class:`ConfigError` into exit code 2 and one message."""
from __future__ import annotations

import contextlib
import difflib
import signal
import threading
from typing import Any, Callable, Iterable, Iterator


class ConfigError(Exception):
    """A config that cannot be run: names the file, the JSON path and what was expected."""

    def __init__(self, message: str, path: str = "", file: str | None = None):
        super().__init__(message)
        self.message = message
        self.path = path
        self.file = file

    def __str__(self) -> str:
        where = ": ".join(part for part in (self.file, self.path) if part)
        return f"{where}: {self.message}" if where else self.message

    def in_file(self, file: str) -> "ConfigError":
        """Attach the config file's name, keeping the path and message."""
        if self.file is None:
            self.file = file
        return self


def closest(word: str, names: Iterable[str], n: int = 3, cutoff: float = 0.5) -> list[str]:
    """The names closest to a mistyped ``word`` for a "did you mean" hint: those equal to it but
    for case first (``Adamw`` -> ``AdamW``), then ``difflib``'s closest, compared case-blind."""
    names = list(dict.fromkeys(names))
    same = [name for name in names if name.lower() == word.lower()]
    by_lower: dict[str, list[str]] = {}
    for name in names:
        by_lower.setdefault(name.lower(), []).append(name)
    near = [name for match in difflib.get_close_matches(word.lower(), list(by_lower), n=n, cutoff=cutoff)
            for name in by_lower[match]]
    return list(dict.fromkeys([*same, *near]))[:n]


def join_path(path: str, key: str | int) -> str:
    """``join_path("unlearners[2]", "epochs") == "unlearners[2].epochs"``; ints become ``[i]``."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


@contextlib.contextmanager
def watch_interrupts() -> Iterator[Callable[[], bool]]:
    """Yield a function that tells whether a real Ctrl-C (SIGINT) arrived within the block.

    It tells a ``KeyboardInterrupt`` that code raised itself from the user's. Where SIGINT is
    ignored (a job started in the background by a shell: ``cmd &``, nohup, many batch systems) no
    Ctrl-C can arrive, so none counts as real; where no handler can be installed (outside the main
    thread, or under another SIGINT handler) every interrupt counts as real.
    """
    received: list[int] = []
    current = signal.getsignal(signal.SIGINT)
    installed = threading.current_thread() is threading.main_thread() and current is signal.default_int_handler
    known = installed or current is signal.SIG_IGN  # we can tell a real Ctrl-C from a raised one

    def handler(signum: int, frame: Any) -> None:
        received.append(signum)
        signal.default_int_handler(signum, frame)

    if installed:
        signal.signal(signal.SIGINT, handler)
    try:
        yield lambda: bool(received) or not known
    finally:
        if installed:
            signal.signal(signal.SIGINT, signal.default_int_handler)
