"""Safe, atomic checkpoint files shared by the diffusion and classifier checkpoints.

A checkpoint is a dict of plain Python types and tensors with a ``format`` tag. It is written atomically
(a crash mid-save leaves the previous file intact) and read only with ``torch.load(weights_only=True)``,
so a file from elsewhere can never run code; a readable file of another format is refused by its tag.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import torch

from pagstore.atomic import atomic_path


class CheckpointError(ValueError):
    """A checkpoint is missing, unreadable or not of the expected format."""


def plain(value: Any) -> Any:
    """Containers the weights-only unpickler rejects (Counter, tuples) -> dicts and lists, recursively."""
    if isinstance(value, Counter):
        return {int(k): int(v) for k, v in value.items()}
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def save_payload(path: str | Path, payload: dict[str, Any]) -> None:
    """``torch.save`` the checkpoint dict to ``path`` atomically, with bytes that depend only on ``payload``.

    Saved through a file object: given a path, torch names the zip archive's folder after the (random)
    temporary file, so identical weights would hash differently and DVC would rerun everything downstream.
    """
    with atomic_path(path, suffix=".pt") as tmp, open(tmp, "wb") as fh:
        torch.save(payload, fh)


def load_payload(path: str | Path, fmt: str, what: str, hint: str = "") -> dict[str, Any]:
    """Read a checkpoint dict with ``weights_only=True`` and check its ``format`` tag is ``fmt``.

    Args:
        what: the kind of checkpoint, for messages ("diffusion", "classifier").
        hint: how to make the missing file (e.g. the DVC stage to run).
    Raises:
        CheckpointError: naming ``path``, for a missing, unreadable, unsafe or foreign file.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: {what} checkpoint not found{f' ({hint})' if hint else ''}")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt, foreign or unsafe (pickle) files
        raise CheckpointError(f"{path}: not a readable {what} checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(raw, dict) or raw.get("format") != fmt:
        found = raw.get("format") if isinstance(raw, dict) else type(raw).__name__
        raise CheckpointError(f"{path}: expected format {fmt!r}, found {found!r}")
    return raw
