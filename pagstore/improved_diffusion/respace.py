"""Timestep respacing: sample (or train) with a subset of a base process's steps.

A spaced process keeps the base process's alphabar at the kept steps and recomputes betas between them;
the network still sees the base process's timesteps (mapped back through ``timestep_map``).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch

from pagstore.improved_diffusion.gaussian_diffusion import GaussianDiffusion


def space_timesteps(num_timesteps: int, section_counts: str | Iterable[int]) -> set[int]:
    """Steps of a ``num_timesteps`` process to keep.

    ``section_counts`` is either "ddimN" (an evenly strided set of N steps starting at 0, as in DDIM) or
    counts per equal section, e.g. "10,15,20" or [10, 15, 20]: the process is cut into that many sections and
    each section keeps that many evenly spaced steps (a single count, e.g. "50", spaces the whole range).
    """
    if isinstance(section_counts, str):
        if section_counts.startswith("ddim"):
            try:
                desired = int(section_counts[len("ddim"):])
            except ValueError:
                raise ValueError(f"timestep_respacing {section_counts!r}: expected 'ddim<N>'") from None
            for stride in range(1, num_timesteps):
                if len(range(0, num_timesteps, stride)) == desired:
                    return set(range(0, num_timesteps, stride))
            raise ValueError(f"cannot take exactly {desired} equally strided steps from {num_timesteps}")
        try:
            section_counts = [int(x) for x in section_counts.split(",")]
        except ValueError:
            raise ValueError(f"timestep_respacing {section_counts!r}: expected 'ddimN' or comma-separated "
                             "integers") from None
    counts = list(section_counts)
    size_per, extra = divmod(num_timesteps, len(counts))
    start, kept = 0, []
    for i, count in enumerate(counts):
        size = size_per + (1 if i < extra else 0)
        if count < 1 or size < count:
            raise ValueError(f"cannot take {count} steps from a section of {size} steps")
        stride = 1.0 if count <= 1 else (size - 1) / (count - 1)
        kept += [start + round(j * stride) for j in range(count)]
        start += size
    return set(kept)


class SpacedDiffusion(GaussianDiffusion):
    """A diffusion over the steps ``use_timesteps`` of a base process with betas ``base_kwargs['betas']``."""

    def __init__(self, use_timesteps: Iterable[int], **base_kwargs):
        self.use_timesteps = set(use_timesteps)
        base = GaussianDiffusion(**base_kwargs)
        self.original_num_steps = base.num_timesteps
        if not self.use_timesteps or min(self.use_timesteps) < 0 or max(self.use_timesteps) >= base.num_timesteps:
            raise ValueError(f"use_timesteps must be a non-empty subset of [0, {base.num_timesteps})")
        last, betas, tmap = 1.0, [], []
        for i, ab in enumerate(base.alphas_cumprod):
            if i in self.use_timesteps:
                betas.append(1.0 - ab / last)
                last = ab
                tmap.append(i)
        self.timestep_map = np.asarray(tmap, dtype=np.int64)
        super().__init__(**{**base_kwargs, "betas": np.asarray(betas)})

    def model_timesteps(self, t: torch.Tensor) -> torch.Tensor:
        """Map spaced step indices (B,) to the base process's timesteps, rescaled like the base process."""
        mapped = torch.from_numpy(self.timestep_map).to(t.device)[t]
        if self.rescale_timesteps:
            return mapped.float() * (1000.0 / self.original_num_steps)
        return mapped
