"""A local distillation keeps dask.distributed out of the process (``import pagstore`` stays light)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from pagstore.store import open_store

REPO = Path(__file__).resolve().parents[2]


def test_local_distillation_never_imports_distributed(tmp_path):
    code = f"""
import sys
import pagstore, pagstore.sources, pagstore.distill
from tests.sources.sources_fixtures import tiny_vectors
split = tiny_vectors()
split.save({str(tmp_path / 'train.npz')!r})
recipe = pagstore.distill.SourceRecipe('oi', {{}}, {str(tmp_path / 'train.npz')!r})
pagstore.distill.distill({str(tmp_path / 's')!r}, split, recipe)
assert 'distributed' not in sys.modules, 'dask.distributed was imported'
"""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert open_store(tmp_path / "s").is_complete()
