"""The ``distill`` section of pipeline.yaml: store layout and execution, the test-split store, the figures."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pagstore.config import ConfigError


@dataclass(frozen=True)
class DistillCommon:
    """``distill.common``: store layout and execution (``scheduler``: "" local threads, "local-cluster:N",
    or a dask.distributed address; ``workers``: local threads, 0 = all cores)."""

    samples_per_shard: int
    grad_dtype: Literal["float16", "float32"]
    scheduler: str
    batch_size: int
    workers: int
    seed: int
    device: str = "auto"
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    num_target_classes: int | None = None  # K target classes per sample (null = all C; store format v2)
    grad_codec: Literal["raw", "int8"] = "raw"  # "raw" = grad_dtype values; "int8" = int8 + scale per class
    # chunk compression of the gradient arrays (pagstore.chunk_compression); "none" = raw bytes + crc32c
    grad_compression: Literal["zstd", "lz4hc", "none"] = "zstd"
    export_webdataset: bool = True  # also write the webdataset export (shards/); false = zarr only

    def validate(self) -> None:
        from pagstore.devices import check_device

        check_device(self.device)
        for key, low in (("samples_per_shard", 1), ("batch_size", 1), ("workers", 0)):
            if getattr(self, key) < low:
                raise ValueError(f"{key} must be >= {low}, got {getattr(self, key)}")
        if self.num_target_classes is not None and self.num_target_classes < 1:
            raise ValueError(f"num_target_classes must be >= 1 or null, got {self.num_target_classes}")


@dataclass(frozen=True)
class DistillTest:
    """``distill.test``: SBG gradients of the first ``num_test`` test images (evaluation's alignment metric)."""

    num_test: int

    def validate(self) -> None:
        if self.num_test < 1:
            raise ValueError(f"num_test must be >= 1, got {self.num_test}")


@dataclass(frozen=True)
class DistillPlots:
    """``distill.plots``: images per figure and the SBG timesteps of the t-sweep figure."""

    num_images: int
    t_sweep: tuple[int, ...]


def source_params(params_path: Path, name: str) -> dict[str, Any]:
    """The effective ``distill.sources.<name>`` mapping, the profile's recipe merged (checked strictly by the
    source's params dataclass)."""
    from pagstore.profiles import effective_params
    from pagstore.sources import SOURCES

    sources = effective_params(params_path).get("distill", {}).get("sources", {})
    if name not in SOURCES:
        raise ConfigError(f"--source {name!r}: unknown gradient source; known: {sorted(SOURCES)}")
    if not isinstance(sources, dict) or not isinstance(sources.get(name), dict):
        raise ConfigError(f"{params_path}: distill.sources.{name} must be a mapping of the source's parameters")
    return dict(sources[name])
