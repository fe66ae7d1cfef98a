"""Distillation: fill a gradient store from a gradient source, shard by shard, in parallel with dask.

``distill(store_path, split, SourceRecipe(...), ...)`` creates (or resumes) the store; see
``pagstore.distill.engine``. ``dask.distributed`` is imported only when a cluster scheduler is used.
"""

from pagstore.distill.engine import DistillError, DistillResult, distill
from pagstore.distill.recipe import SourceRecipe

__all__ = ["DistillError", "DistillResult", "SourceRecipe", "distill"]
