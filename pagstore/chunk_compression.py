"""Chunk compression of the store's gradient arrays (``grad_compression``): the zarr codec lists pagstore writes.

Every per-sample array is stored as ``bytes`` -> [compressor] -> ``crc32c`` per inner chunk. The gradient
arrays (``grads`` and, with the int8 direction codec, ``grad_scales``) choose the compressor per store:

- ``"zstd"``: blosc zstd, level 5, byte shuffle. The default, and what every store before this option holds.
- ``"lz4hc"``: blosc lz4hc, level 5, byte shuffle: cheaper to decode, a few percent more bytes
  (``benchmarks/bench_store_codecs.py``).
- ``"none"``: no compressor. An inner chunk is its raw little-endian bytes followed by their crc32c, so a
  read is a copy from the page cache and a checksum (``pagstore.shard_decode`` reads it straight into the
  result). SBG gradients keep ~0.87 of their float16 bytes under zstd, so compression buys little there.

The crc32c stays in every list: raw bytes have no checksum and neither has blosc, so without it flipped bits
would read back as silently wrong gradients. The choice lives in zarr's own metadata (the arrays' codec
lists), not in the group attributes: plain zarr reads any of them, and there is one place that says it.
"""

from __future__ import annotations

from typing import Any

import zarr

GRAD_COMPRESSIONS = ("zstd", "lz4hc", "none")
DEFAULT_COMPRESSION = "zstd"
GRAD_ARRAYS = ("grads", "grad_scales")  # the arrays grad_compression applies to; the others keep zstd

_BLOSC = {"zstd": ("zstd", 5, "shuffle"), "lz4hc": ("lz4hc", 5, "shuffle")}  # name -> (cname, clevel, shuffle)


def check_compression(value: Any) -> str:
    """``value`` if it names a compression, else ValueError (one line, naming the key and the choices)."""
    if value not in GRAD_COMPRESSIONS:
        raise ValueError(f"grad_compression must be one of {list(GRAD_COMPRESSIONS)}, got {value!r}")
    return value


def compressors(compression: str = DEFAULT_COMPRESSION) -> list[Any]:
    """The zarr bytes-to-bytes codecs of one inner chunk for ``compression`` (one of GRAD_COMPRESSIONS):
    a blosc codec then crc32c, or crc32c alone for "none"."""
    check_compression(compression)
    if compression == "none":
        return [zarr.codecs.Crc32cCodec()]
    cname, clevel, shuffle = _BLOSC[compression]
    return [zarr.codecs.BloscCodec(cname=cname, clevel=clevel, shuffle=shuffle), zarr.codecs.Crc32cCodec()]


def compression_of(arr: zarr.Array) -> str | None:
    """Which of GRAD_COMPRESSIONS the (sharded) array's inner chunks use, or None for any other codec list
    (e.g. a store recompressed by another tool: it still reads through zarr)."""
    codecs = tuple(getattr(arr.metadata, "codecs", ()))
    if len(codecs) != 1 or not isinstance(codecs[0], zarr.codecs.ShardingCodec):
        return None
    have = [_signature(c) for c in codecs[0].codecs[1:]]  # after the array-to-bytes codec
    for name in GRAD_COMPRESSIONS:
        if have == [_signature(c) for c in compressors(name)]:
            return name
    return None


def _signature(codec: Any) -> tuple[Any, ...]:
    """What identifies a codec here (a BloscCodec read back from zarr.json also carries its typesize and
    blocksize, so dataclass equality with a freshly made one fails)."""
    if isinstance(codec, zarr.codecs.BloscCodec):
        return ("blosc", str(getattr(codec.cname, "value", codec.cname)), int(codec.clevel),
                str(getattr(codec.shuffle, "value", codec.shuffle)))
    return (type(codec).__name__,)
