"""Cache link types with ``persist: true`` and atomic saves, measured with real DVC (issue 17).

A stage keeps a persisted 4 MiB checkpoint, reads it and saves a new version atomically (temp + rename),
as train_diffusion does. For each cache type we check that (1) after a later save the cache object of
the earlier version still has its hash (not corrupted through a link) and (2) whether the workspace file
is a second copy of the cache's bytes. The project's ``.dvc/config`` must pick a type that passes both.
"""

from __future__ import annotations

import configparser
import hashlib
import os
from pathlib import Path

import pytest
import yaml

from tests.helpers.dvc_project import REPO, dvc, run

DVC_YAML = {"stages": {"ckpt": {
    "cmd": "python -m tests.dvc_cache.persist_stage models/ckpt.bin ${version}",
    "params": ["version"],
    "outs": [{"models/ckpt.bin": {"persist": True}}]}}}


def _project(tmp_path: Path, cache_type: str) -> Path:
    root = tmp_path / "p"
    (root / "tests" / "dvc_cache").mkdir(parents=True)
    for name in ("__init__.py", "persist_stage.py"):
        (root / "tests" / "dvc_cache" / name).write_bytes((REPO / "tests" / "dvc_cache" / name).read_bytes())
    (root / "tests" / "__init__.py").write_text("")
    (root / "dvc.yaml").write_text(yaml.safe_dump(DVC_YAML))
    (root / "params.yaml").write_text("version: 1\n")
    run(["git", "init", "-q"], cwd=root)
    dvc(root, "init", "-q")
    dvc(root, "config", "core.analytics", "false")
    dvc(root, "config", "cache.type", cache_type)
    run(["git", "add", "-A"], cwd=root)
    run(["git", "commit", "-qm", "init"], cwd=root)
    return root


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _cache_file(root: Path, md5: str) -> Path:
    return root / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]


def _shares_storage(workspace: Path, cached: Path) -> bool:
    """True when the workspace file is the cache's bytes (a hard link or a symlink), not a second copy."""
    if workspace.is_symlink():
        return workspace.resolve() == cached.resolve()
    return os.stat(workspace).st_ino == os.stat(cached).st_ino


def measure(tmp_path: Path, cache_type: str) -> dict[str, bool]:
    """Two runs (version 1, then a resumed version 2); what happened to the cache and the workspace."""
    root = _project(tmp_path, cache_type)
    dvc(root, "repro")
    ckpt = root / "models" / "ckpt.bin"
    v1 = _md5(ckpt)
    (root / "params.yaml").write_text("version: 2\n")
    dvc(root, "repro")
    v2 = _md5(ckpt)
    return {"changed": v1 != v2,
            "v1_intact": _md5(_cache_file(root, v1)) == v1,
            "v2_cached": _md5(_cache_file(root, v2)) == v2,
            "no_second_copy": _shares_storage(ckpt, _cache_file(root, v2)),
            "status_clean": "changed" not in dvc(root, "status").stdout}


@pytest.mark.parametrize("cache_type", ["hardlink", "symlink"])
def test_links_survive_atomic_saves_without_a_second_copy(tmp_path: Path, cache_type: str) -> None:
    assert measure(tmp_path, cache_type) == {"changed": True, "v1_intact": True, "v2_cached": True,
                                             "no_second_copy": True, "status_clean": True}


def test_copy_keeps_a_second_copy(tmp_path: Path) -> None:
    """DVC's fallback on file systems without reflinks (ext4, overlayfs): correct, but every save is doubled."""
    assert measure(tmp_path, "copy") == {"changed": True, "v1_intact": True, "v2_cached": True,
                                         "no_second_copy": False, "status_clean": True}


def test_reflink_where_the_file_system_has_it(tmp_path: Path) -> None:
    """ext4 and overlayfs (this machine) have no reflinks: DVC refuses the type, so it is only tried first."""
    try:
        result = measure(tmp_path, "reflink")
    except AssertionError as exc:
        if "No possible cache link types" in str(exc):
            pytest.skip("this file system has no reflinks")
        raise
    assert result["v1_intact"] and result["v2_cached"] and result["status_clean"]


def test_project_config_uses_the_link_types_that_passed():
    config = configparser.ConfigParser()
    config.read(REPO / ".dvc" / "config")
    types = [t.strip() for t in config.get("cache", "type", fallback="reflink,copy").split(",")]
    # A copy-on-write clone where the file system has it, else a hard link; a copy only as the last resort
    # (a cache on another device), since it doubles every save of a large checkpoint.
    assert types[:2] == ["reflink", "hardlink"] and types[2:] in ([], ["copy"]), types
