"""`import pagstore` (and reading a store) stays light: no dvc, dask.distributed or pyautoattack."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).parents[2]
HEAVY = ("dvc", "distributed", "dask.distributed", "pyautoattack", "autoattack")


def _modules_after(code: str) -> set[str]:
    script = f"import sys, json\n{code}\nprint(json.dumps(sorted(sys.modules)))"
    res = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120,
                         check=True)
    return set(json.loads(res.stdout.strip().splitlines()[-1]))


def test_import_pagstore_is_light() -> None:
    mods = _modules_after("import pagstore")
    assert not {m for m in mods if m.split(".")[0] in HEAVY or m.startswith("dask.distributed")}
    assert "zarr" not in mods and "torch" not in mods  # public names resolve lazily


def test_reading_a_store_is_light() -> None:
    mods = _modules_after("import pagstore\nfrom pagstore import open_store, ZarrGradientDataset, stream_batches\n"
                          "import pagstore.cli, pagstore.verify")
    assert "zarr" in mods and "webdataset" in mods
    assert not {m for m in mods if m.split(".")[0] in HEAVY or m.startswith("dask.distributed")}


def test_public_names() -> None:
    import pagstore

    for name in ("open_store", "create_store", "GradientStore", "ZarrGradientDataset", "stream_batches"):
        assert callable(getattr(pagstore, name))
