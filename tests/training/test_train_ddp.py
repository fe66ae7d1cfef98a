"""torchrun with 2 gloo processes: ranks read disjoint shards and end with identical weights and BN statistics."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from train_fixtures import tiny_split, write_store

REPO = Path(__file__).resolve().parents[2]


def test_two_process_training_splits_shards(tmp_path) -> None:
    split = tiny_split(n=32)
    store = write_store(tmp_path / "sbg", split, samples_per_shard=8)  # 4 shards -> 2 per rank
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(Path(__file__).with_name("ddp_worker.py")), str(store), str(tmp_path / "out")]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    r0, r1 = (json.loads((tmp_path / "out" / f"rank{r}.json").read_text()) for r in (0, 1))
    assert r0["world"] == r1["world"] == 2
    assert r0["rows"] and r1["rows"]
    assert not set(r0["rows"]) & set(r1["rows"])
    assert sorted(r0["rows"] + r1["rows"]) == list(range(32))
    # whole shards per rank: rows of one 8-row shard never straddle ranks
    assert {r // 8 for r in r0["rows"]}.isdisjoint({r // 8 for r in r1["rows"]})
    assert max(abs(a - b) for a, b in zip(r0["params"], r1["params"])) < 1e-6
