"""The gradient-store spec (format v1): the group attributes of a store, parsed and validated in ONE place.

A store's zarr group attributes hold everything needed to interpret its arrays (see docs/store-format.md):
what the images are, where the gradients came from, their dtype and meaning, and the shard size. Every
reader goes through :meth:`StoreSpec.from_attrs`, so an unknown format version or a missing key is refused
here, with a message naming it, instead of surfacing later as a shape error.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

FORMAT_VERSION = 1
SUPPORTED_VERSIONS = (1,)
IMAGE_DTYPES = ("uint8", "float32")
GRAD_DTYPES = ("float16", "float32")
PIXEL_SPACES = ("unit", "raw")
GRAD_SEMANTICS = (
    "direction only: grads[i, c] is a direction in model-space input (pixel_space) for class c of the "
    "un-augmented sample i; its norm carries no meaning (compare with cosine)"
)
ARRAYS = ("images", "labels", "grads", "index", "done")


class SpecError(ValueError):
    """The store's attributes are missing, malformed, or of an unsupported format version."""


@dataclass(frozen=True)
class DatasetInfo:
    """Which data the store was made from. ``fingerprint`` is the prepared split's content hash."""

    name: str
    fingerprint: str
    class_names: tuple[str, ...]
    split: str

    def to_attrs(self) -> dict[str, Any]:
        return {"name": self.name, "fingerprint": self.fingerprint,
                "class_names": list(self.class_names), "split": self.split}


@dataclass(frozen=True)
class StoreSpec:
    """The parsed attributes of a format-v1 store.

    Attributes:
        num_samples: N, rows of every per-sample array.
        sample_shape: S, e.g. (ch, H, W) for images or (D,) for vectors; images are (N, *S).
        image_dtype: "uint8" (pixel_space "unit": model input = x / 255) or "float32" ("raw").
        grad_dtype: "float16" or "float32"; grads are (N, C, *S).
        samples_per_shard: rows per zarr shard (the unit of writing and of completion in ``done``).
        dataset: provenance of the images; ``num_classes`` = len(class_names) = C.
        source: the gradient source name and its parameters (free-form beyond ``name``).
        grad_mantissa_bits: None = grads kept at full grad_dtype precision; k = grads were rounded to k
            mantissa bits before storage (lossy, for size: the direction is what matters), still
            stored as plain grad_dtype values, so readers need not know.
    """

    num_samples: int
    sample_shape: tuple[int, ...]
    image_dtype: str
    grad_dtype: str
    pixel_space: str
    samples_per_shard: int
    dataset: DatasetInfo
    source: Mapping[str, Any] = field(hash=False)
    created_by: str = ""
    created_at: str = ""
    grad_semantics: str = GRAD_SEMANTICS
    grad_mantissa_bits: int | None = None
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        self.validate()

    @property
    def num_classes(self) -> int:
        return len(self.dataset.class_names)

    @property
    def num_shards(self) -> int:
        return math.ceil(self.num_samples / self.samples_per_shard)

    @property
    def grad_shape(self) -> tuple[int, ...]:
        """Per-sample gradient shape (C, *S)."""
        return (self.num_classes, *self.sample_shape)

    def shard_slice(self, k: int) -> slice:
        """Rows [start, stop) of shard ``k``; the last shard may be shorter."""
        if not 0 <= k < self.num_shards:
            raise IndexError(f"shard {k} out of range: the store has {self.num_shards} shards")
        start = k * self.samples_per_shard
        return slice(start, min(start + self.samples_per_shard, self.num_samples))

    def validate(self) -> None:
        """Raise SpecError for impossible combinations (called on construction)."""
        if self.format_version not in SUPPORTED_VERSIONS:
            raise SpecError(_version_message(self.format_version))
        if self.num_samples < 1:
            raise SpecError(f"num_samples must be >= 1, got {self.num_samples}")
        if not self.sample_shape or any(int(d) < 1 for d in self.sample_shape):
            raise SpecError(f"sample_shape must be non-empty positive sizes, got {self.sample_shape}")
        if self.image_dtype not in IMAGE_DTYPES:
            raise SpecError(f"image_dtype must be one of {IMAGE_DTYPES}, got {self.image_dtype!r}")
        if self.grad_dtype not in GRAD_DTYPES:
            raise SpecError(f"grad_dtype must be one of {GRAD_DTYPES}, got {self.grad_dtype!r}")
        if self.pixel_space not in PIXEL_SPACES:
            raise SpecError(f"pixel_space must be one of {PIXEL_SPACES}, got {self.pixel_space!r}")
        expected = "unit" if self.image_dtype == "uint8" else "raw"
        if self.pixel_space != expected:
            raise SpecError(f"pixel_space {self.pixel_space!r} does not fit image_dtype {self.image_dtype!r} "
                            f"(expected {expected!r})")
        max_bits = 10 if self.grad_dtype == "float16" else 23
        if self.grad_mantissa_bits is not None and not 1 <= self.grad_mantissa_bits <= max_bits:
            raise SpecError(f"grad_mantissa_bits must be None or in [1, {max_bits}] for {self.grad_dtype}, "
                            f"got {self.grad_mantissa_bits}")
        if self.samples_per_shard < 1:
            raise SpecError(f"samples_per_shard must be >= 1, got {self.samples_per_shard}")
        if self.num_classes < 1:
            raise SpecError("dataset.class_names is empty")
        if not isinstance(self.source.get("name"), str):
            raise SpecError(f"source must have a string 'name', got {dict(self.source)!r}")

    def to_attrs(self) -> dict[str, Any]:
        """JSON-able group attributes (the inverse of :meth:`from_attrs`)."""
        return {
            "format_version": self.format_version,
            "num_samples": self.num_samples,
            "sample_shape": list(self.sample_shape),
            "image_dtype": self.image_dtype,
            "grad_dtype": self.grad_dtype,
            "pixel_space": self.pixel_space,
            "grad_semantics": self.grad_semantics,
            "grad_mantissa_bits": self.grad_mantissa_bits,
            "samples_per_shard": self.samples_per_shard,
            "dataset": self.dataset.to_attrs(),
            "source": dict(self.source),
            "created_by": self.created_by,
            "created_at": self.created_at,
        }

    @classmethod
    def from_attrs(cls, attrs: Mapping[str, Any], where: str = "store") -> StoreSpec:
        """Parse group attributes; refuse unknown versions and name missing or mistyped keys."""
        if "format_version" not in attrs:
            raise SpecError(f"{where}: not a pagstore gradient store (no 'format_version' attribute)")
        version = attrs["format_version"]
        if version not in SUPPORTED_VERSIONS:
            raise SpecError(f"{where}: {_version_message(version)}")
        required = ("num_samples", "sample_shape", "image_dtype", "grad_dtype", "pixel_space",
                    "samples_per_shard", "dataset", "source", "created_by", "created_at", "grad_semantics")
        missing = [k for k in required if k not in attrs]
        if missing:
            raise SpecError(f"{where}: spec attribute(s) missing: {', '.join(missing)}")
        ds = attrs["dataset"]
        if not isinstance(ds, Mapping):
            raise SpecError(f"{where}: 'dataset' must be a mapping, got {type(ds).__name__}")
        ds_missing = [k for k in ("name", "fingerprint", "class_names", "split") if k not in ds]
        if ds_missing:
            raise SpecError(f"{where}: spec attribute(s) missing: {', '.join('dataset.' + k for k in ds_missing)}")
        if not isinstance(attrs["source"], Mapping):
            raise SpecError(f"{where}: 'source' must be a mapping, got {type(attrs['source']).__name__}")
        try:
            return cls(
                format_version=int(version),
                num_samples=_int(attrs, "num_samples"),
                sample_shape=tuple(int(d) for d in attrs["sample_shape"]),
                image_dtype=str(attrs["image_dtype"]),
                grad_dtype=str(attrs["grad_dtype"]),
                pixel_space=str(attrs["pixel_space"]),
                grad_semantics=str(attrs["grad_semantics"]),
                grad_mantissa_bits=_opt_int(attrs, "grad_mantissa_bits"),
                samples_per_shard=_int(attrs, "samples_per_shard"),
                dataset=DatasetInfo(name=str(ds["name"]), fingerprint=str(ds["fingerprint"]),
                                    class_names=tuple(str(c) for c in ds["class_names"]), split=str(ds["split"])),
                source=dict(attrs["source"]),
                created_by=str(attrs["created_by"]),
                created_at=str(attrs["created_at"]),
            )
        except SpecError as exc:
            raise SpecError(f"{where}: {exc}") from None
        except (TypeError, ValueError) as exc:
            raise SpecError(f"{where}: malformed spec attribute ({exc})") from None


def _int(attrs: Mapping[str, Any], key: str) -> int:
    value = attrs[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(f"spec attribute {key!r} must be an integer, got {value!r}")
    return value


def _opt_int(attrs: Mapping[str, Any], key: str) -> int | None:
    return None if attrs.get(key) is None else _int(attrs, key)


def _version_message(version: Any) -> str:
    supported = ", ".join(str(v) for v in SUPPORTED_VERSIONS)
    newer = isinstance(version, int) and version > max(SUPPORTED_VERSIONS)
    hint = " (written by a newer pagstore; upgrade pagstore to read it)" if newer else ""
    return f"unsupported store format_version {version!r}{hint}; this pagstore reads format_version {supported}"
