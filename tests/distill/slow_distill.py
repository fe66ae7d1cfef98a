"""Subprocess entry for the interruption test: distill SBG slowly so the test can SIGKILL it mid-run.

Usage: python -m tests.distill.slow_distill <train.npz> <checkpoint.pt> <store> <sleep seconds>
"""

from __future__ import annotations

import sys
import time

import torch

from pagstore.data.prepared import load_split
from pagstore.distill import SourceRecipe, distill


class SlowRecipe(SourceRecipe):
    """Same source, but every compute call sleeps first (the only difference from the normal run)."""

    def __call__(self):  # type: ignore[override]
        source = super().__call__()
        compute = source.compute
        pause = float(sys.argv[4])

        def slow(*args):
            time.sleep(pause)
            return compute(*args)

        source.compute = slow
        return source


if __name__ == "__main__":
    torch.set_num_threads(1)
    train, ckpt, store = sys.argv[1:4]
    recipe = SlowRecipe("sbg", {"t": 20, "forward_batch": 2}, train, seed=1, checkpoint=ckpt)
    distill(store, load_split(train), recipe, samples_per_shard=2, batch_size=2, workers=1)
