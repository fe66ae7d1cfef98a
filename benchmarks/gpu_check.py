"""GPU check (issue 13): the costs that decide a paper-scale run, measured side by side on one device.

    python benchmarks/gpu_check.py                 # full sizes on the first CUDA device (<= 8 min on one H200)
    python benchmarks/gpu_check.py --tiny          # the same code at tiny sizes on the CPU (< 1 min; in tests)
    python benchmarks/gpu_check.py --json out.json # also write every number as JSON

Rows (each a ratio of two timings taken in this run, on this device):
  pag      PAG step (ResNet-18 width 64, B 64, C 10, 32x32; the real training loop) / AT-PGD-7 step, at fp32
           and bf16; bf16 / fp32 per step; K=1 and K=3 sampled classes / all C.
  memory   peak memory of one PAG step (all C and K=3, pag_bn batch / frozen, channels_last off / on) and
           of an AT-PGD-7 step, fp32: CUDA max memory allocated on a GPU; on the CPU (--tiny) the rise of
           peak RSS in a fresh process instead, and the CUDA rows say n/a.
  sbg      SBG distillation throughput (cifar10 preset UNet, bf16) / a bare batched UNet forward.
  diffusion  diffusion-training images/s (cifar10 preset, B 128) at fp32 and bf16.
  stream   store-stream samples/s (webdataset shards of a real store) / samples/s the PAG step consumes
           (skipped, with the reason, where zarr / webdataset are not installed).
  stages   a few steps of every stage's compute on the device, each loss finite.
  agree    the PAG loss and its parameter gradients on the device against the CPU.
  estimate a one-GPU wall time of the full CIFAR-10 paper run from the rows above (an estimate).

Only torch and numpy are needed at import (the GPU machine has no zarr, dask, webdataset, pyautoattack, dvc):
everything else is imported where used. Models are randomly initialised: costs do not depend on weights.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, installed or not

from pagstore.devices import OnDevice, autocast, grad_scaler, prepare_model, resolve_device, use_channels_last  # noqa: E402
from pagstore.models import build_model  # noqa: E402
from pagstore.training.loop import LoopOptions, train_epoch  # noqa: E402
from pagstore.training.objectives import ObjectiveSpec  # noqa: E402

SECTIONS = ("pag", "memory", "sbg", "diffusion", "stream", "stages", "agree", "estimate")


@dataclass(frozen=True)
class Sizes:
    """Problem sizes: ``FULL`` is the paper's CIFAR-10 setting, ``TINY`` the CPU smoke-test version."""

    model: str
    width: int
    batch: int
    classes: int
    image: int
    steps: int            # timed repetitions per row
    warmup: int
    preset: str           # diffusion preset for the sbg / diffusion rows
    diffusion_model: dict[str, Any]
    diffusion_batch: int
    sbg_images: int
    forward_batch: int
    stream_samples: int


FULL = Sizes("resnet18", 64, 64, 10, 32, 10, 3, "cifar10", {}, 128, 128, 64, 4096)
TINY = Sizes("small-cnn", 4, 8, 10, 16, 2, 1, "digits-small", {"num_channels": 32, "num_res_blocks": 1,
             "diffusion_steps": 100}, 8, 4, 4, 256)

# The paper's CIFAR-10 run, for the estimate: data, classifier recipe, the default method set of
# pipeline.yaml (train.methods + plain_methods) and evaluation (AutoAttack on the whole test split).
CIFAR = {"train_images": 50_000, "test_images": 10_000, "epochs": 100, "batch": 64, "diffusion_steps": 500_000,
         "diffusion_batch": 128}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], Any], device: torch.device, steps: int, warmup: int) -> float:
    """Seconds per call of ``fn`` (after ``warmup`` calls; the device is synchronised around the timing)."""
    for _ in range(warmup):
        fn()
    sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        fn()
    sync(device)
    return (time.perf_counter() - t0) / steps


def smooth_grads(b: int, c: int, ch: int, size: int, seed: int = 0) -> torch.Tensor:
    """Image-like stored gradients (B, C, ch, H, W): blurred noise, as a real store holds smooth directions."""
    g = torch.randn(b * c, ch, size + 4, size + 4, generator=torch.Generator().manual_seed(seed))
    return F.avg_pool2d(g, 5, stride=1).view(b, c, ch, size, size)


class Check:
    """Runs the sections, prints one line per number and keeps them for ``--json``."""

    def __init__(self, sizes: Sizes, device: torch.device) -> None:
        self.s, self.device = sizes, device
        self.results: dict[str, Any] = {"device": str(device), "sizes": asdict(sizes), "torch": torch.__version__}
        if device.type == "cuda":
            self.results["device_name"] = torch.cuda.get_device_name(device)
        self.failures: list[str] = []

    def row(self, key: str, value: Any, text: str) -> None:
        self.results[key] = value
        print(f"  {key:<34} {text}", flush=True)

    # ---- pag: the classifier step -------------------------------------------------------------------
    def classifier(self) -> torch.nn.Module:
        s = self.s
        model = build_model(s.model, s.classes, (3, s.image, s.image), width=s.width)
        return prepare_model(model, self.device, channels_last=use_channels_last("auto", self.device))

    def batch(self, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        s = self.s
        g = torch.Generator().manual_seed(seed)
        x = torch.rand(s.batch, 3, s.image, s.image, generator=g)
        y = torch.randint(0, s.classes, (s.batch,), generator=g)
        return x, y, smooth_grads(s.batch, s.classes, 3, s.image, seed)

    def step_seconds(self, spec: ObjectiveSpec, precision: str, compile: bool = False) -> float:
        """Seconds per training step of the real loop (CPU batches copied in, augmentation, loss, SGD step)."""
        model = self.classifier()
        if compile:
            model.compile()
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        opts = LoopOptions(crop_pad=4, flip=True, precision=precision,
                           channels_last=use_channels_last("auto", self.device))
        scaler = grad_scaler(self.device, precision)
        batch = self.batch()
        gen = torch.Generator().manual_seed(0)

        def run(n: int) -> None:
            train_epoch(model, [batch] * n, spec, opt, opts, gen, show_progress=False, scaler=scaler)

        run(self.s.warmup)
        sync(self.device)
        t0 = time.perf_counter()
        run(self.s.steps)
        sync(self.device)
        return (time.perf_counter() - t0) / self.s.steps

    def pag(self) -> None:
        specs = {"pag": ObjectiveSpec("pag", store="sbg", lam=1.0),
                 "pag_k3": ObjectiveSpec("pag", store="sbg", lam=1.0, k_classes=3),
                 "pag_k1": ObjectiveSpec("pag", store="sbg", lam=1.0, k_classes=1),
                 "at": ObjectiveSpec("at", norm="linf", eps=8 / 255, steps=7)}
        t = {(name, p): self.step_seconds(spec, p) for p in ("fp32", "bf16") for name, spec in specs.items()}
        for (name, p), sec in t.items():
            self.row(f"step_s.{name}.{p}", sec, f"{1000 * sec:9.1f} ms per step")
        for p in ("fp32", "bf16"):
            self.row(f"ratio.pag_over_at.{p}", t["pag", p] / t["at", p], f"{t['pag', p] / t['at', p]:9.2f} x  "
                     f"PAG all-C step / AT-PGD-7 step ({p})")
        for name in ("pag", "at"):
            r = t[name, "bf16"] / t[name, "fp32"]
            self.row(f"ratio.bf16_over_fp32.{name}", r, f"{r:9.2f} x  bf16 / fp32 per {name} step")
        for p in ("fp32", "bf16"):
            for k in ("k1", "k3"):
                r = t[f"pag_{k}", p] / t["pag", p]
                self.row(f"ratio.{k}_over_all.{p}", r, f"{r:9.2f} x  PAG {k.upper()} / all C step ({p})")
        self.step_times = t
        if self.s is not TINY:  # compiling takes minutes of CPU on a small machine: the full check only
            try:
                compiled = self.step_seconds(specs["at"], "bf16", compile=True)
                self.row("ratio.at_compiled_over_eager.bf16", compiled / t["at", "bf16"],
                         f"{compiled / t['at', 'bf16']:9.2f} x  AT step with compile: true / without (bf16)")
            except Exception as exc:  # report and go on: compile depends on the machine's toolchain
                self.row("ratio.at_compiled_over_eager.bf16", None, f"failed: {type(exc).__name__}: {exc}"[:200])

    # ---- memory: what decides the batch size on a GPU ---------------------------------------------------
    def memory(self) -> None:
        from benchmarks.bench_pag_step import Setup, cuda_peak_bytes, make_step, memory_variants, rss_step_peak_mib
        from pagstore.training.frozen_bn import batch_norm_layers

        s, mib = self.s, 2.0 ** 20
        setup = Setup(s.model, s.batch, s.image, 3, s.classes, 3, True, torch.get_num_threads(),
                      {"width": s.width})
        rows = memory_variants(setup, has_bn=bool(batch_norm_layers(self.classifier().train())))
        on_cuda = self.device.type == "cuda"
        if on_cuda:
            peak = {}
            for v in rows:
                peak[v.name] = cuda_peak_bytes(setup, v, str(self.device))
                torch.cuda.empty_cache()
        else:  # no CUDA memory to read: the step's peak-RSS rise instead (in process: fresh ones take minutes)
            self.row("memory.cuda_peak_mib", None, "n/a (no CUDA): the CPU's peak-RSS rise per step below instead")
            peak = {}
            for v in rows:
                rise = rss_step_peak_mib(make_step(setup, v))
                if rise is None:
                    self.row("memory.cpu_rss_step_mib", None, "n/a: peak RSS cannot be reset on this OS")
                    return
                peak[v.name] = {"step": int(rise * mib)}
        at = peak["at-pgd-7"]["step"]
        for v in rows:
            key = "memory." + ("cuda_peak_mib." if on_cuda else "cpu_rss_step_mib.") + \
                v.name.replace(" +cl", " cl").replace(" ", "_")
            p = peak[v.name]
            ratio = f"{p['step'] / at:6.2f} x AT's" if at > 0 else "   n/a x AT's"
            if on_cuda:
                self.row(key, p["peak"] / mib, f"{p['peak'] / mib:9.1f} MiB max allocated, step adds "
                         f"{p['step'] / mib:8.1f} MiB ({ratio})  {v.name}")
            else:
                self.row(key, p["step"] / mib, f"{p['step'] / mib:9.1f} MiB peak-RSS rise of a step ({ratio})  "
                         f"{v.name}")

    # ---- sbg and diffusion: the UNet -------------------------------------------------------------------
    def unet(self) -> tuple[torch.nn.Module, Any, dict[str, Any]]:
        from pagstore.improved_diffusion.presets import config_for_dataset, get_preset
        from pagstore.improved_diffusion.script_util import create_model_and_diffusion

        config = config_for_dataset(get_preset(self.s.preset), self.s.diffusion_model, self.s.classes, 3)
        model, diffusion = create_model_and_diffusion(**config)
        return model.to(self.device), diffusion, config

    def sbg(self) -> None:
        from pagstore.improved_diffusion.score import predict_eps
        from pagstore.sources.sbg import SBGParams, ScoreBasedSource

        s = self.s
        model, diffusion, config = self.unet()
        model.eval()
        size = config["image_size"]
        t = int(0.4 * diffusion.num_timesteps)
        source = ScoreBasedSource(SBGParams(t=t, forward_batch=s.forward_batch),
                                  lambda x_t, tt, y: predict_eps(model, diffusion, x_t, tt, y),
                                  np.asarray(diffusion.alphas_cumprod), s.classes, (3, size, size),
                                  device=self.device, precision="bf16")
        x = np.random.default_rng(0).random((s.sbg_images, 3, size, size), dtype=np.float32)
        labels, idx = np.zeros(s.sbg_images, dtype=np.int64), np.arange(s.sbg_images, dtype=np.int64)
        sec = timed(lambda: source.compute(x, labels, idx), self.device, max(1, s.steps // 3), 1)
        rows = s.forward_batch * (s.classes + 1)
        xt = torch.randn(rows, 3, size, size, device=self.device)
        tt = torch.full((rows,), t, device=self.device)
        yy = torch.arange(s.classes + 1, device=self.device).repeat(s.forward_batch)

        def bare() -> None:
            with torch.no_grad(), autocast(self.device, "bf16"):
                predict_eps(model, diffusion, xt, tt, yy)

        fwd = timed(bare, self.device, s.steps, s.warmup)
        sbg_ips, bare_ips = s.sbg_images / sec, s.forward_batch / fwd  # images/s (C + 1 rows per image)
        self.row("sbg.images_per_s", sbg_ips, f"{sbg_ips:9.1f} images/s SBG distillation ({s.classes + 1} rows "
                 f"each, bf16, {self.s.preset} preset)")
        self.row("sbg.bare_images_per_s", bare_ips, f"{bare_ips:9.1f} images/s bare UNet forward of "
                 f"{rows} rows")
        self.row("ratio.sbg_over_bare", sbg_ips / bare_ips, f"{sbg_ips / bare_ips:9.2f} x  SBG throughput / "
                 "bare forward (1 = no overhead)")
        self.sbg_ips = sbg_ips

    def diffusion(self) -> None:
        from pagstore.devices import backward_step

        s = self.s
        model, diffusion, config = self.unet()
        model.train()
        size, b = config["image_size"], s.diffusion_batch
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        ema = {k: v.detach().clone() for k, v in model.state_dict().items()}
        x0 = (torch.rand(b, 3, size, size) * 2 - 1).to(self.device)
        y = torch.randint(0, s.classes + 1, (b,)).to(self.device)
        out = {}
        for precision in ("fp32", "bf16"):
            scaler = grad_scaler(self.device, precision)

            def step() -> None:
                # The body of pagstore.improved_diffusion.training.train_diffusion's loop.
                t = torch.randint(0, diffusion.num_timesteps, (b,), device=self.device)
                with autocast(self.device, precision):
                    loss = diffusion.training_losses(model, x0, t, y)["loss"].float().mean()
                backward_step(loss, opt, scaler)
                with torch.no_grad():
                    for k, v in model.state_dict().items():
                        ema[k].mul_(0.9999).add_(v.detach(), alpha=1e-4)

            sec = timed(step, self.device, max(1, s.steps // 2), s.warmup)
            out[precision] = b / sec
            self.row(f"diffusion.images_per_s.{precision}", b / sec,
                     f"{b / sec:9.1f} images/s diffusion training ({self.s.preset} preset, B {b}, {precision})")
        self.row("ratio.diffusion_bf16_over_fp32", out["bf16"] / out["fp32"],
                 f"{out['bf16'] / out['fp32']:9.2f} x  bf16 / fp32 diffusion-training throughput")
        self.diffusion_ips = out["bf16"]

    # ---- stream: store shards vs what the step consumes ---------------------------------------------------
    def stream(self) -> None:
        try:
            import webdataset  # noqa: F401
            import zarr  # noqa: F401
        except ImportError as exc:
            self.row("stream", None, f"skipped: {exc.name} is not installed here (the store stack needs zarr and "
                     "webdataset)")
            return
        from pagstore.loaders import stream_batches
        from pagstore.shards import export_webdataset
        from pagstore.store import create_store

        s, n = self.s, self.s.stream_samples
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "store"
            rng = np.random.default_rng(0)
            store = create_store(path, num_samples=n, num_classes=s.classes, sample_shape=(3, s.image, s.image),
                                 grad_dtype="float16", dataset={"name": "gpu-check", "fingerprint": "none",
                                                                "class_names": [str(c) for c in range(s.classes)],
                                                                "split": "train"},
                                 source={"name": "random"}, samples_per_shard=max(n // 8, 1))
            for k in range(store.num_shards):
                sl = store.shard_slice(k)
                m = sl.stop - sl.start
                store.write_shard(k, rng.integers(0, 256, (m, 3, s.image, s.image), dtype=np.uint8),
                                  rng.integers(0, s.classes, m), rng.standard_normal(
                                      (m, s.classes, 3, s.image, s.image)).astype(np.float16), np.arange(sl.start, sl.stop))
            export_webdataset(path, samples_per_tar=max(n // 8, 1))
            consume = s.batch / self.step_times["pag", "bf16"] if hasattr(self, "step_times") else None
            for workers in (0, 2) if self.s is TINY else (0, 4):
                t0 = time.perf_counter()
                seen = sum(len(b[1]) for b in stream_batches(str(path), s.batch, shuffle=True, seed=0, epoch=1,
                                                            num_workers=workers))
                sps = seen / (time.perf_counter() - t0)
                self.row(f"stream.samples_per_s.w{workers}", sps, f"{sps:9.1f} samples/s streamed "
                         f"(loader_workers {workers})")
                if consume:
                    self.row(f"ratio.stream_over_pag.w{workers}", sps / consume, f"{sps / consume:9.2f} x  "
                             f"stream / PAG bf16 consumption ({consume:.1f} samples/s)")

    # ---- stages: a few steps of each stage's compute on the device ----------------------------------------
    def stages(self) -> None:
        dev, s = self.device, self.s

        def finite(name: str, value: float) -> None:
            ok = math.isfinite(value)
            if not ok:
                self.failures.append(f"stage {name}: value {value}")
            self.row(f"stages.{name}", value, f"{value:12.5g}  {'finite' if ok else 'NOT FINITE'}")

        with tempfile.TemporaryDirectory() as tmp:
            from pagstore.improved_diffusion.presets import config_for_dataset, get_preset
            from pagstore.improved_diffusion.training import TrainSettings, train_diffusion

            tiny = {"num_channels": 32, "num_res_blocks": 1, "diffusion_steps": 50}
            config = config_for_dataset(get_preset("digits-small"), tiny, 3, 3)
            x = torch.rand(24, 3, 16, 16) * 2 - 1
            y = torch.arange(24) % 3
            res = train_diffusion(x, y, 3, config, TrainSettings(steps=3, batch_size=8, lr=1e-3, log_every=1),
                                  Path(tmp) / "diffusion.pt", "gpu-check", log=lambda m: None, device=dev,
                                  precision="bf16")
            finite("train_diffusion_loss", res.history[-1][1])
            ema_dev = {v.device.type for v in res.ema_state.values()}
            self.row("stages.train_diffusion_ema_device", sorted(ema_dev), f"EMA on {sorted(ema_dev)}")

            from pagstore.data.prepared import PreparedSplit
            from pagstore.sources.sbg import SBGParams, sbg_from_checkpoint

            images = np.random.default_rng(0).integers(0, 256, (8, 3, 24, 24), dtype=np.uint8)  # 24 px data, 16 px model
            split = PreparedSplit(images, np.arange(8) % 3, ("a", "b", "c"), {"dataset": "gpu-check"})
            src = sbg_from_checkpoint(SBGParams(t=20, forward_batch=4), Path(tmp) / "diffusion.pt", 3, (3, 24, 24),
                                      device=str(dev), precision="bf16")
            g = src.compute(split.as_float(), split.labels, np.arange(8))
            finite("distill_sbg_grad_norm", float(np.linalg.norm(g)))

        model = self.classifier()
        opt = torch.optim.SGD(model.parameters(), lr=0.01)
        terms = train_epoch(model, [self.batch(1)] * 2, ObjectiveSpec("pag", store="sbg", lam=1.0), opt,
                            LoopOptions(precision="bf16", channels_last=use_channels_last("auto", dev)),
                            torch.Generator().manual_seed(0), show_progress=False)
        finite("train_pag_loss", terms["loss"])

        from pagstore.evaluation import alignment, corruptions
        from pagstore.evaluation.pgd import pgd_attack

        wrapped = OnDevice(model.eval(), dev, "bf16").eval()
        x, y, _ = self.batch(2)
        adv = pgd_attack(wrapped, x, y, norm="Linf", eps=8 / 255, steps=3, step_size=2 / 255)
        finite("evaluate_pgd_accuracy", float((wrapped(adv).argmax(1) == y).float().mean()))
        rep = corruptions.corruption_report(wrapped, x, y, ["contrast_reduction"], [0.5], steps=2, refine=1)
        finite("evaluate_corruption_accuracy", float(rep["contrast_reduction"]["accuracy_at"]["0.5"]))
        finite("evaluate_etmann_alignment", alignment.alignment_metrics(wrapped, x[:4], y[:4], None)["etmann_mean"])
        try:
            from pagstore.evaluation.autoattack import run_autoattack

            aa = run_autoattack(wrapped, x[:8], y[:8], norm="Linf", eps=8 / 255, batch_size=8, device=str(dev))
            finite("evaluate_autoattack_accuracy", aa.robust_accuracy)
        except ImportError as exc:
            self.row("stages.evaluate_autoattack", None, f"skipped: {exc.name} is not installed here")

        # toy: the 2 -> 32 -> 2 MLP through the same loop, with its PGD evaluation (pagstore.toy)
        from pagstore.toy.config import ToyAttack
        from pagstore.toy.evaluate import robust_accuracy

        mlp = build_model("mlp", 2, (2,), hidden=32).to(dev)
        pts = torch.randn(256, 2)
        lab = (pts[:, 1] > 2 * pts[:, 0]).long()
        toy_g = torch.randn(256, 2, 2)
        terms = train_epoch(mlp, [(pts[i:i + 64], lab[i:i + 64], toy_g[i:i + 64]) for i in range(0, 256, 64)],
                            ObjectiveSpec("pag", store="nn", lam=1.0), torch.optim.Adam(mlp.parameters(), 0.01),
                            LoopOptions(augment=False, clamp=None, precision="bf16"), torch.Generator().manual_seed(0),
                            show_progress=False)
        finite("toy_pag_loss", terms["loss"])
        finite("toy_pgd_accuracy", robust_accuracy(OnDevice(mlp, dev, "bf16"), pts[:64], lab[:64], ToyAttack(), 0))

    # ---- agree: device vs CPU ----------------------------------------------------------------------------
    def agree(self) -> None:
        from pagstore.loss import pag_alignment_loss

        torch.manual_seed(0)
        s = self.s
        cpu_model = build_model(s.model, s.classes, (3, s.image, s.image), width=s.width).eval()
        x, _, g = self.batch(3)
        x, g = x[:16], g[:16]

        def loss_and_grads(model: torch.nn.Module, dev: torch.device, precision: str = "fp32"
                           ) -> tuple[float, torch.Tensor]:
            model.zero_grad(set_to_none=True)
            with autocast(dev, precision):
                loss = pag_alignment_loss(model, x.to(dev), g.to(dev))
            loss.backward()
            return float(loss.detach()), torch.cat([p.grad.flatten().cpu() for p in model.parameters()])

        l_cpu, g_cpu = loss_and_grads(cpu_model, torch.device("cpu"))
        import copy

        dev_model = copy.deepcopy(cpu_model).to(self.device)
        note = "" if self.device.type == "cuda" else "  (--tiny: both on the CPU)"
        # TF32 off first: an fp32-against-fp32 check, held to a tolerance. cuDNN convolutions default to TF32
        # on recent GPUs (10-bit mantissa); that second number is reported, not judged.
        for tf32 in (False, True) if self.device.type == "cuda" else (False,):
            previous = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
            torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = tf32
            try:
                l_dev, g_dev = loss_and_grads(dev_model, self.device)
            finally:
                torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = previous
            rel = abs(l_dev - l_cpu) / abs(l_cpu)
            cos = float(F.cosine_similarity(g_dev, g_cpu, dim=0))
            tag = ".tf32" if tf32 else ""
            self.row(f"agree.pag_loss_rel_diff{tag}", rel, f"{rel:12.3g}  |loss_{self.device.type} - loss_cpu| / "
                     f"loss_cpu (fp32{', TF32 on' if tf32 else ''}){note}")
            self.row(f"agree.pag_grad_cosine{tag}", cos, f"{cos:12.6f}  cosine of parameter gradients, device vs CPU")
            if not tf32 and (rel > 1e-3 or cos < 0.999):
                self.failures.append(f"PAG loss on {self.device} disagrees with the CPU: rel {rel:.3g}, cos {cos:.6f}")
        # Reduced precision on the device against fp32 on the CPU (reported: docs/devices.md explains why
        # ResNet-18's PAG gradient sits near 0.9 in bf16).
        for precision in ("bf16", "fp16"):
            _, g_low = loss_and_grads(dev_model, self.device, precision)
            cos = float(F.cosine_similarity(g_low, g_cpu, dim=0))
            self.row(f"agree.pag_grad_cosine.{precision}", cos, f"{cos:12.6f}  cosine of {precision} parameter "
                     "gradients against fp32 on the CPU")

    # ---- estimate: one GPU, the whole CIFAR-10 paper run --------------------------------------------------
    def estimate(self) -> None:
        if not hasattr(self, "step_times") or not hasattr(self, "sbg_ips") or not hasattr(self, "diffusion_ips"):
            self.row("estimate", None, "skipped: needs the pag, sbg and diffusion rows")
            return
        t, c = self.step_times, CIFAR
        steps_per_run = c["epochs"] * math.ceil(c["train_images"] / c["batch"])
        pag, k1, k3, at = (t[n, "bf16"] for n in ("pag", "pag_k1", "pag_k3", "at"))
        vanilla = at / 8  # one forward + backward, against AT's 7 attack passes + 1 training pass
        methods = {"pag-sbg": pag, "pag-sbg-k1": k1, "pag-sbg-k3": k3, "pag-cm": pag, "pag-oi": pag, "pag-nn": pag,
                   "at-l2-pag-sbg": at + pag, "trades-linf-pag-sbg": at + pag + vanilla, "vanilla": vanilla,
                   "at-l2": at, "at-linf": at, "trades-linf": at + vanilla}
        hours = {
            "diffusion": c["diffusion_steps"] * c["diffusion_batch"] / self.diffusion_ips / 3600,
            "distill_sbg": (c["train_images"] + c["test_images"]) / self.sbg_ips / 3600,
            "classifiers": sum(methods.values()) * steps_per_run / 3600,
        }
        # AutoAttack standard, per image that survives: APGD-CE 100 + APGD-T 9 x 100 + FAB-T 9 x 100 (about 3
        # passes each) forward+backward passes and Square's 5000 forwards (~1/3 of a pass): ~5400 passes;
        # 4 runs (L2, Linf, both at large eps) on the 10000 test images of each of the 12 models, counted
        # as if every image survived (an upper bound). One pass of one image ~ at / (8 * batch).
        pass_s = at / (8 * c["batch"])
        hours["evaluate_upper_bound"] = 5400 * 4 * c["test_images"] * len(methods) * pass_s / 3600
        for k, v in hours.items():
            self.row(f"estimate.hours.{k}", v, f"{v:9.1f} h  ESTIMATE (one device, bf16)")
        total = sum(hours.values())
        self.row("estimate.hours.total", total, f"{total:9.1f} h  ESTIMATE, whole CIFAR-10 paper run, "
                 f"{len(methods)} classifiers")
        if self.s is TINY:
            print("  (--tiny: sizes are not CIFAR's; the estimate only exercises the arithmetic)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true", help="tiny sizes on the CPU (the test-suite mode)")
    ap.add_argument("--device", default=None, help="auto | cpu | cuda | cuda:N (default: cuda, or cpu with --tiny)")
    ap.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated sections of {','.join(SECTIONS)}")
    ap.add_argument("--json", type=Path, default=None, help="write every number to this JSON file")
    a = ap.parse_args(argv)
    sections = [x for x in a.only.split(",") if x]
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        ap.error(f"--only: unknown section(s) {unknown}; known: {list(SECTIONS)}")
    try:
        device = resolve_device(a.device or ("cpu" if a.tiny else "cuda"))
    except ValueError as exc:
        print(f"gpu_check: {exc}", file=sys.stderr)
        return 2
    check = Check(TINY if a.tiny else FULL, device)
    start = time.perf_counter()
    print(f"gpu_check on {check.results.get('device_name', device)} ({'tiny' if a.tiny else 'full'} sizes), "
          f"torch {torch.__version__}")
    for name in SECTIONS:
        if name in sections:
            t0 = time.perf_counter()
            print(f"[{name}]", flush=True)
            getattr(check, name)()
            check.results[f"seconds.{name}"] = time.perf_counter() - t0
    check.results["seconds.total"] = time.perf_counter() - start
    check.results["failures"] = check.failures
    print(f"done in {check.results['seconds.total']:.1f} s" + (f"; FAILED: {check.failures}" if check.failures else ""))
    if a.json is not None:
        a.json.write_text(json.dumps(check.results, indent=2, default=str))
    return 1 if check.failures else 0


if __name__ == "__main__":
    sys.exit(main())
