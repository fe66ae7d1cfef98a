"""Named model + training recipes for the diffusion model (the keys users type as ``train_diffusion.preset``).

``model`` holds overrides of :func:`model_and_diffusion_defaults`; class conditioning, ``num_classes``
(C + 1) and ``in_channels`` always come from the dataset, never from a preset.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping


@dataclass(frozen=True)
class TrainHParams:
    """Optimisation recipe: AdamW(lr, weight_decay), batch size, number of steps, EMA decay."""

    steps: int
    batch_size: int
    lr: float
    weight_decay: float = 0.0
    ema_rate: float = 0.9999

    def validate(self) -> None:
        if self.steps < 0 or self.batch_size < 1:
            raise ValueError(f"steps must be >= 0 and batch_size >= 1, got {self.steps}, {self.batch_size}")
        if self.lr <= 0 or self.weight_decay < 0:
            raise ValueError(f"lr must be > 0 and weight_decay >= 0, got {self.lr}, {self.weight_decay}")
        if not 0.0 <= self.ema_rate < 1.0:
            raise ValueError(f"ema_rate must be in [0, 1), got {self.ema_rate}")


@dataclass(frozen=True)
class DiffusionPreset:
    """A named recipe: model/diffusion flag overrides plus training hyper-parameters."""

    name: str
    description: str
    model: Mapping[str, Any] = field(default_factory=dict)
    train: TrainHParams = TrainHParams(steps=1000, batch_size=64, lr=1e-4)


PRESETS: Mapping[str, DiffusionPreset] = MappingProxyType({
    p.name: p
    for p in (
        DiffusionPreset(
            name="cifar10",
            description="Improved DDPM CIFAR-10 recipe (about 52.5M parameters): 32px, 128 channels, 3 res "
                        "blocks, learned sigmas, dropout 0.3, 4000-step cosine schedule.",
            model=dict(image_size=32, num_channels=128, num_res_blocks=3, learn_sigma=True, dropout=0.3,
                       diffusion_steps=4000, noise_schedule="cosine"),
            train=TrainHParams(steps=500_000, batch_size=128, lr=1e-4, ema_rate=0.9999),
        ),
        DiffusionPreset(
            name="imagenet64",
            description="Improved DDPM ImageNet-64 recipe, used for STL-10 resized (bicubic) to 64x64 as in the "
                        "PAG paper: 128 channels, 3 res blocks, learned sigmas, 4000-step cosine schedule.",
            model=dict(image_size=64, num_channels=128, num_res_blocks=3, learn_sigma=True, dropout=0.0,
                       diffusion_steps=4000, noise_schedule="cosine"),
            train=TrainHParams(steps=1_500_000, batch_size=128, lr=1e-4, ema_rate=0.9999),
        ),
        DiffusionPreset(
            name="digits-small",
            description="16x16 one-channel digits on a 2-core CPU in minutes: 32 channels, levels (1, 2, 2), "
                        "attention at 4x4, learned sigmas, 1000-step cosine schedule.",
            model=dict(image_size=16, num_channels=32, num_res_blocks=1, channel_mult=(1, 2, 2),
                       attention_resolutions="4", num_heads=1, learn_sigma=True, dropout=0.0,
                       diffusion_steps=1000, noise_schedule="cosine"),
            train=TrainHParams(steps=1000, batch_size=32, lr=1e-3, ema_rate=0.995),
        ),
    )
})


def get_preset(name: str) -> DiffusionPreset:
    """The preset called ``name``; an unknown name raises KeyError listing the known ones."""
    try:
        return PRESETS[name]
    except KeyError:
        raise KeyError(f"unknown diffusion preset {name!r}; known presets: {sorted(PRESETS)}") from None


# Flags a user may not override: they are fixed by the dataset or by the "no class" scheme.
DATASET_FLAGS = ("class_cond", "num_classes", "in_channels")


def config_for_dataset(preset: DiffusionPreset, overrides: Mapping[str, Any], num_classes: int,
                       in_channels: int) -> dict[str, Any]:
    """create_model_and_diffusion kwargs: defaults < preset < overrides, conditioned on C + 1 labels.

    Raises:
        ValueError: an override names an unknown flag, a dataset-fixed flag, or has the wrong type.
    """
    from pagstore.improved_diffusion.script_util import model_and_diffusion_defaults

    defaults = model_and_diffusion_defaults()
    for key, value in overrides.items():
        if key in DATASET_FLAGS:
            raise ValueError(f"model.{key} is set from the dataset and cannot be overridden")
        if key not in defaults:
            known = sorted(set(defaults) - set(DATASET_FLAGS))
            raise ValueError(f"model.{key}: unknown model/diffusion flag; known: {known}")
        _check_type(key, value, defaults[key])
    config = {**defaults, **preset.model, **overrides}
    config.update(class_cond=True, num_classes=num_classes + 1, in_channels=in_channels)
    if config["channel_mult"] is not None:
        config["channel_mult"] = [int(m) for m in config["channel_mult"]]
    return config


def _check_type(key: str, value: Any, default: Any) -> None:
    if key == "channel_mult":
        ints = isinstance(value, (list, tuple)) and all(isinstance(m, int) and not isinstance(m, bool) for m in value)
        ok = value is None or ints
        expected = "null or a list of integers"
    elif isinstance(default, bool):
        ok, expected = isinstance(value, bool), "true/false"
    elif isinstance(default, int):
        ok, expected = isinstance(value, int) and not isinstance(value, bool), "an integer"
    elif isinstance(default, float):
        ok, expected = isinstance(value, (int, float)) and not isinstance(value, bool), "a number"
    else:
        ok, expected = isinstance(value, str), "a string"
    if not ok:
        raise ValueError(f"model.{key}: expected {expected}, got {value!r}")
