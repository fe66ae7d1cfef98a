"""Dataset readers, dataset profiles and the prepared-split artifact.

The readers (and scikit-learn / torch behind them) load on first use of a reader-related name, so code
that only needs :class:`PreparedSplit` stays cheap to import.
"""

from __future__ import annotations

import importlib
from typing import Any

from pagstore.data.prepared import PreparedDataError, PreparedSplit, load_split
from pagstore.data.raw import RawDataError

_LAZY = {
    "DatasetProfile": "pagstore.data.profile",
    "EvalBudget": "pagstore.data.profile",
    "load_profile": "pagstore.data.profile",
    "READERS": "pagstore.data.registry",
    "get_reader": "pagstore.data.registry",
    "read_dataset": "pagstore.data.registry",
}

__all__ = ["PreparedDataError", "PreparedSplit", "RawDataError", "load_split", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'pagstore.data' has no attribute {name!r}")
