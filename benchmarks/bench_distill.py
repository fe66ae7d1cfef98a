"""SBG distillation throughput vs a bare loop of the same batched model forward on random data.

Both sides run the same forwards: ``forward_batch`` images x (C + 1) labels rows of the digits-small UNet
(or the model of ``--checkpoint``), one torch thread, one dask thread. The distillation side adds what a real
run does: per-sample seeded noise, score arithmetic, the dask task, float16 casting and the zarr shard
writes. Throughput is images x classes per second. Goal: distillation >= 0.8x the bare loop.
The machine is shared, so both sides are timed in process CPU seconds (all threads of this process, dask's
included) as well as wall seconds, interleaved, best of ``--repeats``; the CPU-time ratio is the verdict.

    python benchmarks/bench_distill.py [--n 256] [--checkpoint models/diffusion/checkpoint.pt] [--repeats 2]
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
from pagstore.improved_diffusion.presets import config_for_dataset, get_preset  # noqa: E402
from pagstore.improved_diffusion.score import predict_eps  # noqa: E402


def digits_like(n: int, classes: int = 10, size: int = 16) -> PreparedSplit:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n, 1, size, size), dtype=np.uint8)
    return PreparedSplit(images, (np.arange(n) % classes).astype(np.int64), tuple(map(str, range(classes))),
                         {"dataset": "bench"})


def bare_loop(model: torch.nn.Module, diffusion: object, n: int, rows: int, shape: tuple[int, ...], t: int,
              classes: int) -> tuple[float, float]:
    """(wall, CPU) seconds for the forwards that distilling n images needs, on random inputs, nothing else."""
    x = torch.randn(rows, *shape)
    y = torch.arange(classes + 1).repeat(rows // (classes + 1))
    ts = torch.full((rows,), t, dtype=torch.int64)
    forwards = -(-n * (classes + 1) // rows)
    start, cpu = time.perf_counter(), time.process_time()
    with torch.no_grad():
        for _ in range(forwards):
            predict_eps(model, diffusion, x, ts, y)
    return time.perf_counter() - start, time.process_time() - cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=256, help="images to distill")
    ap.add_argument("--checkpoint", type=Path, default=None, help="diffusion checkpoint (default: random digits-small)")
    ap.add_argument("--t", type=int, default=400)
    ap.add_argument("--forward-batch", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(1)
    split = digits_like(args.n)
    c = split.num_classes
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        split.save(work / "train.npz")
        ckpt = args.checkpoint
        if ckpt is None:
            config = config_for_dataset(get_preset("digits-small"), {}, c, 1)
            model, _ = create_model_and_diffusion(**config)
            ckpt = work / "checkpoint.pt"
            save_checkpoint(ckpt, model, model.state_dict(), None, 0, config, split.fingerprint())
        recipe = SourceRecipe("sbg", {"t": args.t, "forward_batch": args.forward_batch}, str(work / "train.npz"),
                              checkpoint=str(ckpt))
        source = recipe()
        rows = args.forward_batch * (c + 1)
        bare, dist = np.full(2, np.inf), np.full(2, np.inf)  # best (wall, cpu) seconds of each side
        for r in range(args.repeats):  # interleaved: the machine is shared
            bare = np.minimum(bare, bare_loop(source.model, source.diffusion, args.n, rows, split.sample_shape,
                                              args.t, c))
            start, cpu = time.perf_counter(), time.process_time()
            distill(work / f"store{r}", split, recipe, samples_per_shard=64, batch_size=32, workers=1, source=source)
            dist = np.minimum(dist, (time.perf_counter() - start, time.process_time() - cpu))
    per = args.n * c
    print(f"images={args.n} classes={c} forward rows={rows} t={args.t} (image-classes/s, wall | CPU time)")
    print(f"bare forward loop : {per / bare[0]:9.1f} | {per / bare[1]:9.1f}")
    print(f"SBG distillation  : {per / dist[0]:9.1f} | {per / dist[1]:9.1f}")
    ratio_wall, ratio_cpu = bare[0] / dist[0], bare[1] / dist[1]
    verdict = "OK" if ratio_cpu >= 0.8 else "BELOW GOAL"
    print(f"ratio             : {ratio_wall:9.3f} | {ratio_cpu:9.3f}  (goal >= 0.8 on CPU time: {verdict})")


if __name__ == "__main__":
    main()
