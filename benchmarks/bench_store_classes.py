"""K-of-C stores: distillation time and store bytes of CIFAR-100-shaped data at K = 10 vs K = C = 100.

A real SBG source on a small (untrained, weights jittered) class-conditional UNet with C + 1 = 101 labels at
3x32x32 runs the pagstore distillation engine (one dask thread, one torch thread) on the same N images twice:
all C classes (C + 1 model rows per image) and K = 10 seeded classes (K + 1 rows). Both runs are timed in
process CPU seconds and wall seconds, interleaved, best of ``--repeats``. Expected: about 1/10 of both
(11 / 101 = 0.11 of the model rows; bytes scale with K).

    python benchmarks/bench_store_classes.py [--n 16] [--k 10] [--repeats 1] [--grad-codec raw]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pagstore.data.prepared import PreparedSplit  # noqa: E402
from pagstore.distill import SourceRecipe, distill  # noqa: E402
from pagstore.improved_diffusion import create_model_and_diffusion  # noqa: E402
from pagstore.improved_diffusion.checkpoint import save_checkpoint  # noqa: E402

C = 100
CONFIG = dict(image_size=32, num_channels=32, num_res_blocks=1, num_heads=1, attention_resolutions="8",
              channel_mult=[1, 2, 2], class_cond=True, in_channels=3, diffusion_steps=100, noise_schedule="cosine",
              learn_sigma=True, num_classes=C + 1)


def cifar100_like(n: int) -> PreparedSplit:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n, 3, 32, 32), dtype=np.uint8)
    return PreparedSplit(images, (np.arange(n) % C).astype(np.int64), tuple(map(str, range(C))),
                         {"dataset": "cifar100-shaped"})


def checkpoint(path: Path, split: PreparedSplit) -> Path:
    torch.manual_seed(0)
    model, _ = create_model_and_diffusion(**CONFIG)
    with torch.no_grad():
        for p in model.parameters():  # the output layers are zero-initialised: make eps non-zero
            p.add_(0.05 * torch.randn_like(p))
    save_checkpoint(path, model, model.state_dict(), None, step=0, config=CONFIG, dataset_fingerprint=split.fingerprint())
    return path


def du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def run(tmp: Path, split: PreparedSplit, recipe: SourceRecipe, source, k: int | None, codec: str) -> tuple[float, float, int]:
    out = tmp / f"store-{k}"
    cpu, wall = time.process_time(), time.perf_counter()
    distill(out, split, recipe, source=source, batch_size=8, workers=1, num_target_classes=k, grad_codec=codec,
            replace_mismatched=True, grad_dtype="float16" if codec == "raw" else "float32")
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    size = du(out)
    import shutil

    shutil.rmtree(out)
    return cpu, wall, size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--grad-codec", default="raw", choices=["raw", "int8"])
    args = ap.parse_args()
    torch.set_num_threads(1)
    split = cifar100_like(args.n)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        split.save(tmp / "train.npz")
        ckpt = checkpoint(tmp / "ckpt.pt", split)
        recipe = SourceRecipe("sbg", {"t": 50, "forward_batch": 8}, str(tmp / "train.npz"), 0, str(ckpt))
        source = recipe()
        best: dict[str, list[float]] = {}
        for _ in range(args.repeats):
            for name, k in (("K=C=100", None), (f"K={args.k}", args.k)):
                cpu, wall, size = run(tmp, split, recipe, source, k, args.grad_codec)
                prev = best.get(name)
                best[name] = [min(cpu, prev[0]) if prev else cpu, min(wall, prev[1]) if prev else wall, size]
    full = best["K=C=100"]
    print(f"N={args.n} CIFAR-100-shaped images (3x32x32), SBG on a small UNet, codec {args.grad_codec}, 1 thread")
    print(f"  {'layout':<10} {'CPU s':>8} {'wall s':>8} {'store KiB':>10} {'CPU ratio':>10} {'bytes ratio':>12}")
    for name, (cpu, wall, size) in best.items():
        print(f"  {name:<10} {cpu:>8.2f} {wall:>8.2f} {size / 1024:>10.1f} {cpu / full[0]:>10.3f} {size / full[2]:>12.3f}")
    print(f"  expected: about {(args.k + 1) / (C + 1):.2f} of the CPU (K + 1 of C + 1 model rows) and {args.k / C:.2f} "
          "of the gradient bytes")


if __name__ == "__main__":
    main()
