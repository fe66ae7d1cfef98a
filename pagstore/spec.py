"""The gradient-store spec (format v2, v1 still read): the group attributes of a store, parsed and validated
in ONE place.

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

FORMAT_VERSION = 2
SUPPORTED_VERSIONS = (1, 2)
IMAGE_DTYPES = ("uint8", "float32")
GRAD_DTYPES = ("float16", "float32")
# v2 per-array codec of ``grads``: "raw" = grad_dtype values; "int8" = int8 values q with one float32 scale
# per (sample, class) in ``grad_scales``, decoded as q * scale (only the direction of a gradient is used).
GRAD_CODECS = ("raw", "int8")
# v2 class selections: "all" = K = C, classes[i] = 0..C-1 in class order (v1's meaning, grads[i, c] is
# class c); "true-first" = K < C, classes[i] = the true class, then K - 1 others drawn by (seed, index).
CLASS_SELECTIONS = ("all", "true-first")
PIXEL_SPACES = ("unit", "raw")
GRAD_SEMANTICS = (
    "direction only: grads[i, c] is a direction in model-space input (pixel_space) for class c of the "
    "un-augmented sample i; its norm carries no meaning (compare with cosine)"
)
ARRAYS = ("images", "labels", "grads", "index", "done")  # format v1
ARRAYS_V2 = ("images", "labels", "classes", "grads", "index", "done")  # + "grad_scales" with codec int8


def arrays_of(spec: StoreSpec) -> tuple[str, ...]:
    """The zarr arrays a store of this spec holds."""
    if spec.format_version == 1:
        return ARRAYS
    return ARRAYS_V2 + (("grad_scales",) if spec.grad_codec == "int8" else ())


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
    """The parsed attributes of a store (format v2, or v1: then K = C, codec "raw", and created_at is kept).

    Attributes:
        num_samples: N, rows of every per-sample array.
        sample_shape: S, e.g. (ch, H, W) for images or (D,) for vectors; images are (N, *S).
        image_dtype: "uint8" (pixel_space "unit": model input = x / 255) or "float32" ("raw").
        grad_dtype: "float16" or "float32": the dtype readers get grads in, (N, K, *S).
        samples_per_shard: rows per zarr shard (the unit of writing and of completion in ``done``).
        dataset: provenance of the images; ``num_classes`` = len(class_names) = C.
        source: the gradient source name and its parameters (free-form beyond ``name``).
        grad_mantissa_bits: None = grads kept at full grad_dtype precision; k = grads were rounded to k
            mantissa bits before storage (lossy, for size: the direction is what matters), still
            stored as plain grad_dtype values, so readers need not know.
        num_target_classes: K (v2), target classes stored per sample (v1: always C).
        class_selection: v2: {"method": "all"} (K = C) or {"method": "true-first", "seed": s} (K < C).
        grad_codec: v2: "raw" or "int8" (see GRAD_CODECS); v1 is always "raw".
        created_at: v1 only (wall-clock time made identical distillations differ); v2 writes "".
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
    num_target_classes: int | None = None  # None: K = C
    class_selection: Mapping[str, Any] = field(default_factory=lambda: {"method": "all"}, hash=False)
    grad_codec: str = "raw"

    def __post_init__(self) -> None:
        self.validate()

    @property
    def num_classes(self) -> int:
        return len(self.dataset.class_names)

    @property
    def num_shards(self) -> int:
        return math.ceil(self.num_samples / self.samples_per_shard)

    @property
    def num_stored_classes(self) -> int:
        """K, the target classes stored per sample (C unless a v2 store chose fewer)."""
        return self.num_classes if self.num_target_classes is None else self.num_target_classes

    @property
    def grad_shape(self) -> tuple[int, ...]:
        """Per-sample gradient shape (K, *S) (K = C for v1 and for K = C stores)."""
        return (self.num_stored_classes, *self.sample_shape)

    @property
    def stored_grad_dtype(self) -> str:
        """dtype of the ``grads`` array itself: int8 with codec int8, else grad_dtype."""
        return "int8" if self.grad_codec == "int8" else self.grad_dtype

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
        if self.grad_codec not in GRAD_CODECS:
            raise SpecError(f"grad_codec must be one of {GRAD_CODECS}, got {self.grad_codec!r}")
        if self.format_version == 1 and (self.grad_codec != "raw" or self.num_target_classes is not None):
            raise SpecError("format_version 1 stores hold all C classes with codec 'raw'")
        if self.grad_codec == "int8" and self.grad_mantissa_bits is not None:
            raise SpecError("grad_mantissa_bits applies to codec 'raw' only, not 'int8'")
        k, c = self.num_stored_classes, self.num_classes
        if not 1 <= k <= c:
            raise SpecError(f"num_target_classes must be in [1, C={c}], got {k}")
        method = self.class_selection.get("method")
        want = "all" if k == c else "true-first"
        if method != want:
            raise SpecError(f"class_selection.method must be {want!r} for K={k} of C={c} classes, got {method!r}")

    def to_attrs(self) -> dict[str, Any]:
        """JSON-able group attributes (the inverse of :meth:`from_attrs`)."""
        attrs = {
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
        if self.format_version == 1:
            return attrs
        del attrs["created_at"]  # v2: no wall-clock time in a hashed file
        attrs.update({"num_target_classes": self.num_stored_classes, "class_selection": dict(self.class_selection),
                      "grad_codec": self.grad_codec})
        return attrs

    @classmethod
    def from_attrs(cls, attrs: Mapping[str, Any], where: str = "store") -> StoreSpec:
        """Parse group attributes; refuse unknown versions and name missing or mistyped keys."""
        if "format_version" not in attrs:
            raise SpecError(f"{where}: not a pagstore gradient store (no 'format_version' attribute)")
        version = attrs["format_version"]
        if version not in SUPPORTED_VERSIONS:
            raise SpecError(f"{where}: {_version_message(version)}")
        required = ("num_samples", "sample_shape", "image_dtype", "grad_dtype", "pixel_space",
                    "samples_per_shard", "dataset", "source", "created_by", "grad_semantics")
        required += ("created_at",) if version == 1 else ("num_target_classes", "class_selection", "grad_codec")
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
            v2: dict[str, Any] = {}
            if version == 2:
                if not isinstance(attrs["class_selection"], Mapping):
                    raise SpecError(f"'class_selection' must be a mapping, got {attrs['class_selection']!r}")
                k = _int(attrs, "num_target_classes")
                v2 = {"num_target_classes": None if k == len(ds["class_names"]) else k,  # K = C: one spelling
                      "class_selection": dict(attrs["class_selection"]), "grad_codec": str(attrs["grad_codec"])}
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
                created_at=str(attrs.get("created_at", "")),
                **v2,
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
