"""A checkpoint's bytes depend only on what it holds, not on the temporary name of its atomic save."""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from pagstore.checkpoint_io import save_payload


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_same_payload_gives_the_same_bytes_under_any_name(tmp_path: Path) -> None:
    payload = {"format": "test", "state": {"w": torch.arange(6.0).reshape(2, 3)}, "meta": {"epoch": 1}}
    save_payload(tmp_path / "a" / "checkpoint.pt", payload)
    save_payload(tmp_path / "b" / "checkpoint.pt", payload)
    save_payload(tmp_path / "a" / "checkpoint.pt", payload)  # an overwrite, as a resumed stage does
    assert _sha(tmp_path / "a" / "checkpoint.pt") == _sha(tmp_path / "b" / "checkpoint.pt")
    other = dict(payload, meta={"epoch": 2})
    save_payload(tmp_path / "c.pt", other)
    assert _sha(tmp_path / "c.pt") != _sha(tmp_path / "b" / "checkpoint.pt")
