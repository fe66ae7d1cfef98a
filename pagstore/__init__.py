"""pagstore: Perceptually Aligned Gradients as a staged pipeline around sharded gradient stores.

The public API is small and import-light: names are resolved lazily on first use, so ``import pagstore``
pulls in neither zarr nor torch, and reading a store never imports dvc, dask.distributed or pyautoattack.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it
_LAZY = {
    "open_store": "pagstore.store",
    "create_store": "pagstore.store",
    "GradientStore": "pagstore.store",
    "StoreError": "pagstore.store",
    "verify_store": "pagstore.verify",
    "StoreSpec": "pagstore.spec",
    "SpecError": "pagstore.spec",
    "export_webdataset": "pagstore.shards",
    "ZarrGradientDataset": "pagstore.loaders",
    "stream_batches": "pagstore.loaders",
    "zarr_stream_batches": "pagstore.zarr_stream",
    "pag_alignment_loss": "pagstore.loss",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value  # cache: later lookups skip __getattr__
        return value
    raise AttributeError(f"module 'pagstore' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
