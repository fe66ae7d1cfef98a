"""Hostile files: no pickle is ever executed from a checkpoint, store, shard or prepared split, and no tar
member can reach outside its archive. Each malicious payload would ``touch`` a marker file if it ran."""

from __future__ import annotations

import ast
import io
import json
import os
import pickle
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from rel_fixtures import REPO, build_store, rewrite_tar_member, tiny_split, write_prepared


class Evil:
    """Unpickling this runs ``touch <marker>`` (what an attacker's checkpoint would do)."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):  # noqa: ANN204
        return (os.system, (f"touch {self.marker}",))


def _marker(tmp_path: Path) -> Path:
    marker = tmp_path / "pwned"
    # The control: this payload really does run under a plain unpickler.
    pickle.loads(pickle.dumps(Evil(marker)))
    assert marker.exists()
    marker.unlink()
    return marker


def _evil_checkpoint(path: Path, marker: Path, fmt: str) -> Path:
    torch.save({"format": fmt, "model": {}, "meta": Evil(marker), "config": Evil(marker)}, path)
    return path


def test_diffusion_load_checkpoint_refuses_pickle(tmp_path: Path) -> None:
    from pagstore.improved_diffusion.checkpoint import FORMAT, CheckpointError, load_checkpoint

    marker = _marker(tmp_path)
    ckpt = _evil_checkpoint(tmp_path / "checkpoint.pt", marker, FORMAT)
    with pytest.raises(CheckpointError, match="checkpoint.pt"):
        load_checkpoint(ckpt)
    assert not marker.exists()


def test_classifier_load_classifier_refuses_pickle(tmp_path: Path) -> None:
    from pagstore.training.checkpoint import FORMAT, CheckpointError, load_classifier

    marker = _marker(tmp_path)
    ckpt = _evil_checkpoint(tmp_path / "checkpoint.pt", marker, FORMAT)
    with pytest.raises(CheckpointError, match="checkpoint.pt"):
        load_classifier(ckpt)
    assert not marker.exists()


def test_training_resume_refuses_pickled_checkpoint(tmp_path: Path) -> None:
    """A poisoned checkpoint where a resumable run looks for its own is refused, never executed."""
    from pagstore.training.checkpoint import FORMAT, CheckpointError
    from pagstore.training.config import TrainCommon
    from pagstore.training.objectives import ObjectiveSpec
    from pagstore.training.run import train_method

    marker = _marker(tmp_path)
    prepared = write_prepared(tmp_path, n=12)
    (tmp_path / "model").mkdir()
    _evil_checkpoint(tmp_path / "model" / "checkpoint.pt", marker, FORMAT)
    common = TrainCommon(model="small-cnn", model_kwargs={"width": 4}, epochs=1, batch_size=8, milestones=(1,),
                         eval_samples=4, align_samples=0)
    with pytest.raises(CheckpointError):
        train_method("vanilla", ObjectiveSpec(objective="ce"), common, prepared, tmp_path, tmp_path / "model",
                     tmp_path / "m.json", tmp_path / "e.csv")
    assert not marker.exists() and not (tmp_path / "m.json").exists()


def test_prepared_split_with_object_array_is_refused(tmp_path: Path) -> None:
    from pagstore.data.prepared import PreparedDataError, load_split

    marker = _marker(tmp_path)
    good = tiny_split(n=6)
    path = tmp_path / "train.npz"
    np.savez(path, images=np.array([Evil(marker)], dtype=object), labels=good.labels,
             class_names=np.array(good.class_names), meta=np.array(json.dumps(good.meta)),
             fingerprint=np.array(good.fingerprint()))
    with pytest.raises(PreparedDataError, match="train.npz"):
        load_split(path)
    assert not marker.exists()


def test_restricted_unpickler_refuses_foreign_globals(tmp_path: Path) -> None:
    from pagstore.data.raw import RawDataError
    from pagstore.data.safe_pickle import restricted_loads

    marker = _marker(tmp_path)
    with pytest.raises(RawDataError, match=r"data_batch_1.*refusing global '(posix|os)\.system'"):
        restricted_loads(pickle.dumps({"data": Evil(marker)}, protocol=4), "data_batch_1")
    assert not marker.exists()


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return build_store(tmp_path / "store", tiny_split(n=8, size=4), samples_per_shard=8)


def _stream(store: Path) -> None:
    from pagstore.loaders import stream_batches

    for _ in stream_batches(store, 4, shuffle=False, seed=0, epoch=0):
        pass


def test_object_npy_in_tar_shard_is_refused(tmp_path: Path, store: Path) -> None:
    from pagstore.shards import ExportError

    marker = _marker(tmp_path)
    b = io.BytesIO()
    np.save(b, np.array([Evil(marker)], dtype=object), allow_pickle=True)
    rewrite_tar_member(store, 0, "s00000003.grads.npy", b.getvalue())
    with pytest.raises(ExportError, match=r"grads-000000\.tar.*s00000003"):
        _stream(store)
    assert not marker.exists()


@pytest.mark.parametrize("name", ["/tmp/s00000003.cls", "../s00000003.cls", "../../escape/s00000003.cls"])
def test_webdataset_reader_refuses_escaping_member_names(tmp_path: Path, store: Path, name: str) -> None:
    """The shard reader never extracts to disk; a member named outside the archive is an error."""
    from pagstore.shards import ExportError

    before = sorted(p.name for p in tmp_path.parent.iterdir())
    rewrite_tar_member(store, 0, "s00000003.cls", b"1", new_name=name)
    with pytest.raises(ExportError, match=r"grads-000000\.tar"):
        _stream(store)
    assert sorted(p.name for p in tmp_path.parent.iterdir()) == before
    assert not Path("/tmp/s00000003.cls").exists()


def _raw_tar(path: Path, names: list[str]) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for name in names:
            info = tarfile.TarInfo(name)
            info.size = 2
            tf.addfile(info, io.BytesIO(b"ok"))
    return path


@pytest.mark.parametrize("name", ["/etc/cron.d/evil", "../evil", "cifar-10-batches-py/../../evil",
                                  "\\windows\\evil"])
def test_raw_reader_refuses_escaping_member_names(tmp_path: Path, name: str) -> None:
    from pagstore.data.raw import RawDataError, read_tar_members

    archive = _raw_tar(tmp_path / "cifar-10-python.tar.gz", ["cifar-10-batches-py/batches.meta", name])
    with pytest.raises(RawDataError, match=r"cifar-10-python\.tar\.gz.*refusing"):
        read_tar_members(archive, ["cifar-10-batches-py/batches.meta", "cifar-10-batches-py/data_batch_1"])
    assert not (tmp_path.parent / "evil").exists()


def test_cifar_reader_refuses_escaping_member_names(tmp_path: Path) -> None:
    """The same refusal through a real dataset reader (CIFAR-10, python archive)."""
    from pagstore.data.raw import RawDataError
    from pagstore.data.registry import read_dataset

    _raw_tar(tmp_path / "cifar-10-python.tar.gz", ["../evil"])
    with pytest.raises(RawDataError, match="refusing"):
        read_dataset("cifar10", {"raw_dir": str(tmp_path), "archive": "python"})


# ---------------------------------------------------------------- static check of the code base

FORBIDDEN_HELP = {
    "pickle": "pickle.load/loads/Unpickler outside pagstore/data/safe_pickle.py",
    "torch.load": "torch.load without weights_only=True",
    "allow_pickle": "allow_pickle=True",
    "yaml": "yaml.load/unsafe_load/full_load (use yaml.safe_load)",
    "other": "dill/cloudpickle/joblib/pandas.read_pickle loads",
}
RESTRICTED_UNPICKLER = "pagstore/data/safe_pickle.py"


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return node.id if isinstance(node, ast.Name) else "?"


def _const_kw(call: ast.Call, key: str) -> object:
    for kw in call.keywords:
        if kw.arg == key:
            return kw.value.value if isinstance(kw.value, ast.Constant) else "<expr>"
    return None


def pickle_violations(root: Path) -> list[str]:
    """Every pickle-loading call in ``pagstore/``, ``stages/``, ``benchmarks/`` as "path:line: why"."""
    out = []
    for path in sorted(p for d in ("pagstore", "stages", "benchmarks") for p in (root / d).rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        for node in ast.walk(ast.parse(path.read_text(), rel)):
            if not isinstance(node, ast.Call):
                continue
            name = _dotted(node.func)
            why = None
            if name in ("pickle.load", "pickle.loads", "pickle.Unpickler") and rel != RESTRICTED_UNPICKLER:
                why = FORBIDDEN_HELP["pickle"]
            elif name.endswith("torch.load") and _const_kw(node, "weights_only") is not True:
                why = FORBIDDEN_HELP["torch.load"]
            elif _const_kw(node, "allow_pickle") not in (None, False):
                why = FORBIDDEN_HELP["allow_pickle"]
            elif name in ("yaml.load", "yaml.unsafe_load", "yaml.full_load", "yaml.load_all"):
                why = FORBIDDEN_HELP["yaml"]
            elif name in ("dill.load", "dill.loads", "cloudpickle.load", "cloudpickle.loads", "joblib.load",
                          "pd.read_pickle", "pandas.read_pickle"):
                why = FORBIDDEN_HELP["other"]
            if why:
                out.append(f"{rel}:{node.lineno}: {why}")
    return out


def test_no_pickle_loading_in_the_code_base() -> None:
    assert pickle_violations(REPO) == []


def test_pickle_scan_catches_each_pattern(tmp_path: Path) -> None:
    """The scanner itself: each forbidden spelling in a planted file is reported (so the check can fail)."""
    (tmp_path / "pagstore").mkdir()
    (tmp_path / "stages").mkdir()
    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "pagstore" / "bad.py").write_text(
        "import pickle, torch, numpy as np, yaml\n"
        "pickle.load(f)\n"
        "torch.load(p)\n"
        "torch.load(p, weights_only=False)\n"
        "np.load(p, allow_pickle=True)\n"
        "yaml.load(s)\n"
        "torch.load(p, weights_only=True)\n"
        "np.load(p, allow_pickle=False)\n")
    found = pickle_violations(tmp_path)
    assert [f.split(":")[1] for f in found] == ["2", "3", "4", "5", "6"], found
    shutil.rmtree(tmp_path / "pagstore")
