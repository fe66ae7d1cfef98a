"""Bytes on disk per gradient sample, and fidelity of the stored directions, vs the reference layout.

Reference (the original PAG code): one float32 torch tensor N x (C+1) x 3 x 32 x 32 (image + C gradients)
written with torch.save. Ours: a pagstore (uint8 images, float16 grads, zstd+shuffle, crc32c).
Gradients are realistic, not noise: the class-mean heuristic g_c = s * mean_c - x on natural images,
either crops of the two photos shipped with scikit-learn (classes = k-means clusters of the crops) or
scikit-learn digits upsampled to 32x32 and tiled to 3 channels (classes = digits).
``--store PATH`` instead takes real gradients from an existing store (e.g. the pipeline's SBG store
stores/sbg, digits 1x16x16) and rewrites them under every variant.
Rows: the format-v1 layouts (float16 / mantissa-rounded float16 / float32, old rows) beside the format-v2
direction codec int8 (one float32 scale per sample and class), with and without the webdataset export, and
the v2 float16 and int8 stores with the gradient arrays' chunks in lz4hc or uncompressed
(``grad_compression``; the default rows are zstd).
Goals: v1 <= 0.3x the reference bytes; v2 int8 <= 0.15x at mean cosine >= 0.9999, minimum >= 0.999 (issue 15).

    python benchmarks/bench_store_size.py [--n 1000] [--source photos|digits|both] [--store stores/sbg]
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
C = 10
# (name, format_version, grad_dtype, grad_mantissa_bits, grad_codec, grad_compression)
VARIANTS = [("v1 float16", 1, "float16", None, "raw", "zstd"), ("v1 f16-m8", 1, "float16", 8, "raw", "zstd"),
            ("v1 f16-m7", 1, "float16", 7, "raw", "zstd"), ("v1 float32", 1, "float32", None, "raw", "zstd"),
            ("v2 float16", 2, "float16", None, "raw", "zstd"), ("v2 int8", 2, "float32", None, "int8", "zstd"),
            ("v2 f16 lz4hc", 2, "float16", None, "raw", "lz4hc"), ("v2 int8 lz4hc", 2, "float32", None, "int8", "lz4hc"),
            ("v2 f16 none", 2, "float16", None, "raw", "none"), ("v2 int8 none", 2, "float32", None, "int8", "none")]


def natural_images(n: int, source: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n natural-looking uint8 (n, 3, 32, 32) images and int64 labels in [0, 10)."""
    rng = np.random.default_rng(seed)
    if source == "digits":
        from sklearn.datasets import load_digits

        d = load_digits()
        pick = rng.integers(0, len(d.target), n)
        small = d.images[pick] / 16.0  # (n, 8, 8) in [0, 1]
        big = small.repeat(4, axis=1).repeat(4, axis=2)  # nearest upsampling to 32x32
        big = big + rng.normal(0, 0.02, big.shape)  # sensor-like noise so pixels are not exact repeats
        images = np.clip(np.repeat(big[:, None], 3, axis=1) * 255, 0, 255).astype(np.uint8)
        return images, d.target[pick].astype(np.int64)
    from sklearn.cluster import KMeans
    from sklearn.datasets import load_sample_images

    photos = load_sample_images().images
    images = np.empty((n, 3, 32, 32), np.uint8)
    for i in range(n):
        im = photos[rng.integers(len(photos))]
        size = int(rng.choice([32, 64, 96]))  # crops at several scales, downsampled to 32x32
        r, c = rng.integers(0, im.shape[0] - size), rng.integers(0, im.shape[1] - size)
        crop = im[r:r + size, c:c + size].astype(np.float32)
        f = size // 32
        crop = crop.reshape(32, f, 32, f, 3).mean(axis=(1, 3))
        images[i] = np.clip(crop, 0, 255).astype(np.uint8).transpose(2, 0, 1)
    feats = images.reshape(n, 3, 8, 4, 8, 4).mean(axis=(3, 5)).reshape(n, -1)
    labels = KMeans(C, n_init=3, random_state=seed).fit_predict(feats).astype(np.int64)
    return images, labels


def class_mean_gradients(images: np.ndarray, labels: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """g[i, c] = scale * mean of class c - x_i, in [0, 1] pixel space. (n, C, 3, 32, 32) float32."""
    x = images.astype(np.float32) / 255.0
    means = np.stack([x[labels == c].mean(0) if (labels == c).any() else x.mean(0) for c in range(C)])
    return scale * means[None] - x[:, None]


def du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def store_gradients(path: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Images, labels and float32 gradients (n, C, *S) of an existing (K = C) store, e.g. stores/sbg."""
    from pagstore.store import open_store

    store = open_store(path)
    images, labels, grads = store.read(slice(None))
    return images, labels, grads.astype(np.float32)


def measure(images: np.ndarray, labels: np.ndarray, grads: np.ndarray, source: str,
            workdir: Path) -> dict[str, dict[str, float]]:
    import torch

    from pagstore.shards import export_webdataset
    from pagstore.store import create_store

    n, c, shape = grads.shape[0], grads.shape[1], grads.shape[2:]
    x = images.astype(np.float32) / 255.0 if images.dtype == np.uint8 else images.astype(np.float32)
    ref = torch.from_numpy(np.concatenate([x[:, None], grads], axis=1))
    ref_path = workdir / f"ref-{source}.pt"
    torch.save(ref, ref_path)
    ref_bytes = ref_path.stat().st_size
    out: dict[str, dict[str, float]] = {}
    for name, version, dtype, bits, codec, compression in VARIANTS:
        path = workdir / f"store-{source}-{name.replace(' ', '_')}"
        t = time.perf_counter()
        store = create_store(path, "w", num_samples=n, num_classes=c, sample_shape=shape, grad_dtype=dtype,
                             dataset={"name": source, "fingerprint": "-", "class_names": [str(k) for k in range(c)],
                                      "split": "bench"}, source={"name": source},
                             image_dtype=str(images.dtype), grad_mantissa_bits=bits, grad_codec=codec,
                             grad_compression=compression, format_version=version)
        for k in range(store.num_shards):
            sl = store.shard_slice(k)
            store.write_shard(k, images[sl], labels[sl], grads[sl], np.arange(sl.start, sl.stop))
        write_s = time.perf_counter() - t
        t = time.perf_counter()
        stored = store.read(slice(0, n))[2]
        read_s = time.perf_counter() - t
        stored = stored.astype(np.float32).reshape(n * c, -1)
        flat = grads.reshape(n * c, -1)
        norms = np.linalg.norm(stored, axis=1) * np.linalg.norm(flat, axis=1)
        keep = norms > 0
        cos = (stored * flat).sum(1)[keep] / norms[keep]
        size = du(path)
        export_webdataset(path)
        export = du(path / "shards")
        out[name] = {"ratio": size / ref_bytes, "kib_per_sample": size / n / 1024, "write_s": write_s,
                     "read_mb_s": stored.size * 4 / 1e6 / read_s, "with_export": (size + export) / ref_bytes,
                     "cos_mean": float(cos.mean()), "cos_min": float(cos.min())}
    out["reference"] = {"kib_per_sample": ref_bytes / n / 1024}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--source", choices=["photos", "digits", "both"], default="both")
    ap.add_argument("--store", default=None, help="take real gradients from this store (e.g. stores/sbg)")
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    with tempfile.TemporaryDirectory() as tmp:
        sources = [args.store] if args.store else (["photos", "digits"] if args.source == "both" else [args.source])
        for source in sources:
            if args.store:
                images, labels, grads = store_gradients(args.store)
            else:
                images, labels = natural_images(args.n, source)
                grads = class_mean_gradients(images, labels)
            r = measure(images, labels, grads, Path(source).name, Path(tmp))
            print(f"[{source}] N={grads.shape[0]}, C={grads.shape[1]}, {'x'.join(map(str, grads.shape[2:]))}; reference "
                  f"torch.save float32 (C+1) tensor: {r['reference']['kib_per_sample']:.1f} KiB/sample")
            cols = ("KiB/sample", "bytes ratio", "+export", "cos mean", "cos min", "write s", "read MB/s")
            print(f"  {'store':<14} " + " ".join(f"{c:>{w}}" for c, w in zip(cols, (10, 12, 8, 10, 10, 8, 10))))
            for name, *_ in VARIANTS:
                v = r[name]
                print(f"  {name:<14} {v['kib_per_sample']:>10.2f} {v['ratio']:>12.3f} {v['with_export']:>8.3f} "
                      f"{v['cos_mean']:>10.7f} {v['cos_min']:>10.7f} {v['write_s']:>8.2f} {v['read_mb_s']:>10.0f}"
                      f"   (1 - mean cos = {1 - v['cos_mean']:.1e})")
                assert math.isfinite(v["cos_mean"])
            print("  goals: v1 bytes ratio <= 0.3 at mean cosine >= 0.999; v2 int8 <= 0.15 at mean cosine >= 0.9999, "
                  "min >= 0.999")


if __name__ == "__main__":
    main()
