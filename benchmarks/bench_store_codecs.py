"""Chunk codecs of the gradient arrays: bytes against read throughput, to choose ``grad_compression``.

For each candidate (a blosc cname, clevel, shuffle, or "none": no compressor, raw bytes + crc32c) the same
photo-like class-mean gradients (bench_store_size's default data) are written as a float16 store and an int8
store; the candidate applies to the gradient arrays (grads, grad_scales) as ``grad_compression`` does, the
other arrays keep zstd. Each row gives the grads' bytes as a fraction of their raw bytes and the read rate of
whole stores through ``GradientStore.read_stored`` (pagstore's shard decoder, chunks in threads; no float32
conversion), as MiB/s of raw grads, best of ``--repeats`` interleaved rounds. The first row is the default
("zstd"); "lz4hc 5 shuffle" is ``grad_compression="lz4hc"``, "none" is ``grad_compression="none"``. A store
records its codecs in its zarr metadata, so a store of any row reads everywhere.

    python benchmarks/bench_store_codecs.py [--n 1024] [--repeats 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CANDIDATES = [("zstd", 5, "shuffle"), ("zstd", 1, "bitshuffle"), ("lz4", 5, "shuffle"), ("lz4", 5, "bitshuffle"),
              ("lz4hc", 5, "shuffle"), ("lz4hc", 5, "bitshuffle"), ("none", 0, "")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1024)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    import zarr

    import pagstore.store as store_mod
    from bench_store_read import build
    from pagstore.chunk_compression import compression_of
    from pagstore.store import open_store

    default = store_mod.compressors
    stores = {}
    with tempfile.TemporaryDirectory() as tmp:
        for cname, level, shuffle in CANDIDATES:
            def candidate(compression: str = "zstd", cname: str = cname, level: int = level,
                          shuffle: str = shuffle) -> list:
                """The store asks for the gradient arrays' compression ("lz4hc" below), "zstd" for the rest."""
                if compression == "zstd":
                    return default("zstd")
                return [zarr.codecs.BloscCodec(cname=cname, clevel=level, shuffle=shuffle), zarr.codecs.Crc32cCodec()]

            # "none" is the option itself; a blosc candidate replaces what the store asks for its gradient arrays
            store_mod.compressors = default if cname == "none" else candidate
            for codec in ("raw", "int8"):
                work = Path(tmp) / f"{cname}{level}-{shuffle}-{codec}"
                work.mkdir()
                path = build(work, args.n, codec, grad_compression="none" if cname == "none" else "lz4hc")
                arrays = open_store(path).arrays
                inner = arrays["grads"].metadata.codecs[0].codecs  # the candidate really is what was written
                assert len(inner) == 2 if cname == "none" else str(inner[1].cname.value) == cname, inner
                assert compression_of(arrays["images"]) == "zstd"
                size = sum(f.stat().st_size for f in (path / "grads").rglob("*") if f.is_file())
                stores[(cname, level, shuffle, codec)] = (path, size)
        store_mod.compressors = default
        rates = dict.fromkeys(stores, 0.0)
        for _ in range(args.repeats):
            for key, (path, _) in stores.items():
                st = open_store(path)
                t = time.perf_counter()
                st.read_stored(slice(0, args.n))
                rates[key] = max(rates[key], 1 / (time.perf_counter() - t))
    print(f"N={args.n}, photo-like class-mean grads 10 x 3x32x32; read_stored of the whole store")
    print(f"  {'chunk codec':<24} {'f16 bytes':>9} {'f16 MiB/s':>9} {'int8 bytes':>10} {'int8 MiB/s':>10}")
    for cname, level, shuffle in CANDIDATES:
        cells = []
        for codec, item in (("raw", 2), ("int8", 1)):
            raw = args.n * 10 * 3 * 32 * 32 * item
            cells += [stores[(cname, level, shuffle, codec)][1] / raw, rates[(cname, level, shuffle, codec)] * raw / 2**20]
        label = "none (raw + crc32c)" if cname == "none" else f"{cname} {level} {shuffle}"
        print(f"  {label:<24} {cells[0]:>9.3f} {cells[1]:>9.0f} {cells[2]:>10.3f} {cells[3]:>10.0f}")
    print("  bytes: of the raw grads (float16 or int8); MiB/s: raw grads decoded per second")


if __name__ == "__main__":
    main()
