"""A picklable recipe that builds a gradient source where it is needed (here, or once per dask worker).

Shipping a recipe (paths and parameters) instead of a built source keeps task graphs small and lets each
cluster worker load its own copy of the diffusion model from the checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pagstore.data.prepared import load_split
from pagstore.sources import build_source
from pagstore.sources.base import GradientSource


@dataclass(frozen=True)
class SourceRecipe:
    """Everything ``build_source`` needs, by value or by path.

    Attributes:
        name: source registry name.
        params: the source's parameter mapping (pipeline.yaml ``distill.sources.<name>``).
        train_path: prepared training split (``data/prepared/train.npz``).
        seed: distillation seed.
        checkpoint: diffusion checkpoint for SBG, else None.
        device: torch device for SBG (auto | cpu | cuda | cuda:N; resolved where the source is built).
        precision: fp32 | bf16 | fp16 autocast of SBG's forwards.
    """

    name: str
    params: dict[str, Any] = field(default_factory=dict)
    train_path: str = ""
    seed: int = 0
    checkpoint: str | None = None
    device: str = "cpu"
    precision: str = "fp32"

    def __call__(self) -> GradientSource:
        return build_source(
            self.name,
            self.params,
            load_split(self.train_path),
            seed=self.seed,
            checkpoint=self.checkpoint,
            device=self.device,
            precision=self.precision,
        )
