"""benchmarks/gpu_check.py --tiny: the GPU check's own code on the CPU, so it cannot rot before a GPU run;
and its core runs without the packages the GPU machine lacks (zarr, numcodecs, dask, webdataset, ...)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "gpu_check.py"
RATIOS = ("ratio.pag_over_at.fp32", "ratio.pag_over_at.bf16", "ratio.bf16_over_fp32.pag", "ratio.k1_over_all.bf16",
          "ratio.k3_over_all.fp32", "ratio.sbg_over_bare", "ratio.diffusion_bf16_over_fp32",
          "ratio.stream_over_pag.w0")

# Run the script with these top-level packages made unimportable, as on the GPU machine.
BLOCKER = """
import importlib.abc, runpy, sys
BLOCKED = {"zarr", "numcodecs", "dask", "distributed", "webdataset", "pyautoattack", "dvc"}
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, Block())
sys.argv = [sys.argv[1], *sys.argv[2:]]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def test_gpu_check_core_runs_without_the_store_stack(tmp_path):
    proc = subprocess.run([sys.executable, "-c", BLOCKER, str(SCRIPT), "--tiny", "--only", "stream,stages,agree"],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "stream" in proc.stdout and "skipped: " in proc.stdout and "is not installed here" in proc.stdout
    assert "stages.evaluate_autoattack" in proc.stdout and "stages.train_pag_loss" in proc.stdout


def test_documented_gpu_check_commands_and_every_tiny_row(tmp_path):
    """Both commands of docs/devices.md as written: --tiny measures every row on the CPU; the full check
    runs where CUDA is, and elsewhere stops at once with one line and exit status 2."""
    import torch

    from tests.helpers.doc_commands import run_documented

    (tmp_path / "benchmarks").symlink_to(REPO / "benchmarks")  # the docs run it from a checkout's root
    proc = run_documented("python benchmarks/gpu_check.py --tiny --json gpu_check.json", cwd=tmp_path)
    res = json.loads((tmp_path / "gpu_check.json").read_text())
    assert res["device"] == "cpu" and res["failures"] == []
    for key in RATIOS:
        assert math.isfinite(res[key]) and res[key] > 0, key
    stages = {k: v for k, v in res.items() if k.startswith("stages.") and isinstance(v, float)}
    assert {"stages.train_diffusion_loss", "stages.distill_sbg_grad_norm", "stages.train_pag_loss",
            "stages.evaluate_pgd_accuracy", "stages.evaluate_autoattack_accuracy", "stages.toy_pag_loss"} <= set(stages)
    assert all(math.isfinite(v) for v in stages.values())
    assert res["agree.pag_loss_rel_diff"] == 0.0  # --tiny compares the CPU with itself
    assert res["estimate.hours.total"] > 0 and "ESTIMATE" in proc.stdout
    assert res["seconds.total"] < 120

    full = run_documented("python benchmarks/gpu_check.py --json gpu_check.json", cwd=tmp_path,
                          check=torch.cuda.is_available())
    if not torch.cuda.is_available():
        assert full.returncode == 2 and "gpu_check: device 'cuda': CUDA is not available" in full.stderr
        assert "Traceback" not in full.stderr
