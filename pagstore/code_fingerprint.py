"""Fingerprints of the code that computes a training run, so that a finished checkpoint is not "resumed"
after that code changed.

Checkpoints persist (``persist: true`` in dvc.yaml) so that an interrupted training resumes. DVC reruns a
train stage when its code dependencies change, but a checkpoint whose run id still matched (same method,
recipe and data) used to be taken as already trained: a fix to the loss or the model then reran the stage
and returned the old weights. Classifier run ids (:data:`CLASSIFIER_CODE`: the model registry, the
training package, the PAG loss, the store loaders) and the diffusion model's resume signature
(:data:`DIFFUSION_CODE`) therefore also hash the source of the modules that define the computation.
Everything else (CLI, reports, metrics file layout) may change without retraining.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent  # pagstore/
# what a run's numbers depend on, relative to the package (directories: every .py inside)
CLASSIFIER_CODE = ("models", "training", "loss.py", "loaders.py")
DIFFUSION_CODE = ("improved_diffusion",)


@lru_cache(maxsize=None)
def code_fingerprint(parts: tuple[str, ...], package: Path = PACKAGE) -> str:
    """sha256 over the relative paths and bytes of the ``.py`` files of ``parts`` (sorted, so the order of
    the file system does not matter; bytecode and other files are ignored)."""
    h = hashlib.sha256()
    for part in parts:
        root = package / part
        files = sorted(root.rglob("*.py")) if root.is_dir() else [root]
        for f in files:
            h.update(f.relative_to(package).as_posix().encode() + b"\0")
            h.update(f.read_bytes() + b"\0")
    return "sha256:" + h.hexdigest()
