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


STORE_MODULES = ("spec", "store_checks", "codec", "classes", "store", "shards", "verify", "loaders", "migrate",
                 "cli_migrate")


def _pagstore_imports(module: str) -> set[str]:
    """The store modules that ``pagstore/<module>.py`` imports, at module level or inside functions."""
    import ast

    tree = ast.parse((REPO / "pagstore" / f"{module}.py").read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("pagstore."):
            names.add(node.module.split(".")[1])
        elif isinstance(node, ast.ImportFrom) and node.module == "pagstore":
            names.update(a.name for a in node.names)
    return names & set(STORE_MODULES) - {module}


def test_store_modules_import_one_way() -> None:
    """No import circle among the store modules (issue 17: store -> verify -> shards -> store was one):
    spec, codec and classes at the bottom, store above them, shards above store, verify above both."""
    graph = {m: _pagstore_imports(m) for m in STORE_MODULES}
    assert "verify" not in graph["store"] | graph["shards"] and "shards" not in graph["store"]
    done: set[str] = set()

    def visit(m: str, path: tuple[str, ...]) -> None:
        assert m not in path, f"import circle: {' -> '.join(path + (m,))}"
        if m not in done:
            for dep in graph[m]:
                visit(dep, path + (m,))
            done.add(m)

    for m in STORE_MODULES:
        visit(m, ())
