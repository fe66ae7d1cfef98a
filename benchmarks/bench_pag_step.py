"""Cost of one training step per objective, as ratios measured in one run (same model, batch, machine).

Compares full training steps (forward + loss + backward + SGD update, no augmentation): vanilla (CE), CE + PAG
over all C classes as the training loop computes it (pagstore.training.objectives), the reference code's
layout (a CE forward plus the repeated-batch PAG term), AT-PGD-7, and CE + PAG with K sampled classes.

    python benchmarks/bench_pag_step.py [--model small-cnn] [--batch 64] [--size 32] [--channels 3] [--k 3]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch
from torch.nn import functional as F

from pagstore.loss import pag_alignment_loss_reference_layout
from pagstore.models import build_model
from pagstore.training.objectives import ObjectiveSpec, objective_loss


def step_seconds(step: Callable[[], torch.Tensor], opt: torch.optim.Optimizer) -> float:
    t0 = time.perf_counter()
    opt.zero_grad(set_to_none=True)
    step().backward()
    opt.step()
    return time.perf_counter() - t0


def timed(steps: dict[str, Callable[[], torch.Tensor]], opt: torch.optim.Optimizer, repeats: int) -> dict[str, float]:
    """Median seconds per step of each variant. Variants are interleaved round-robin (after one warm-up
    round) so that load from other processes on a shared machine hits them alike."""
    times: dict[str, list[float]] = {k: [] for k in steps}
    for r in range(repeats + 1):
        for name, fn in steps.items():
            t = step_seconds(fn, opt)
            if r:
                times[name].append(t)
    return {k: sorted(v)[len(v) // 2] for k, v in times.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="small-cnn")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--channels", type=int, default=3)
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--k", type=int, default=3, help="sampled target classes for the PAG-K row")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    c, shape = a.classes, (a.channels, a.size, a.size)
    model = build_model(a.model, c, shape)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    x, y = torch.rand(a.batch, *shape), torch.randint(0, c, (a.batch,))
    g = torch.randn(a.batch, c, *shape)
    gen = torch.Generator().manual_seed(0)
    def objective(**kw: object) -> Callable[[], torch.Tensor]:
        spec = ObjectiveSpec(**kw)  # type: ignore[arg-type]
        return lambda: objective_loss(model, x, y, g, spec, generator=gen)[0]

    steps: dict[str, Callable[[], torch.Tensor]] = {
        "vanilla": objective(objective="ce"),
        "pag (all C)": objective(objective="pag", store="sbg", lam=1.0),
        "reference layout (all C)": lambda: F.cross_entropy(model(x), y)
        + pag_alignment_loss_reference_layout(model, x, g),
        f"pag (K={a.k})": objective(objective="pag", store="sbg", lam=1.0, k_classes=a.k),
        "at-pgd-7 (linf)": objective(objective="at", norm="linf", eps=8 / 255),
    }
    res = timed(steps, opt, a.repeats)
    print(f"model={a.model} batch={a.batch} input={shape} C={c} threads={a.threads} (median of {a.repeats})")
    base = res["vanilla"]
    for name, t in res.items():
        print(f"  {name:28s} {t * 1000:9.1f} ms   x{t / base:6.2f} vanilla")
    print(f"  pag / reference layout      {res['pag (all C)'] / res['reference layout (all C)']:.2f}")
    print(f"  pag / at-pgd-7              {res['pag (all C)'] / res['at-pgd-7 (linf)']:.2f}")
    print(f"  pag K={a.k} / at-pgd-7          {res[f'pag (K={a.k})'] / res['at-pgd-7 (linf)']:.2f}")


if __name__ == "__main__":
    main()
