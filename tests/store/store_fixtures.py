"""Deterministic small stores for the store tests (also imported by writer subprocesses)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

CLASSES = ["zero", "one", "two"]
# The store variant new_store / expected make (the contract suite runs once per variant): format version,
# K stored classes (None = all C), grad codec and the gradient arrays' chunk compression.
VARIANTS = {name: {"format_version": v, "num_target_classes": k, "grad_codec": codec, "grad_compression": comp}
            for name, (v, k, codec, comp) in {
                "v1": (1, None, "raw", "zstd"),
                "v2": (2, None, "raw", "zstd"),
                "v2-K2": (2, 2, "raw", "zstd"),
                "v2-K2-int8": (2, 2, "int8", "zstd"),
                "v2-lz4hc": (2, None, "raw", "lz4hc"),
                "v2-none": (2, None, "raw", "none"),
                "v2-K2-int8-none": (2, 2, "int8", "none")}.items()}
VARIANT = dict(VARIANTS["v2"])


def dataset_info() -> dict[str, Any]:
    return {"name": "fake", "fingerprint": "sha256:" + "0" * 64, "class_names": CLASSES, "split": "train"}


def shard_data(k: int, start: int, stop: int, sample_shape: tuple[int, ...], image_dtype: str = "uint8",
               seed: int = 0, num_target_classes: int | None = None) -> dict[str, np.ndarray]:
    """The content of rows [start, stop): a pure function of the rows, so any writer reproduces it.
    K < C: grads (n, K, *S) for ``classes`` chosen like distillation does (true class first)."""
    from pagstore.classes import choose_classes

    n, c = stop - start, len(CLASSES)
    rng = np.random.default_rng([seed, start])
    if image_dtype == "uint8":
        images = rng.integers(0, 256, (n, *sample_shape), dtype=np.uint8)
    else:
        images = rng.normal(size=(n, *sample_shape)).astype(np.float32)
    out = {"images": images, "labels": rng.integers(0, c, n).astype(np.int64),
           "grads": rng.normal(size=(n, c, *sample_shape)).astype(np.float32),
           "index": np.arange(start, stop, dtype=np.int64) * 3 + 1}
    kk = num_target_classes or c
    out["classes"] = choose_classes(out["labels"], out["index"], c, kk, seed=0)
    out["grads"] = out["grads"][:, :kk]
    return out


def expected(num_samples: int, samples_per_shard: int, sample_shape: tuple[int, ...], image_dtype: str = "uint8",
             seed: int = 0) -> dict[str, np.ndarray]:
    """What a store of VARIANT holds; ``grads`` as a reader decodes them (int8 codec: encoded then decoded)."""
    k = VARIANT["num_target_classes"]
    parts = [shard_data(j, s, min(s + samples_per_shard, num_samples), sample_shape, image_dtype, seed, k)
             for j, s in enumerate(range(0, num_samples, samples_per_shard))]
    out = {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}
    if VARIANT["grad_codec"] == "int8":
        from pagstore.codec import decode_int8, encode_int8

        out["grads"] = decode_int8(*encode_int8(out["grads"]))
    return out


def new_store(path: str | Path, num_samples: int = 40, samples_per_shard: int = 8,
              grad_mantissa_bits: int | None = None,
              sample_shape: tuple[int, ...] = (1, 4, 4), image_dtype: str = "uint8", grad_dtype: str = "float16",
              mode: str = "w-") -> Any:
    from pagstore.store import create_store

    return create_store(path, mode, num_samples=num_samples, num_classes=len(CLASSES), sample_shape=sample_shape,
                        image_dtype=image_dtype, grad_dtype=grad_dtype, dataset=dataset_info(),
                        source={"name": "fake", "scale": 2.0}, samples_per_shard=samples_per_shard,
                        grad_mantissa_bits=grad_mantissa_bits, **VARIANT)


def write_shards(store: Any, shards: list[int] | None = None, seed: int = 0) -> None:
    for k in range(store.num_shards) if shards is None else shards:
        sl = store.shard_slice(k)
        d = shard_data(k, sl.start, sl.stop, store.sample_shape, store.spec.image_dtype, seed,
                       store.spec.num_target_classes)
        store.write_shard(k, d["images"], d["labels"], d["grads"], d["index"],
                          None if store.spec.format_version == 1 else d["classes"])


def filled_store(path: str | Path, **kw: Any) -> Any:
    store = new_store(path, **kw)
    write_shards(store)
    return store
