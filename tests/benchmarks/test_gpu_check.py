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
    proc = subprocess.run([sys.executable, "-c", BLOCKER, str(SCRIPT), "--tiny", "--only", "memory,stream,stages,agree"],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "stream" in proc.stdout and "skipped: " in proc.stdout and "is not installed here" in proc.stdout
    assert "stages.evaluate_autoattack" in proc.stdout and "stages.train_pag_loss" in proc.stdout
    assert "memory.cpu_rss_step_mib.pag_all-C_frozen_cl" in proc.stdout  # benchmarks/bench_pag_step imports too


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
    # PAG-step memory: no CUDA here, so the CUDA row says n/a and the CPU's peak-RSS rise stands in
    assert res["memory.cuda_peak_mib"] is None and "n/a (no CUDA)" in proc.stdout
    mem = {k.split(".")[-1]: v for k, v in res.items() if k.startswith("memory.cpu_rss_step_mib.")}
    assert set(mem) == {f"pag_{c}_{bn}{cl}" for c in ("all-C", "K=3") for bn in ("batch", "frozen")
                        for cl in ("", "_cl")} | {"at-pgd-7", "pag_all-C_frozen_rep-rows"}
    for bn in ("batch", "frozen"):  # B*C repeated rows hold more than B*3 (tiny: about 3x)
        assert mem[f"pag_all-C_{bn}"] > 1.5 * mem[f"pag_K=3_{bn}"] > 0
    assert mem["pag_all-C_frozen"] < mem["pag_all-C_frozen_rep-rows"]  # no B*C forward activations held
    assert res["seconds.total"] < 120

    full = run_documented("python benchmarks/gpu_check.py --json gpu_check.json", cwd=tmp_path,
                          check=torch.cuda.is_available())
    if not torch.cuda.is_available():
        assert full.returncode == 2 and "gpu_check: device 'cuda': CUDA is not available" in full.stderr
        assert "Traceback" not in full.stderr


def test_rss_step_peak_sees_what_a_step_allocates():
    """The in-process peak-RSS rise gpu_check --tiny reports: a step that touches 64 MiB reads as about 64,
    one that allocates nothing as about 0, even after a larger allocation was freed (trim + peak reset)."""
    import importlib.util

    import torch

    # by path: the name "benchmarks" is this test package's inside the suite
    spec = importlib.util.spec_from_file_location("bench_pag_step", REPO / "benchmarks" / "bench_pag_step.py")
    bench = sys.modules["bench_pag_step"] = importlib.util.module_from_spec(spec)  # its dataclasses look it up
    spec.loader.exec_module(bench)
    rss_step_peak_mib = bench.rss_step_peak_mib
    big = torch.ones(64 * 2**20 // 4 * 3)  # 192 MiB, freed before the measurements
    del big
    touch = rss_step_peak_mib(lambda: torch.ones(64 * 2**20 // 4).sum())
    idle = rss_step_peak_mib(lambda: None)
    assert touch is not None and idle is not None
    assert 56 < touch < 80 and idle < 4


def test_pag_step_rows_name_their_batch_norm_statistics():
    """Every PAG row of bench_pag_step (and so of gpu_check's memory section) runs the pag_bn its name says:
    with `frozen` the default, a "batch" row that relied on the default would silently measure frozen."""
    import importlib.util
    from types import SimpleNamespace

    from pagstore.training.objectives import ObjectiveSpec

    spec = importlib.util.spec_from_file_location("bench_pag_step", REPO / "benchmarks" / "bench_pag_step.py")
    bench = sys.modules["bench_pag_step"] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    rows = [v for v in bench.variants(SimpleNamespace(k=3), has_bn=True) if v.spec.get("objective") == "pag"]
    named = {"batch": 0, "frozen": 0}
    for v in rows:
        bn = ObjectiveSpec(**v.spec).pag_bn
        for word in named:
            if f" {word}" in v.name:
                assert bn == word, f"{v.name!r} runs pag_bn {bn!r}"
                named[word] += 1
    assert named["batch"] >= 2 and named["frozen"] >= 2
