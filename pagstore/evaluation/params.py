"""The ``evaluate`` section of pipeline.yaml as frozen dataclasses, and the attack radii of a dataset budget."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from pagstore.data.profile import EvalBudget

NORM_KEYS = {"L2": "eps_l2", "Linf": "eps_linf"}


def budget_eps(budget: EvalBudget, norm: str, large: bool = False) -> float:
    """The radius of ``norm`` ("L2" / "Linf") in a dataset's budget, standard or large."""
    return getattr(budget, ("large_" if large else "") + NORM_KEYS[norm])


@dataclass(frozen=True)
class SweepParams:
    """APGD-CE curve: eps = factor * the profile's eps of each norm; ``n_iter`` APGD iterations."""

    eps_factors: tuple[float, ...] = (0.0, 0.25, 0.5, 1.0, 1.5, 2.0)
    n_iter: int = 20


@dataclass(frozen=True)
class CorruptionParams:
    """Which corruptions, the severities to report accuracy at, and the minimal-severity search."""

    names: tuple[str, ...] = ("gaussian_blur", "salt_and_pepper", "contrast_reduction", "blended_uniform_noise")
    severities: tuple[float, ...] = (0.1, 0.25, 0.5)
    steps: int = 20
    refine: int = 4


@dataclass(frozen=True)
class PictureParams:
    """Targeted PGD grid: eps = eps_factor * the profile's large eps of ``norm``."""

    num_images: int = 6
    norm: str = "L2"
    eps_factor: float = 1.5
    steps: int = 40


@dataclass(frozen=True)
class ManifoldParams:
    """The other papers' alignment metrics (pagstore.evaluation.manifold): the local-PCA tangent space of
    the ``k`` nearest training images, ``dim`` directions; also the closest wrong-class direction cosine."""

    k: int = 50
    dim: int = 10

    def validate(self) -> None:
        if not 1 <= self.dim <= self.k:
            raise ValueError(f"manifold: need 1 <= dim <= k, got dim={self.dim}, k={self.k}")


@dataclass(frozen=True)
class EvaluateParams:
    """The ``evaluate`` section. ``num_images``: test images attacked (null = the whole test split)."""

    num_images: int | None = 50
    seed: int = 0
    batch_size: int = 250
    device: str = "auto"                          # auto | cpu | cuda | cuda:N (pagstore.devices)
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    autoattack: bool = True
    large_eps: bool = True
    alignment_images: int = 100
    sweep: SweepParams = field(default_factory=SweepParams)
    corruptions: CorruptionParams = field(default_factory=CorruptionParams)
    pictures: PictureParams = field(default_factory=PictureParams)
    manifold: ManifoldParams | None = None     # null: skip the closest-class / on-manifold metrics

    def validate(self) -> None:
        from pagstore.devices import check_device

        check_device(self.device)
        if self.num_images is not None and self.num_images < 1:
            raise ValueError(f"num_images must be >= 1 or null (all), got {self.num_images}")
        if self.pictures.norm not in NORM_KEYS:
            raise ValueError(f"pictures.norm must be one of {list(NORM_KEYS)}, got {self.pictures.norm!r}")
        from pagstore.evaluation.corruptions import CORRUPTIONS

        unknown = [n for n in self.corruptions.names if n not in CORRUPTIONS]
        if unknown:
            raise ValueError(f"corruptions.names: unknown {unknown}; known: {list(CORRUPTIONS)}")
