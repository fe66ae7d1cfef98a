"""The ``train:`` section of pipeline.yaml as frozen dataclasses.

``train.common`` is the recipe shared by every method; ``train.methods.<name>`` are methods fed by a
gradient store (``stores/<store>``), ``train.plain_methods.<name>`` methods without one. They are two
mappings because DVC's ``foreach`` cannot make a dependency conditional on a value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from pagstore.training.objectives import ObjectiveSpec


@dataclass(frozen=True)
class TrainCommon:
    """Model and SGD recipe shared by all methods (paper: lr 0.01, momentum 0.9, wd 1e-4, 100 epochs,
    batch 64, lr / 10 at epochs 50 and 75; crop padding 4 and flips for CIFAR).

    ``channels_last``: model and image batches in channels_last memory format (faster convolutions and
    double backward, see benchmarks/bench_pag_step.py; float rounding differs, hence off by default)."""

    model: str
    epochs: int
    batch_size: int
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 1e-4
    milestones: tuple[int, ...] = (50, 75)
    gamma: float = 0.1
    seed: int = 0
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    normalize: bool = True
    augment: bool = True
    crop_pad: int = 4
    flip: bool = True
    eval_samples: int = 1000
    align_samples: int = 64
    # Where and how it runs (pagstore.devices). channels_last "auto" = on CUDA only (true also on the CPU:
    # faster convolutions and double backward there too, benchmarks/bench_pag_step.py, but other float
    # rounding, so not by default); compile: torch.compile
    # the model in place; loader_workers: DataLoader processes prefetching store shards (0 = in process).
    device: str = "auto"
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    channels_last: bool | Literal["auto"] = "auto"
    compile: bool = False
    loader_workers: int = 0

    def validate(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(f"epochs and batch_size must be >= 1, got {self.epochs}, {self.batch_size}")
        if self.lr <= 0 or self.momentum < 0 or self.weight_decay < 0 or not 0 < self.gamma <= 1:
            raise ValueError(
                f"need lr > 0, momentum >= 0, weight_decay >= 0, 0 < gamma <= 1; got lr={self.lr}, "
                f"momentum={self.momentum}, weight_decay={self.weight_decay}, gamma={self.gamma}"
            )
        if list(self.milestones) != sorted(set(self.milestones)) or any(m < 1 for m in self.milestones):
            raise ValueError(f"milestones must be increasing epochs >= 1, got {list(self.milestones)}")
        if self.crop_pad < 0 or self.eval_samples < 1 or self.align_samples < 0:
            raise ValueError("crop_pad and align_samples must be >= 0, eval_samples >= 1")
        from pagstore.devices import check_device

        check_device(self.device)
        if self.loader_workers < 0:
            raise ValueError(f"loader_workers must be >= 0, got {self.loader_workers}")


@dataclass(frozen=True)
class TrainSection:
    """The whole ``train:`` section."""

    common: TrainCommon
    methods: dict[str, ObjectiveSpec]
    plain_methods: dict[str, ObjectiveSpec]

    def validate(self) -> None:
        both = sorted(set(self.methods) & set(self.plain_methods))
        if both:
            raise ValueError(f"method name(s) {both} appear in both methods and plain_methods")
        for name, spec in self.methods.items():
            if spec.store is None:
                raise ValueError(f"methods.{name}: store is null; methods without a store go in plain_methods")
        for name, spec in self.plain_methods.items():
            if spec.store is not None:
                raise ValueError(f"plain_methods.{name}: has store {spec.store!r}; move it to methods")

    def method(self, name: str) -> ObjectiveSpec:
        """The spec of method ``name`` from either mapping (KeyError lists the known names)."""
        if name in self.methods:
            return self.methods[name]
        if name in self.plain_methods:
            return self.plain_methods[name]
        known = sorted(self.methods) + sorted(self.plain_methods)
        raise KeyError(f"unknown train method {name!r}; pipeline.yaml train defines {', '.join(known)}")
