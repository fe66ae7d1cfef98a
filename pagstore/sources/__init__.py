"""Gradient sources: the "ground-truth" perceptually aligned gradients g(x, y) of the paper (Section 4).

``build_source(name, params, train_split, **ctx)`` is the registry entry point; names are the ones users
write in ``pipeline.yaml`` (``distill.sources``): ``oi``, ``cm``, ``nn`` (heuristics) and ``sbg``
(score-based, needs ``checkpoint=`` a diffusion checkpoint) and ``nac`` (a noise-aware classifier's
gradients, needs ``checkpoint=`` its checkpoint).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pagstore.config import from_dict
from pagstore.data.prepared import PreparedSplit
from pagstore.sources.base import GradientSource, SourceError
from pagstore.sources.heuristics import (
    ClassMeanSource,
    CMParams,
    NearestNeighbourSource,
    NNParams,
    OIParams,
    OneImageSource,
)
from pagstore.sources.noise_aware import NACParams, NoiseAwareSource, nac_from_checkpoint
from pagstore.sources.sbg import SBGParams, ScoreBasedSource, sbg_from_checkpoint

SOURCES: dict[str, tuple[type, type]] = {
    "oi": (OneImageSource, OIParams),
    "cm": (ClassMeanSource, CMParams),
    "nn": (NearestNeighbourSource, NNParams),
    "sbg": (ScoreBasedSource, SBGParams),
    "nac": (NoiseAwareSource, NACParams),
}

__all__ = [
    "SOURCES",
    "GradientSource",
    "SourceError",
    "build_source",
    "params_class",
    "OneImageSource",
    "ClassMeanSource",
    "NearestNeighbourSource",
    "ScoreBasedSource",
]


def params_class(name: str) -> type:
    """The frozen params dataclass of source ``name``."""
    if name not in SOURCES:
        raise SourceError(f"unknown gradient source {name!r}; known sources: {', '.join(sorted(SOURCES))}")
    return SOURCES[name][1]


def build_source(
    name: str,
    params: Mapping[str, Any] | Any,
    train_split: PreparedSplit,
    *,
    seed: int = 0,
    checkpoint: str | Path | None = None,
    device: str = "cpu",
    precision: str = "fp32",
) -> GradientSource:
    """Build gradient source ``name``.

    Args:
        name: "oi", "cm", "nn" or "sbg".
        params: the source's parameters, a mapping (checked strictly; unknown keys are errors) or its
            params dataclass.
        train_split: the training split the heuristics take representatives from (SBG uses its class
            count, sample shape and fingerprint).
        seed: fixes representative choices (OI, NN) and SBG noise.
        checkpoint: diffusion checkpoint, required for "sbg".
        device: torch device for SBG forwards (auto | cpu | cuda | cuda:N).
        precision: fp32 | bf16 | fp16 autocast of SBG's model forwards.

    Returns:
        a source with ``compute(x (B, *S), labels (B,), indices (B,)) -> (B, C, *S)`` and ``describe()``.
    """
    cls = params_class(name)
    if not dataclasses.is_dataclass(params):
        params = from_dict(cls, dict(params or {}), where=f"source '{name}' params")
    elif not isinstance(params, cls):
        raise SourceError(f"source '{name}': params must be {cls.__name__}, got {type(params).__name__}")
    if name == "sbg":
        if checkpoint is None:
            raise SourceError("source 'sbg' needs checkpoint= the diffusion checkpoint path")
        return sbg_from_checkpoint(
            params,
            checkpoint,
            train_split.num_classes,
            train_split.sample_shape,
            dataset_fingerprint=train_split.fingerprint(),
            seed=seed,
            device=device,
            precision=precision,
        )
    if name == "nac":
        if checkpoint is None:
            raise SourceError("source 'nac' needs checkpoint= the noisy-classifier checkpoint path")
        return nac_from_checkpoint(params, checkpoint, train_split.num_classes, train_split.sample_shape,
                                   dataset_fingerprint=train_split.fingerprint(), seed=seed)
    return SOURCES[name][0](params, train_split, seed=seed)
