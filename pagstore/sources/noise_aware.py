"""Noise-aware classifier gradients (issue 16): g(x, y) = grad_{x_t} log p(y | x_t) of a classifier trained
on x_t (:mod:`pagstore.noisy_classifier`), at x_t made with SBG's per-sample noise (seed, dataset index).

By Bayes, grad log p(y | x_t) = score(x_t | y) - score(x_t): what SBG estimates with two diffusion
scores (Eq. 8), here from one classifier. Gradients are w.r.t. [0, 1] pixels (x 2, as SBG's); only their
direction is used.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pagstore.sources.base import GradientSource, SourceError
from pagstore.sources.sbg import PIXEL_CHAIN_RULE, sample_noise


@dataclass(frozen=True)
class NACParams:
    """``t``: must be the timestep the classifier was trained at (checked against its checkpoint)."""

    t: int

    def validate(self) -> None:
        if self.t < 0:
            raise ValueError(f"t must be a timestep >= 0, got {self.t}")


class NoiseAwareSource(GradientSource):
    """grad_{x_t} log p(c | x_t) for every class c, from ``model`` (logits on x_t (N, *S))."""

    name = "nac"

    def __init__(self, params: NACParams, model: nn.Module, alphabar_t: float, num_classes: int,
                 sample_shape: tuple[int, ...], seed: int = 0, model_info: dict[str, Any] | None = None) -> None:
        super().__init__(num_classes, sample_shape)
        self.params, self.model, self.alphabar, self.seed = params, model.eval(), float(alphabar_t), int(seed)
        self.model_info = dict(model_info or {})

    def _compute(self, x: torch.Tensor, labels: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        from pagstore.loss import input_grads_log_prob
        from pagstore.noisy_classifier import noisy

        noise = torch.stack([sample_noise(self.seed, int(i), tuple(x.shape[1:])) for i in indices])
        x_t = noisy(x, noise, self.alphabar)
        targets = torch.arange(self.num_classes).expand(len(x), self.num_classes)
        with torch.enable_grad():  # compute() runs under no_grad; this source needs one backward
            g = input_grads_log_prob(self.model, x_t, targets, create_graph=False)
        return PIXEL_CHAIN_RULE * g.detach()

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "t": self.params.t, "alphabar_t": self.alphabar, "seed": self.seed,
                "noise": "as sbg: torch.randn per sample, seeded by SeedSequence([seed, dataset index])",
                "gradient": "grad_{x_t} log softmax(classifier(x_t))[c]", "pixel_chain_rule": PIXEL_CHAIN_RULE,
                "model": self.model_info}


def nac_from_checkpoint(params: NACParams, checkpoint: str | Path, num_classes: int, sample_shape: tuple[int, ...],
                        *, dataset_fingerprint: str | None = None, seed: int = 0) -> NoiseAwareSource:
    """Load the noisy classifier written by the ``train_noisy_classifier`` stage; check t, classes and data."""
    from pagstore.noisy_classifier import FORMAT_KIND
    from pagstore.training.checkpoint import load_classifier

    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise SourceError(f"source 'nac': classifier checkpoint {checkpoint} not found (run train_noisy_classifier)")
    model, meta = load_classifier(checkpoint)
    if meta.get("kind") != FORMAT_KIND:
        raise SourceError(f"source 'nac': {checkpoint} is not a noisy classifier (meta kind {meta.get('kind')!r})")
    trained_t = int(meta["params"]["t"])
    if trained_t != params.t:
        raise SourceError(f"source 'nac': distill.sources.nac.t = {params.t}, but {checkpoint} was trained at "
                          f"t = {trained_t}")
    if int(meta["model"]["num_classes"]) != num_classes:
        raise SourceError(f"source 'nac': {checkpoint} has {meta['model']['num_classes']} classes, data has {num_classes}")
    if dataset_fingerprint is not None and meta.get("dataset_fingerprint") != dataset_fingerprint:
        raise SourceError(f"source 'nac': {checkpoint} was trained on dataset {meta.get('dataset_fingerprint')}, "
                          f"but the training split is {dataset_fingerprint}")
    info = {"checkpoint": str(checkpoint), "params": meta["params"], "dataset_fingerprint": meta.get("dataset_fingerprint")}
    return NoiseAwareSource(params, model, float(meta["alphabar_t"]), num_classes, sample_shape, seed, info)
