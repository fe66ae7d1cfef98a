"""Run the real DVC pipeline in a throw-away git repository.

``dvc_project`` copies this checkout's ``dvc.yaml``, ``pipeline.yaml`` (deep-merged with test overrides
that shrink the work), ``stages/``, ``pagstore/``, ``.dvc/config`` and ``.dvc/plots/`` into ``tmp_path``, makes it a git + DVC repo,
and returns its path; ``dvc`` runs a DVC command there with the test interpreter's ``python`` first on
PATH, so stage commands (``python -m stages.<name>``) use the installed package.
"""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Return ``base`` updated recursively by ``override`` (mappings merge, other values replace)."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def dvc_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["DVC_NO_ANALYTICS"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    env.setdefault("OMP_NUM_THREADS", "1")
    env["GIT_AUTHOR_NAME"] = env["GIT_COMMITTER_NAME"] = "test"
    env["GIT_AUTHOR_EMAIL"] = env["GIT_COMMITTER_EMAIL"] = "test@example.invalid"
    return env


def run(cmd: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, cwd=cwd, env=dvc_env(), capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def dvc(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``dvc <args>`` in ``cwd`` with the test interpreter's environment."""
    return run([str(Path(sys.executable).parent / "dvc"), *args], cwd=cwd, check=check)


def dvc_project(tmp_path: Path, overrides: dict[str, Any] | None = None) -> Path:
    """Create a git + DVC repo in ``tmp_path / "project"`` holding this pipeline with ``overrides`` applied."""
    root = tmp_path / "project"
    root.mkdir()
    shutil.copy2(REPO / "dvc.yaml", root / "dvc.yaml")
    # Stage deps name library folders (e.g. pagstore/data), so the package source must be there too.
    for package in ("stages", "pagstore"):
        shutil.copytree(REPO / package, root / package, ignore=shutil.ignore_patterns("__pycache__"))
    # data/raw (with its README, as in a clone) is a dependency of prepare.
    (root / "data" / "raw").mkdir(parents=True)
    shutil.copy2(REPO / "data" / "raw" / "README.md", root / "data" / "raw" / "README.md")
    params = yaml.safe_load((REPO / "pipeline.yaml").read_text())
    params = deep_merge(params, overrides or {})
    (root / "pipeline.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(["git", "init", "-q"], cwd=root)
    dvc(root, "init", "-q")
    # The project's DVC settings (cache link type) and plot templates (.dvc/plots) come along.
    shutil.copy2(REPO / ".dvc" / "config", root / ".dvc" / "config")
    shutil.copy2(REPO / ".dvcignore", root / ".dvcignore")
    if (REPO / ".dvc" / "plots").is_dir():
        shutil.copytree(REPO / ".dvc" / "plots", root / ".dvc" / "plots")
    dvc(root, "config", "core.analytics", "false")
    run(["git", "add", "-A"], cwd=root)
    run(["git", "commit", "-qm", "test pipeline"], cwd=root)
    return root
