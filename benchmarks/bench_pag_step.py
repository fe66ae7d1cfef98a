"""Cost of one training step per objective and option, as ratios measured side by side in one run.

Each row is a full training step as the training loop runs it (forward + loss + backward + SGD update,
random crop + flip inside the graph unless --no-augment): vanilla (CE), CE + PAG over all C classes and
over K sampled classes, each with ``pag_bn`` batch and frozen and with channels_last on / off, and
AT-PGD-7 (L-inf, the paper's baseline) with channels_last on / off. Every variant has its own copy of the
same initial model; variants are interleaved round-robin after a warm-up round, so load from other
processes hits them alike, and the median per variant is reported. Peak memory: each variant runs one
warm-up and one timed step in a fresh subprocess, which reports its peak RSS (ru_maxrss) and the rise of
that peak over the RSS after set-up (the step's own peak). CUDA max memory: :func:`cuda_peak_bytes`
(called by benchmarks/gpu_check.py on a GPU). "frozen rep-rows" is pag_bn frozen computed through the B x C
repeated rows, as before the shared forward (explicit_grads / batched VJPs), for the side-by-side.

    python benchmarks/bench_pag_step.py                                  # small-cnn, B 64, 3x32x32, C 10
    python benchmarks/bench_pag_step.py --model resnet18 --batch 4 --repeats 2 --skip +cl,reference
    python benchmarks/bench_pag_step.py --model vit --batch 2 --repeats 2 --skip +cl,reference
    (add --threads 1 on a loaded machine: two intra-op threads spin while the other is descheduled)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch.nn import functional as F

from pagstore.training.frozen_bn import batch_norm_layers, frozen_batch_norm, record_batch_stats
from pagstore.loss import pag_alignment_loss, pag_alignment_loss_reference_layout
from pagstore.models import build_model
from pagstore.training.augment import sample_augmentation
from pagstore.training.objectives import ObjectiveSpec, objective_loss

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Setup:
    """The shared workload: model, batch B, input (channels, size, size), C classes, K for the K rows."""

    model: str = "small-cnn"
    batch: int = 64
    size: int = 32
    channels: int = 3
    classes: int = 10
    k: int = 3
    augment: bool = True
    threads: int = 2
    model_kwargs: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Variant:
    """One row: an ObjectiveSpec (or the reference layout) and the memory format."""

    name: str
    spec: dict
    channels_last: bool = False
    reference_layout: bool = False
    repeated_rows: bool = False  # pag_bn frozen through the B x T repeated rows (before the shared forward)


def variants(setup: Setup, has_bn: bool) -> list[Variant]:
    """The rows of the table; the pag_bn frozen rows only for models with batch norm (else identical)."""
    k = setup.k
    # pag_bn named in every PAG row: "batch" rows must not silently follow the default (frozen since issue 18)
    pag = {"objective": "pag", "store": "sbg", "lam": 1.0, "pag_bn": "batch"}
    at = {"objective": "at", "norm": "linf", "eps": 8 / 255}
    rows = [Variant("vanilla", {"objective": "ce"}),
            Variant("pag all-C batch", pag),
            Variant("pag all-C batch +cl", pag, channels_last=True)]
    if has_bn:
        rows += [Variant("pag all-C frozen rep-rows", {**pag, "pag_bn": "frozen"}, repeated_rows=True),
                 Variant("pag all-C frozen", {**pag, "pag_bn": "frozen"}),
                 Variant("pag all-C frozen +cl", {**pag, "pag_bn": "frozen"}, channels_last=True)]
    rows += [Variant(f"pag K={k} batch", {**pag, "k_classes": k}),
             Variant(f"pag K={k} batch +cl", {**pag, "k_classes": k}, channels_last=True)]
    if has_bn:
        rows += [Variant(f"pag K={k} frozen", {**pag, "k_classes": k, "pag_bn": "frozen"}),
                 Variant(f"pag K={k} frozen +cl", {**pag, "k_classes": k, "pag_bn": "frozen"}, channels_last=True)]
    rows += [Variant("at-pgd-7", at), Variant("at-pgd-7 +cl", at, channels_last=True),
             Variant("reference layout all-C", {"objective": "ce"}, reference_layout=True)]
    return rows


def make_step(setup: Setup, variant: Variant, device: str = "cpu") -> Callable[[], None]:
    """A closure running one full training step of ``variant`` on fixed random data (seed 0)."""
    torch.manual_seed(0)
    c, shape = setup.classes, (setup.channels, setup.size, setup.size)
    model = build_model(setup.model, c, shape, **setup.model_kwargs).to(device).train()
    x, y = torch.rand(setup.batch, *shape, device=device), torch.randint(0, c, (setup.batch,), device=device)
    g = torch.randn(setup.batch, c, *shape, device=device)
    if variant.channels_last:
        model, x = model.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    spec = ObjectiveSpec(**variant.spec)
    gen = torch.Generator().manual_seed(0)

    def step() -> None:
        aug = sample_augmentation(setup.batch, pad=4, flip=True, generator=gen) if setup.augment else None
        if variant.reference_layout:  # the reference code's layout (no augmentation, batch BN)
            loss = F.cross_entropy(model(x), y) + pag_alignment_loss_reference_layout(model, x, g)
        elif variant.repeated_rows:  # frozen statistics, input-gradients through the B*C repeated rows
            xa = aug(x) if aug is not None else x
            with record_batch_stats(model) as stats:
                logits = model(xa)
            with frozen_batch_norm(stats):
                rep = aug.repeat_interleave(c) if aug is not None else None
                loss = F.cross_entropy(logits, y) + pag_alignment_loss(model, x, g, augment=rep)
        else:
            loss = objective_loss(model, x, y, g if spec.uses_store else None, spec, augment=aug, generator=gen)[0]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if device != "cpu":
            torch.cuda.synchronize()

    return step


def cuda_peak_bytes(setup: Setup, variant: Variant, device: str = "cuda") -> dict[str, int]:
    """CUDA memory of one step of ``variant`` after a warm-up step: ``peak`` is
    torch.cuda.max_memory_allocated during the step (model, data and optimiser state included), ``step``
    its rise over the memory allocated just before the step (what the step itself adds)."""
    step = make_step(setup, variant, device)
    step()
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    step()
    peak = torch.cuda.max_memory_allocated(device)
    return {"peak": int(peak), "step": int(peak - before)}


def memory_variants(setup: Setup, has_bn: bool) -> list[Variant]:
    """The rows whose memory gpu_check reports: every PAG variant (all C and K, pag_bn batch / frozen,
    channels_last off / on, frozen through the repeated rows) and AT-PGD-7, the baseline they are compared
    with."""
    return [v for v in variants(setup, has_bn) if v.name.startswith("pag ") or v.name == "at-pgd-7"]


def timed(steps: dict[str, Callable[[], None]], repeats: int) -> dict[str, tuple[float, float]]:
    """Median (wall, process CPU) seconds per step of each variant, interleaved round-robin after one
    warm-up round. CPU time (all threads of this process) is less sensitive to other processes' load."""
    times: dict[str, list[tuple[float, float]]] = {k: [] for k in steps}
    for r in range(repeats + 1):
        for name, fn in steps.items():
            t0, c0 = time.perf_counter(), time.process_time()
            fn()
            if r:
                times[name].append((time.perf_counter() - t0, time.process_time() - c0))
    med = lambda v: sorted(v)[len(v) // 2]  # noqa: E731
    return {k: (med([w for w, _ in v]), med([c for _, c in v])) for k, v in times.items()}


def _peak_rss_mib() -> float:
    """This process's peak RSS. VmHWM belongs to the address space, so it starts afresh at exec (unlike
    ru_maxrss, which Linux carries over from the parent that spawned the worker)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _status_mib(key: str) -> float:
    """A memory line of /proc/self/status (VmRSS, VmHWM) in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(f"/proc/self/status has no {key} line")


def rss_step_peak_mib(step: Callable[[], None]) -> float | None:
    """Peak-RSS rise of one call of ``step`` after a warm-up call, in this process (a fast stand-in for
    the fresh-process :func:`measure_memory`, for gpu_check --tiny): memory freed by earlier work is
    handed back to the OS (glibc malloc_trim), then the peak is reset (Linux clear_refs 5), so the rise
    is the step's own. None where either is unavailable (not Linux / not glibc)."""
    import ctypes
    import gc

    step()
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        Path("/proc/self/clear_refs").write_text("5")
        before = _status_mib("VmRSS")
    except (OSError, AttributeError, KeyError):
        return None
    step()
    return _status_mib("VmHWM") - before


def memory_worker(setup: Setup, variant: Variant) -> dict[str, float]:
    """Run in a fresh process: peak RSS of set-up, then of a warm-up and a timed step."""
    torch.set_num_threads(setup.threads)
    step = make_step(setup, variant)
    before = _peak_rss_mib()
    step()
    step()
    peak = _peak_rss_mib()
    return {"peak_mib": peak, "step_mib": peak - before}


def measure_memory(setup: Setup, variant: Variant) -> dict[str, float]:
    """Peak RSS of one variant, measured in a fresh Python process (see :func:`memory_worker`)."""
    job = json.dumps({"setup": asdict(setup), "variant": asdict(variant)})
    cmd = [sys.executable, __file__, "--memory-worker", job]
    # the worker imports pagstore from this checkout, installed or not (as on the GPU machine)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env).stdout.strip().splitlines()[-1]
    return json.loads(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="small-cnn")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--channels", type=int, default=3)
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--k", type=int, default=3, help="sampled target classes for the PAG-K rows")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--no-augment", action="store_true", help="no random crop + flip")
    p.add_argument("--no-memory", action="store_true", help="skip the per-variant peak-RSS subprocesses")
    p.add_argument("--no-timing", action="store_true", help="only the peak-RSS subprocesses")
    p.add_argument("--only", default="", help="comma-separated substrings: keep the rows whose name has one")
    p.add_argument("--skip", default="", help="comma-separated substrings: drop the rows whose name has one")
    p.add_argument("--memory-worker", default=None, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.memory_worker is not None:
        job = json.loads(a.memory_worker)
        print(json.dumps(memory_worker(Setup(**job["setup"]), Variant(**job["variant"]))))
        return
    torch.set_num_threads(a.threads)
    setup = Setup(a.model, a.batch, a.size, a.channels, a.classes, a.k, not a.no_augment, a.threads)
    probe = build_model(setup.model, setup.classes, (setup.channels, setup.size, setup.size))
    rows = variants(setup, bool(batch_norm_layers(probe.train())))
    keep = [s for s in a.only.split(",") if s]
    rows = [v for v in rows if not keep or v.name in ("vanilla", "at-pgd-7") or any(s in v.name for s in keep)]
    rows = [v for v in rows if not any(s in v.name for s in a.skip.split(",") if s)]
    mem = {} if a.no_memory else {v.name: measure_memory(setup, v) for v in rows}  # before: small parent
    res = {} if a.no_timing else timed({v.name: make_step(setup, v) for v in rows}, a.repeats)
    print(f"model={a.model} batch={a.batch} input=({a.channels}, {a.size}, {a.size}) C={a.classes} "
          f"threads={a.threads} augment={setup.augment} (median of {a.repeats}, interleaved)")
    print(f"  {'variant':24s} {'wall ms':>9s} {'x vanilla':>9s} {'x at-pgd-7':>10s} {'cpu ms':>9s} "
          f"{'x at-pgd-7':>10s} {'peak RSS':>9s} {'step peak':>9s}")
    for v in rows:
        line = f"  {v.name:24s}"
        if res:
            (w, cpu), (bw, _), (aw, ac) = res[v.name], res["vanilla"], res["at-pgd-7"]
            line += f" {w * 1000:9.1f} {w / bw:9.2f} {w / aw:10.2f} {cpu * 1000:9.1f} {cpu / ac:10.2f}"
        if v.name in mem:
            line += f" {mem[v.name]['peak_mib']:7.0f}MB {mem[v.name]['step_mib']:7.0f}MB"
        print(line)
    names = [v.name for v in rows]
    for name in names:  # each option on / off, same workload (wall and CPU ratios; memory ratio of step peaks)
        pairs = [(name, name + " +cl", "channels_last")]
        if " frozen" in name and not name.endswith(("+cl", "rep-rows")):
            pairs.append((name.replace(" frozen", " batch"), name, "pag_bn frozen"))
            pairs.append((name + " rep-rows", name, "shared forward"))
        for off, on, what in pairs:
            if off in names and on in names:
                parts = []
                if res:
                    parts.append(f"speed-up wall {res[off][0] / res[on][0]:.2f}x, cpu {res[off][1] / res[on][1]:.2f}x")
                if mem:
                    parts.append(f"step peak RSS {mem[on]['step_mib']:.0f} / {mem[off]['step_mib']:.0f} MB")
                print(f"  {what} on {off}: " + "; ".join(parts))


if __name__ == "__main__":
    main()
