"""A no-op ``dvc repro`` of the default pipeline's full stage graph (all methods) takes under 5 s.

Running every stage for real takes minutes, and DVC's no-op cost does not depend on what the stages
computed, only on how many stages, deps and files it checks. So the test lays small stand-in files for
every output (and for the files stages read inside them), records them with ``dvc commit``, and times
the ``dvc repro`` that finds nothing to do.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.helpers.dvc_project import dvc, dvc_project, run

LIMIT_S = 5.0


def _stand_ins(root: Path) -> int:
    """Write a small file for every stage output (a file inside it for folder outputs); return the count."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        stages = list(repo.index.stages)
        outs = {Path(out.fs_path) for stage in stages for out in stage.outs}
        deps = {Path(dep.fs_path) for stage in stages for dep in stage.deps}
    for dep in deps:  # a file a stage reads inside another stage's folder output (data/prepared/train.npz)
        if not dep.exists() and any(out in dep.parents for out in outs):
            dep.parent.mkdir(parents=True, exist_ok=True)
            dep.write_bytes(b"stand-in\n")
    for out in outs:
        if out.exists():
            continue
        if out.suffix:  # a file output: checkpoint.pt, results.md, x.json
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(b"{}\n" if out.suffix == ".json" else b"stand-in\n")
        else:
            out.mkdir(parents=True)
            (out / "README").write_bytes(b"stand-in\n")
    return len(stages)


def test_noop_repro_of_the_full_graph_is_under_5_s(tmp_path: Path) -> None:
    root = dvc_project(tmp_path)
    num_stages = _stand_ins(root)
    assert num_stages >= 20  # prepare ... report with every default method
    dvc(root, "commit", "-f", "-q")
    run(["git", "add", "-A"], cwd=root)
    run(["git", "commit", "-qm", "stand-in outputs"], cwd=root)
    dvc(root, "status")  # warms DVC's file-hash state, as any earlier command in a session does
    times = []
    for _ in range(2):  # the better of two: the CPU here is shared, and a spike is not DVC's cost
        start = time.perf_counter()
        out = dvc(root, "repro")
        times.append(time.perf_counter() - start)
        assert "Running stage" not in out.stdout, out.stdout
    load = os.getloadavg()[0]
    print(f"no-op dvc repro, {num_stages} stages: {', '.join(f'{t:.2f}' for t in times)} s at load {load:.1f}")
    if min(times) >= LIMIT_S and load > (os.cpu_count() or 1):
        # DVC's cost is CPU time (it parses pipeline.yaml once per stage); on an oversubscribed CPU the wall
        # time says more about the other jobs than about the pipeline.
        pytest.skip(f"CPU oversubscribed (load {load:.1f} on {os.cpu_count()} cores): {min(times):.2f} s")
    assert min(times) < LIMIT_S
