"""Seeds run in worker processes give the same numbers as seeds run in turn (one torch thread each)."""

from __future__ import annotations

import pytest

from pagstore.config import from_dict
from pagstore.data.registry import read_dataset
from pagstore.toy.config import ToyParams
from pagstore.toy.experiment import run_toy


@pytest.mark.slow  # ~10 s of CPU, mostly two spawned interpreters importing torch, zarr and dask
def test_results_do_not_depend_on_workers(tmp_path):
    data = {"seed": 0, "points_per_mode": 20, "test_size": 12}
    params = from_dict(ToyParams, {"data": data, "nn": {"subset_size": 0}, "epochs": 2, "seeds": [0, 1],
                                   "grid": {"angles": 8, "radii": 2}}, where="toy")
    splits = read_dataset("toy2d", data)
    runs = [run_toy(params, splits["train"], splits["test"], tmp_path / f"w{w}", workers=w) for w in (1, 2)]
    for name in ("vanilla", "nn-pag"):
        for key in ("clean_per_seed", "robust_per_seed", "robust_grid_per_seed", "train_loss_per_seed"):
            assert runs[0].metrics[name][key] == runs[1].metrics[name][key], (name, key)
    w1, w2 = (r.models["nn-pag"][1].state_dict() for r in runs)
    assert all((w1[k] == w2[k]).all() for k in w1)
