"""Bytes on disk per CIFAR-shaped gradient sample, and float16 fidelity, vs the reference layout.

Reference (the original PAG code): one float32 torch tensor N x (C+1) x 3 x 32 x 32 (image + C gradients)
written with torch.save. Ours: a pagstore (uint8 images, float16 grads, zstd+shuffle, crc32c).
Gradients are realistic, not noise: the class-mean heuristic g_c = s * mean_c - x on natural images,
either crops of the two photos shipped with scikit-learn (classes = k-means clusters of the crops) or
scikit-learn digits upsampled to 32x32 and tiled to 3 channels (classes = digits).
Goals: <= 0.3x the reference bytes, mean cosine(float32, float16) >= 0.999.

    python benchmarks/bench_store_size.py [--n 1000] [--source photos|digits|both]
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
# (name, grad_dtype, grad_mantissa_bits)
VARIANTS = [("float16", "float16", None), ("float16-m8", "float16", 8), ("float16-m7", "float16", 7),
            ("float32", "float32", None)]


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


def measure(n: int, source: str, workdir: Path) -> dict[str, float]:
    import torch

    from pagstore.store import create_store

    images, labels = natural_images(n, source)
    grads = class_mean_gradients(images, labels)
    ref = torch.from_numpy(np.concatenate([images[:, None].astype(np.float32) / 255.0, grads], axis=1))
    ref_path = workdir / f"ref-{source}.pt"
    torch.save(ref, ref_path)
    ref_bytes = ref_path.stat().st_size
    out: dict[str, dict[str, float]] = {}
    for name, dtype, bits in VARIANTS:
        path = workdir / f"store-{source}-{name}"
        t = time.perf_counter()
        store = create_store(path, "w", num_samples=n, num_classes=C, sample_shape=(3, 32, 32), grad_dtype=dtype,
                             dataset={"name": source, "fingerprint": "-", "class_names": [str(c) for c in range(C)],
                                      "split": "bench"}, source={"name": "class-mean", "scale": 1.0},
                             grad_mantissa_bits=bits)
        for k in range(store.num_shards):
            sl = store.shard_slice(k)
            store.write_shard(k, images[sl], labels[sl], grads[sl], np.arange(sl.start, sl.stop))
        write_s = time.perf_counter() - t
        stored = store.read(slice(0, n))[2].astype(np.float32).reshape(n * C, -1)
        ref = grads.reshape(n * C, -1)
        cos = (stored * ref).sum(1) / np.maximum(np.linalg.norm(stored, axis=1) * np.linalg.norm(ref, axis=1), 1e-30)
        size = du(path)
        out[name] = {"ratio": size / ref_bytes, "kib_per_sample": size / n / 1024, "write_s": write_s,
                     "cos_mean": float(cos.mean()), "cos_min": float(cos.min())}
    out["reference"] = {"kib_per_sample": ref_bytes / n / 1024}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--source", choices=["photos", "digits", "both"], default="both")
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    with tempfile.TemporaryDirectory() as tmp:
        for source in (["photos", "digits"] if args.source == "both" else [args.source]):
            r = measure(args.n, source, Path(tmp))
            print(f"[{source}] N={args.n}, C={C}, 3x32x32; reference torch.save float32 (C+1) tensor: "
                  f"{r['reference']['kib_per_sample']:.1f} KiB/sample")
            cols = ("KiB/sample", "bytes ratio", "cos mean", "cos min", "write s")
            print(f"  {'store':<12} " + " ".join(f"{c:>{w}}" for c, w in zip(cols, (10, 12, 10, 10, 8))))
            for name, _, _ in VARIANTS:
                v = r[name]
                print(f"  {name:<12} {v['kib_per_sample']:>10.1f} {v['ratio']:>12.3f} {v['cos_mean']:>10.7f} "
                      f"{v['cos_min']:>10.7f} {v['write_s']:>8.2f}   (1 - mean cos = {1 - v['cos_mean']:.1e})")
                assert math.isfinite(v["cos_mean"])
            print("  goals: bytes ratio <= 0.3, mean cosine >= 0.999")


if __name__ == "__main__":
    main()
