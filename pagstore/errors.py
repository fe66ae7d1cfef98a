"""One line, not a traceback, for configuration and data errors of every stage and of the CLI.

The project's own error classes (``ConfigError``, ``RawDataError``, ``PreparedDataError``, ``StoreError``,
``SpecError``, ``CheckpointError``, ...) are all ``ValueError`` subclasses defined in ``pagstore``; their
messages already name the file, key or value and what was expected, and a 20-line traceback would only bury
that. Anything else (a bug) keeps its traceback. ``PAGSTORE_DEBUG=1`` keeps it for every error.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")

DEBUG_ENV = "PAGSTORE_DEBUG"


def is_user_error(exc: BaseException) -> bool:
    """Whether ``exc`` is a configuration / data error of this project (a pagstore ``ValueError`` subclass)."""
    return isinstance(exc, ValueError) and type(exc).__module__.split(".")[0] == "pagstore"


def one_line(prog: str, exc: BaseException) -> str:
    """``"<prog>: <message>"`` on one line (multi-line messages, e.g. YAML parse errors, are joined)."""
    return f"{prog}: " + " ".join(str(exc).split())


def user_errors(prog: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorate a ``main``: a pagstore configuration / data error exits 1 with one line on stderr.

    Set ``PAGSTORE_DEBUG=1`` to get the traceback instead.
    """

    def wrap(fn: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(fn)
        def main(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return fn(*args, **kwargs)
            except ValueError as exc:
                if not is_user_error(exc) or os.environ.get(DEBUG_ENV, "") not in ("", "0"):
                    raise
                raise SystemExit(one_line(prog, exc)) from None

        return main

    return wrap
