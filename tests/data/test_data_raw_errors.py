"""A cut-off download reads as "truncated" wherever it was cut; a refused CIFAR pickle suggests the binary
version; `python -m stages.prepare` reports both in one line without a traceback."""

from __future__ import annotations

import gzip
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pagstore.data.raw import RawDataError, is_truncated
from pagstore.data.registry import read_dataset
from tests.data.data_fakes import make_cifar, py2_pickle
from tests.data.test_data_cifar import _Evil, _rewrite
from tests.helpers.dvc_project import REPO


@pytest.mark.parametrize("fraction", [0.1, 0.3, 0.5, 0.7, 0.9, 0.99])
def test_cut_archive_reads_as_truncated(tmp_path: Path, fraction: float) -> None:
    """Wherever the .tar.gz is cut (mid-member or on a header boundary), the message says truncated."""
    truth = make_cifar(tmp_path, "cifar10", "binary", per_batch=40)
    path = truth["archive"]
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(RawDataError) as info:
        read_dataset("cifar10", {"raw_dir": ".", "archive": "binary"}, base_dir=tmp_path)
    message = str(info.value)
    assert message.startswith(str(path)) and "truncated" in message and "not found" not in message


def test_cut_on_a_member_boundary_is_truncated_not_missing(tmp_path: Path) -> None:
    """The case tarfile's stream mode ends quietly on: the tar stops after whole members (gzip cut after them)."""
    truth = make_cifar(tmp_path, "cifar10", "binary")
    path = truth["archive"]
    tar = gzip.decompress(path.read_bytes())
    # Keep the first member (512-byte header + data padded to 512) and cut the gzip stream right there.
    first = 512 + -(-int(tar[124:135].strip(b"\0 ") or b"0", 8) // 512) * 512
    whole = gzip.compress(tar)
    cut = gzip.compress(tar[:first])
    path.write_bytes(cut[: len(cut) - 8])  # drop the gzip trailer: the stream has no end
    assert is_truncated(path)
    with pytest.raises(RawDataError, match=r"cifar-10-binary.tar.gz: truncated archive"):
        read_dataset("cifar10", {"raw_dir": ".", "archive": "binary"}, base_dir=tmp_path)
    path.write_bytes(whole)
    assert not is_truncated(path)


def test_plain_tar_without_end_blocks_is_truncated(tmp_path: Path) -> None:
    truth = make_cifar(tmp_path, "cifar10", "binary")
    plain = tmp_path / "plain.tar"
    tar = gzip.decompress(truth["archive"].read_bytes())
    plain.write_bytes(tar)
    assert not is_truncated(plain)
    plain.write_bytes(tar[:1024])
    assert is_truncated(plain)


def test_refused_pickle_suggests_the_binary_archive(tmp_path: Path) -> None:
    truth = make_cifar(tmp_path, "cifar10", "python")
    _rewrite(truth, "cifar-10-batches-py/data_batch_1", py2_pickle({b"data": _Evil(tmp_path / "pwned")}))
    with pytest.raises(RawDataError, match=r"refusing global .*use the binary version instead: set `archive: binary`"):
        read_dataset("cifar10", {"raw_dir": "."}, base_dir=tmp_path)
    assert not (tmp_path / "pwned").exists()


def test_prepare_reports_a_truncated_archive_in_one_line(tmp_path: Path) -> None:
    truth = make_cifar(tmp_path / "raw", "cifar10", "python")
    path = truth["archive"]
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    params = yaml.safe_load((REPO / "pipeline.yaml").read_text())
    params["profile"] = "cifar10"
    params["datasets"]["cifar10"]["options"]["raw_dir"] = "raw"
    (tmp_path / "pipeline.yaml").write_text(yaml.safe_dump(params))
    proc = subprocess.run([sys.executable, "-m", "stages.prepare", "--params", "pipeline.yaml", "--out", "out"],
                          cwd=tmp_path, capture_output=True, text=True, env={"PYTHONPATH": str(REPO), "PATH": ""})
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("prepare: raw/cifar-10-python.tar.gz: ") and "truncated" in last
    assert not (tmp_path / "out").exists()
