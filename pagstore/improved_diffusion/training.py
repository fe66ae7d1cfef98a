"""Training loop for a class-conditional diffusion model with a "no class" label, EMA and exact resume.

Every step draws its batch, timesteps, noise, label drops and dropout masks from RNGs seeded by
(seed, step), so a run interrupted at a checkpoint and resumed produces the same weights as one that ran
straight through.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from pagstore.code_fingerprint import DIFFUSION_CODE, code_fingerprint
from pagstore.improved_diffusion.checkpoint import read_checkpoint, save_checkpoint
from pagstore.improved_diffusion.respace import SpacedDiffusion
from pagstore.improved_diffusion.script_util import create_model_and_diffusion
from pagstore.improved_diffusion.unet import UNetModel


@dataclass(frozen=True)
class TrainSettings:
    """How to train (the model itself is described by the create_model_and_diffusion config).

    ``t_window`` (lo, hi), inclusive step indices, restricts training to those noise levels (the PAG paper
    trains around the distillation t, App. H); None samples all steps uniformly. ``uncond_prob`` is the
    probability of replacing a label with the "no class" label C; None means 1/C.
    """

    steps: int
    batch_size: int
    lr: float
    weight_decay: float = 0.0
    ema_rate: float = 0.9999
    seed: int = 0
    t_window: tuple[int, int] | None = None
    uncond_prob: float | None = None
    save_every: int = 1000
    log_every: int = 10


@dataclass
class TrainResult:
    """Final raw weights (``model``), EMA weights, the training process, steps done and (step, loss) points."""

    model: UNetModel
    ema_state: dict[str, torch.Tensor]
    diffusion: SpacedDiffusion
    step: int
    history: list[tuple[int, float]]
    resumed_from: int


def images_to_model_space(images: np.ndarray, image_size: int | None = None) -> torch.Tensor:
    """uint8 (N, ch, H, W) -> float32 in [-1, 1], resized bicubically to ``image_size`` if it differs."""
    if images.dtype != np.uint8 or images.ndim != 4:
        raise ValueError(f"diffusion training needs uint8 images (N, ch, H, W), got {images.dtype} {images.shape}")
    x = torch.from_numpy(images).float().div(127.5).sub(1.0)
    if image_size is not None and (x.shape[2], x.shape[3]) != (image_size, image_size):
        x = resize_to_model(x, image_size).clamp(-1.0, 1.0)
    return x


def resize_to_model(x: torch.Tensor, image_size: int) -> torch.Tensor:
    """The linear resize from data size to the diffusion model's size: (N, ch, H, W) -> (N, ch, s, s),
    bicubic with antialiasing. Training applies it (then clamps to [-1, 1]); SBG distillation applies it
    for the scores and maps their gradient back through its adjoint (autograd of this same function)."""
    return F.interpolate(x, size=(image_size, image_size), mode="bicubic", align_corners=False, antialias=True)


def _step_generator(seed: int, step: int) -> torch.Generator:
    return torch.Generator().manual_seed((seed * 1_000_003 + step) % (2 ** 63))


def _draw_batch(images: torch.Tensor, labels: torch.Tensor, num_classes: int, settings: TrainSettings,
                num_timesteps: int, step: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(x0, y with "no class" drops, t, noise) for one step, determined by (seed, step)."""
    g = _step_generator(settings.seed, step)
    idx = torch.randint(0, images.shape[0], (settings.batch_size,), generator=g)
    lo, hi = settings.t_window if settings.t_window is not None else (0, num_timesteps - 1)
    t = torch.randint(lo, hi + 1, (settings.batch_size,), generator=g)
    noise = torch.randn((settings.batch_size, *images.shape[1:]), generator=g)
    p_drop = settings.uncond_prob if settings.uncond_prob is not None else 1.0 / num_classes
    return images[idx], drop_labels(labels[idx], num_classes, p_drop, g), t, noise


def drop_labels(labels: torch.Tensor, num_classes: int, prob: float, generator: torch.Generator) -> torch.Tensor:
    """Replace each label by the "no class" label ``num_classes`` with probability ``prob``. (B,) -> (B,)."""
    drop = torch.rand(labels.shape[0], generator=generator) < prob
    return torch.where(drop, torch.full_like(labels, num_classes), labels)


def _signature(config: dict[str, Any], settings: TrainSettings, fingerprint: str,
               precision: str = "fp32") -> dict[str, Any]:
    """What must match for a checkpoint to be resumed (the step budget may grow; the device may change)."""
    s = asdict(settings)
    if precision != "fp32":  # only then, so fp32 checkpoints from before the option still resume
        s["precision"] = precision
    for key in ("steps", "save_every", "log_every"):
        s.pop(key)
    s["t_window"] = list(s["t_window"]) if s["t_window"] is not None else None
    cfg = {k: (list(v) if isinstance(v, tuple) else v) for k, v in config.items()}
    # the code too: a finished checkpoint must not pass for what changed training code would make
    return {"config": cfg, "settings": s, "dataset_fingerprint": fingerprint,
            "code": code_fingerprint(DIFFUSION_CODE)}


def _resumable(path: Path, signature: dict[str, Any], log: Callable[[str], None]) -> dict[str, Any] | None:
    """The checkpoint at ``path`` if it exists and was made with the same config, settings and data."""
    if not path.is_file():
        return None
    raw = read_checkpoint(path)
    if raw.get("signature") != signature:
        log(f"{path}: existing checkpoint was made with other settings or data; starting afresh")
        return None
    log(f"resuming diffusion training from step {raw['step']} ({path})")
    return raw


def train_diffusion(images: torch.Tensor, labels: torch.Tensor, num_classes: int, config: dict[str, Any],
                    settings: TrainSettings, checkpoint_path: str | Path, dataset_fingerprint: str,
                    extra_meta: dict[str, Any] | None = None, log: Callable[[str], None] = print,
                    device: torch.device | str = "cpu", precision: str = "fp32") -> TrainResult:
    """Train (or resume training of) the diffusion model and leave a final checkpoint at ``checkpoint_path``.

    The model, its optimiser state and its EMA live on ``device``; batches are drawn on the CPU from
    (seed, step) generators and copied over, so a run draws the same batches on every device. ``precision``
    bf16 / fp16 autocasts the forward (fp32 weights; fp16 with a GradScaler). The checkpoint holds CPU
    tensors and loads on any device.

    Args:
        images: (N, ch, H, W) float32 in [-1, 1].
        labels: (N,) int64 in [0, C); ``num_classes`` = C (the model gets C + 1 labels).
        config: create_model_and_diffusion kwargs; must have class_cond True and num_classes C + 1.
    """
    if config.get("num_classes") != num_classes + 1 or not config.get("class_cond"):
        raise ValueError(f"config must be class-conditional with num_classes = C + 1 = {num_classes + 1}, "
                         f"got class_cond={config.get('class_cond')}, num_classes={config.get('num_classes')}")
    torch.manual_seed(settings.seed)
    from pagstore.devices import autocast, backward_step, grad_scaler

    device = torch.device(device)
    model, diffusion = create_model_and_diffusion(**config)
    model = model.to(device)
    T = diffusion.num_timesteps
    if settings.t_window is not None and not 0 <= settings.t_window[0] <= settings.t_window[1] < T:
        from pagstore.config import ConfigError  # a parameter error: one line, not a traceback, from the stage

        raise ConfigError(f"t_window {list(settings.t_window)} must satisfy 0 <= lo <= hi < {T} (the model's steps)")
    opt = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    ema = {k: v.detach().clone() for k, v in model.state_dict().items()}
    signature = _signature(config, settings, dataset_fingerprint, precision)
    scaler = grad_scaler(device, precision)
    step, history, window = 0, [], []  # window: losses since the last logged point

    path = Path(checkpoint_path)
    raw = _resumable(path, signature, log)
    if raw is not None:
        model.load_state_dict(raw["model"])
        opt.load_state_dict(raw["optimizer"])  # moves the state onto the parameters' device
        ema, step = {k: v.to(device) for k, v in raw["ema"].items()}, raw["step"]
        history, window = [tuple(h) for h in raw["loss_history"]], list(raw["loss_window"])
    resumed_from = step

    def save() -> None:
        save_checkpoint(path, model, ema, opt, step, config, dataset_fingerprint, signature=signature,
                        loss_history=[list(h) for h in history], loss_window=list(window), train=asdict(settings),
                        **(extra_meta or {}))

    model.train()
    start = time.time()
    bar = tqdm(total=settings.steps, initial=step, desc="train_diffusion", disable=None, file=sys.stderr)
    while step < settings.steps:
        x0, y, t, noise = (v.to(device, non_blocking=True)
                           for v in _draw_batch(images, labels, num_classes, settings, T, step))
        torch.manual_seed(settings.seed * 7919 + step)  # dropout masks, reproducible across resumes
        with autocast(device, precision):
            loss = diffusion.training_losses(model, x0, t, y, noise=noise)["loss"].float().mean()
        if not math.isfinite(loss.item()):
            raise FloatingPointError(f"diffusion loss became {loss.item()} at step {step}")
        backward_step(loss, opt, scaler)
        with torch.no_grad():
            for k, v in model.state_dict().items():
                ema[k].mul_(settings.ema_rate).add_(v.detach(), alpha=1 - settings.ema_rate)
        step += 1
        window.append(loss.item())
        bar.update(1)
        if step % settings.log_every == 0:
            history.append((step, float(np.mean(window))))
            bar.set_postfix(loss=f"{history[-1][1]:.4f}")
            window = []
        if step % settings.save_every == 0 and step < settings.steps:
            save()
            log(f"step {step}/{settings.steps}: loss {np.mean([v for _, v in history[-5:]] or window):.4f}, "
                f"{(time.time() - start) / (step - resumed_from):.2f} s/step, checkpoint saved")
    bar.close()
    save()
    if window:  # a last, partial logging window (kept in the checkpoint as loss_window, not as a point)
        history = [*history, (step, float(np.mean(window)))]
    if step > resumed_from:
        log(f"trained steps {resumed_from}..{step} in {time.time() - start:.1f} s")
    return TrainResult(model=model, ema_state=ema, diffusion=diffusion, step=step, history=history,
                       resumed_from=resumed_from)
