"""The paper's released classifiers (royg27/PAG-ROB) -> our self-describing classifier checkpoint.

Their files are ``torch.nn.DataParallel(model).state_dict()`` saved from CUDA: keys prefixed ``module.``.
Their CIFAR ResNet-18 is our ``resnet18`` under other names (stem ``conv1``/``bn1``, stages ``layer1..4``
of two BasicBlocks, ``linear``), and its input is (x - 0.5) / 0.5, which becomes our Classifier's fixed
Normalize buffers, so the imported model takes [0, 1] images like every model here.

Their ViT does not map onto ours: its MLP applies GELU after the second linear layer too, and attention
divides by sqrt(hidden) instead of sqrt(hidden / heads); weights would load but the function would differ.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from pagstore.interop import InteropError
from pagstore.interop.torch_files import safe_load, sha256_file

LAYOUTS = ("pag-rob",)
ARCHS = ("resnet18",)
MEAN, STD = 0.5, 0.5  # their input normalisation: (x - 0.5) / 0.5 for x in [0, 1]
_RN18 = [(re.compile(r"^conv1\."), "net.stem.0."), (re.compile(r"^bn1\."), "net.stem.1."),
         (re.compile(r"^linear\."), "net.fc.")]
_BLOCK = re.compile(r"^layer([1-4])\.([0-9]+)\.(.*)$")


def strip_module(state: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """Drop DataParallel's ``module.`` prefix (all keys or none carry it)."""
    keys = list(state)
    prefixed = [k.startswith("module.") for k in keys]
    if any(prefixed) and not all(prefixed):
        first = keys[prefixed.index(False)]
        raise InteropError(f"key {first!r} lacks the 'module.' prefix the other keys have")
    return {k.removeprefix("module.") if any(prefixed) else k: v for k, v in state.items()}


def map_resnet18_key(key: str, blocks_per_stage: int = 2) -> str:
    """Their ResNet-18 key -> ours, e.g. ``layer2.0.shortcut.1.weight`` -> ``net.layers.2.shortcut.1.weight``."""
    for pattern, ours in _RN18:
        if pattern.match(key):
            return pattern.sub(ours, key)
    m = _BLOCK.match(key)
    if m:
        return f"net.layers.{(int(m.group(1)) - 1) * blocks_per_stage + int(m.group(2))}.{m.group(3)}"
    raise InteropError(f"unexpected key {key!r} for a pag-rob ResNet-18")


def convert_state(state: Mapping[str, Any], arch: str, ours: Mapping[str, torch.Tensor], where: str
                  ) -> dict[str, torch.Tensor]:
    """Their (prefix-stripped) state_dict -> our Classifier's, checked key by key against ``ours``."""
    if arch not in ARCHS:
        raise InteropError(f"--arch {arch!r}: supported for layout pag-rob: {', '.join(ARCHS)} (their ViT does "
                           "not compute our ViT's function; see pagstore/interop/classifier_import.py)")
    out: dict[str, torch.Tensor] = {k: v for k, v in ours.items() if k.startswith("normalize.")}
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise InteropError(f"{where}: entry {key!r} is {type(value).__name__}, not a tensor")
        try:
            mapped = map_resnet18_key(key)
        except InteropError as exc:
            raise InteropError(f"{where}: {exc}") from None
        if mapped not in ours:
            raise InteropError(f"{where}: key {key!r} (ours {mapped!r}) does not exist in our {arch}")
        if tuple(value.shape) != tuple(ours[mapped].shape):
            raise InteropError(f"{where}: key {key!r} has shape {tuple(value.shape)}, our {mapped!r} has "
                               f"{tuple(ours[mapped].shape)} (other --num-classes or image size?)")
        out[mapped] = value.detach().to("cpu", copy=True)
    missing = [k for k in ours if k not in out]
    if missing:
        raise InteropError(f"{where}: key for our {missing[0]!r} missing ({len(missing)} missing in all)")
    return out


def import_classifier(path: str | Path, out: str | Path, *, layout: str = "pag-rob", arch: str = "resnet18",
                      num_classes: int = 10, sample_shape: tuple[int, int, int] = (3, 32, 32),
                      paper_row: str | None = None, name: str | None = None) -> dict[str, Any]:
    """Convert an official classifier file into our checkpoint at ``out``; return its card.

    Args:
        path: ``DataParallel(model).state_dict()`` saved with ``torch.save`` (CUDA tensors are fine).
        layout, arch: the file's layout ("pag-rob") and architecture ("resnet18").
        num_classes, sample_shape: C and (ch, H, W) of the model's input.
        paper_row: key of ``pagstore.evaluation.paper.PAPER_ROWS`` whose numbers the card quotes; default
            guessed from the file name (e.g. ``..._sbg_...`` -> "sbg").
        name: the model's name in reports (default: the file stem).
    Returns:
        the card, also stored in the checkpoint's meta (``external``) and as ``<stem>.card.json`` beside it.
    """
    from pagstore.atomic import write_json
    from pagstore.evaluation.paper import PAPER_ROWS, paper_row_for
    from pagstore.models import build_model
    from pagstore.training.checkpoint import save_checkpoint

    if layout not in LAYOUTS:
        raise InteropError(f"--layout {layout!r}: known layouts: {', '.join(LAYOUTS)}")
    raw = safe_load(path, "a classifier state_dict")
    if not isinstance(raw, Mapping) or not all(isinstance(k, str) for k in raw):
        raise InteropError(f"{path}: expected a state_dict (a mapping of names to tensors), found {type(raw).__name__}")
    try:
        state = strip_module(raw)
    except InteropError as exc:
        raise InteropError(f"{path}: {exc}") from None
    kwargs = {"mean": [MEAN] * sample_shape[0], "std": [STD] * sample_shape[0]}
    model = build_model(arch, num_classes, sample_shape, **kwargs)
    model.load_state_dict(convert_state(state, arch, model.state_dict(), str(path)), strict=True)
    if paper_row is not None and paper_row not in PAPER_ROWS:
        raise InteropError(f"--paper-row {paper_row!r}: known rows: {', '.join(PAPER_ROWS)}")
    row = PAPER_ROWS[paper_row] if paper_row else paper_row_for(Path(path).stem)
    card = {
        "external": True, "name": name or Path(path).stem, "layout": layout, "arch": arch,
        "source_file": Path(path).name, "source_sha256": sha256_file(path),
        "normalisation": f"(x - {MEAN}) / {STD} inside the model (buffers normalize.mean / normalize.std)",
        "paper": None if row is None else {"row": row.name, "model": row.model, "table": row.table,
                                           "clean": row.clean, "aa_l2": row.aa_l2, "aa_linf": row.aa_linf,
                                           "aa_l2_large": row.aa_l2_large, "aa_linf_large": row.aa_linf_large},
    }
    config = {"name": arch, "num_classes": num_classes, "sample_shape": list(sample_shape), "kwargs": kwargs}
    meta = {"method": card["name"], "objective": None, "recipe": None, "store": None,
            "dataset_fingerprint": None, "epoch": None, "epochs": None, "history": [], "external": card}
    save_checkpoint(out, model, config, meta)
    write_json(card_path(out), card)  # the card also beside the checkpoint, readable without torch
    return card


def card_path(checkpoint: str | Path) -> Path:
    """``<checkpoint stem>.card.json`` next to the checkpoint."""
    p = Path(checkpoint)
    return p.with_name(p.stem + ".card.json")
