"""A noise-aware classifier p(y | x_t) at one diffusion timestep t: the fifth, cheap gradient source.

x_t = sqrt(alphabar_t) (2x - 1) + sqrt(1 - alphabar_t) n, the same forward process (and, at distillation,
the same per-sample noise) as SBG, so grad_{x_t} log p(y | x_t) is the left-hand side of the paper's Eq. 8
estimated directly, with no diffusion model (:mod:`pagstore.sources.noise_aware` turns it into a store).
Training draws fresh noise for every image at every step (seeded by (seed, epoch)), plain CE, SGD.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from pagstore.data.prepared import PreparedSplit

FORMAT_KIND = "noisy-classifier"


@dataclass(frozen=True)
class NoisyClassifierParams:
    """The ``noisy_classifier`` section of pipeline.yaml.

    ``t`` must equal the SBG distillation t to compare the two at one noise level; ``schedule`` and
    ``diffusion_steps`` must match the diffusion preset (digits-small: cosine, 1000).
    """

    t: int = 400
    schedule: str = "cosine"
    diffusion_steps: int = 1000
    model: str = "small-cnn"
    model_kwargs: dict[str, Any] = field(default_factory=lambda: {"width": 16})
    epochs: int = 10
    batch_size: int = 64
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 1e-4
    seed: int = 0

    def validate(self) -> None:
        if not 0 <= self.t < self.diffusion_steps:
            raise ValueError(f"t must be in [0, diffusion_steps={self.diffusion_steps}), got {self.t}")
        if self.epochs < 1 or self.batch_size < 1 or not self.lr > 0:
            raise ValueError(f"need epochs >= 1, batch_size >= 1, lr > 0; got {self.epochs}, "
                             f"{self.batch_size}, {self.lr}")


def alphabar(schedule: str, steps: int, t: int) -> float:
    """alphabar_t of a named schedule (the in-tree improved-diffusion definition)."""
    from pagstore.improved_diffusion.gaussian_diffusion import get_named_beta_schedule

    return float(np.cumprod(1.0 - get_named_beta_schedule(schedule, steps))[t])


def noisy(x: torch.Tensor, noise: torch.Tensor, ab: float) -> torch.Tensor:
    """x_t (B, *S) for [0, 1] images x (B, *S) and standard normal noise of the same shape."""
    return float(np.sqrt(ab)) * (2.0 * x - 1.0) + float(np.sqrt(1.0 - ab)) * noise


def train_noisy_classifier(train: PreparedSplit, test: PreparedSplit, params: NoisyClassifierParams,
                           checkpoint: str | Path) -> dict[str, Any]:
    """Train on x_t of the train split and write ``checkpoint`` (the classifier checkpoint format).

    Returns metrics: noisy test accuracy (one seeded noise draw), train seconds, alphabar_t.
    """
    from pagstore.models import build_model
    from pagstore.training.checkpoint import save_checkpoint

    ab = alphabar(params.schedule, params.diffusion_steps, params.t)
    torch.manual_seed(params.seed)
    model = build_model(params.model, train.num_classes, train.sample_shape, **params.model_kwargs)
    opt = torch.optim.SGD(model.parameters(), lr=params.lr, momentum=params.momentum,
                          weight_decay=params.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, params.epochs)
    x_all, y_all = torch.from_numpy(train.as_float()), torch.from_numpy(train.labels)
    t0 = time.perf_counter()
    for epoch in range(params.epochs):
        gen = torch.Generator().manual_seed(params.seed * 1_000_003 + epoch)
        order = torch.randperm(len(y_all), generator=gen)
        model.train()
        for i in range(0, len(order), params.batch_size):
            idx = order[i:i + params.batch_size]
            xb = noisy(x_all[idx], torch.randn(x_all[idx].shape, generator=gen), ab)
            loss = F.cross_entropy(model(xb), y_all[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        sched.step()
    seconds = time.perf_counter() - t0
    model.eval()
    xt, yt = torch.from_numpy(test.as_float()), torch.from_numpy(test.labels)
    with torch.no_grad():
        gen = torch.Generator().manual_seed(params.seed + 7)
        acc = (model(noisy(xt, torch.randn(xt.shape, generator=gen), ab)).argmax(1) == yt).float().mean().item()
    meta = {"kind": FORMAT_KIND, "params": asdict(params), "alphabar_t": ab,
            "dataset_fingerprint": train.fingerprint(), "train_seconds": seconds}
    save_checkpoint(checkpoint, model, {"name": params.model, "num_classes": train.num_classes,
                                        "sample_shape": list(train.sample_shape), "kwargs": params.model_kwargs},
                    meta)
    return {"noisy_test_accuracy": acc, "train_seconds": seconds, "alphabar_t": ab, "t": params.t}
