"""Bytecode caches do not change a directory dependency's hash: with the project's .dvcignore, a stage that
depends on a code folder stays up to date after Python writes ``__pycache__`` there (without it, DVC hashes
the .pyc files and a clone with or without them sees the dependency as changed)."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from tests.helpers.dvc_project import REPO, dvc, run


def _project(tmp_path: Path, with_ignore: bool) -> Path:
    root = tmp_path / ("with" if with_ignore else "without")
    (root / "code").mkdir(parents=True)
    (root / "code" / "mod.py").write_text("X = 1\n")
    (root / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"s": {
        "cmd": "python -c \"open('out.txt', 'w').write('ok')\"", "deps": ["code"], "outs": ["out.txt"]}}}))
    run(["git", "init", "-q"], cwd=root)
    dvc(root, "init", "-q")
    if with_ignore:
        shutil.copy2(REPO / ".dvcignore", root / ".dvcignore")
    dvc(root, "repro")
    cache = root / "code" / "__pycache__"
    cache.mkdir()
    (cache / "mod.cpython-311.pyc").write_bytes(b"\x00bytecode")
    return root


def test_pycache_does_not_change_a_directory_dependency(tmp_path: Path) -> None:
    assert "up to date" in dvc(_project(tmp_path, with_ignore=True), "status").stdout
    # The control: without the ignore rules the same .pyc file makes the stage look changed.
    assert "changed deps" in dvc(_project(tmp_path, with_ignore=False), "status").stdout
