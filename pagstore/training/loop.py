"""The one training loop: every method is this loop with a different :class:`ObjectiveSpec`."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import torch
from torch import nn
from tqdm.auto import tqdm

from pagstore.devices import autocast, backward_step, to_device
from pagstore.training.augment import sample_augmentation
from pagstore.training.data import Batch
from pagstore.training.distributed import all_have_batch, average_buffers, average_gradients
from pagstore.training.objectives import ObjectiveSpec, objective_loss


@dataclass(frozen=True)
class LoopOptions:
    """How batches are augmented and attacked (fixed per dataset, not per method).

    Attributes:
        augment: random crop + flip inside the graph (images only).
        crop_pad: zero padding for the random crop. flip: horizontal flips.
        clamp: valid input range for adversarial examples, None for vector data.
        seed: base seed; epoch e uses a generator seeded with (seed, e) so a resumed run draws the same.
        precision: fp32 | bf16 | fp16 autocast of the forward passes and the PAG double backward (the
            weights stay fp32; fp16 adds a GradScaler). The device is the model's.
        channels_last: move image batches to channels_last (the model was converted by the caller).
    """

    augment: bool = True
    crop_pad: int = 4
    flip: bool = True
    clamp: tuple[float, float] | None = (0.0, 1.0)
    seed: int = 0
    precision: str = "fp32"
    channels_last: bool = False


def epoch_generator(seed: int, epoch: int, rank: int = 0) -> torch.Generator:
    """A generator that depends only on (seed, epoch, rank): resuming at an epoch replays its randomness."""
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch * 101 + rank)


def train_epoch(
    model: nn.Module,
    batches: Iterable[Batch],
    spec: ObjectiveSpec,
    optimizer: torch.optim.Optimizer,
    opts: LoopOptions,
    generator: torch.Generator,
    *,
    desc: str = "train",
    show_progress: bool = True,
    scaler: torch.amp.GradScaler | None = None,
) -> dict[str, float]:
    """One pass over ``batches``; returns sample-weighted means of the loss terms and train accuracy.

    Batches arrive on the CPU and are copied to the model's device (pinned, non-blocking on CUDA).
    """
    model.train()
    sums: dict[str, float] = {}
    seen = 0
    device = next(model.parameters()).device
    it: Iterator[Batch] = iter(batches)
    bar = tqdm(desc=desc, unit="batch", disable=None if show_progress else True, leave=False)
    while True:
        batch = next(it, None)
        if not all_have_batch(batch is not None):
            break
        # cl: the classes (B, K) of a K < C store's grads
        x, y, g, *cl = (to_device(t, device, opts.channels_last) for t in batch)
        aug = None
        if opts.augment and x.dim() == 4:
            aug = sample_augmentation(x.shape[0], pad=opts.crop_pad, flip=opts.flip, generator=generator)
        with autocast(device, opts.precision):
            loss, terms = objective_loss(model, x, y, g, spec, augment=aug, clamp=opts.clamp, generator=generator,
                                         classes=cl[0] if cl else None)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"{desc}: loss became {float(loss)} at sample {seen} (terms {terms})")
        backward_step(loss, optimizer, scaler, lambda: average_gradients(model))
        n = x.shape[0]
        for k, v in terms.items():
            sums[k] = sums.get(k, 0.0) + v * n
        seen += n
        bar.update(1)
        bar.set_postfix(loss=f"{terms['loss']:.3f}")
    bar.close()
    average_buffers(model)
    if seen == 0:
        raise ValueError(f"{desc}: no training batches (empty data or fewer shards than ranks)")
    return {k: v / seen for k, v in sums.items()}


def fit(
    model: nn.Module,
    spec: ObjectiveSpec,
    batches: Callable[[int], Iterable[Batch]],
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    opts: LoopOptions,
    *,
    epochs: int,
    start_epoch: int = 0,
    evaluate: Callable[[nn.Module], dict[str, float]] | None = None,
    on_epoch_end: Callable[[int, dict[str, float]], None] | None = None,
    rank: int = 0,
    scaler: torch.amp.GradScaler | None = None,
) -> list[dict[str, float]]:
    """Train epochs ``start_epoch + 1 .. epochs`` (1-based); ``batches(epoch)`` yields that epoch's batches.

    After each epoch: scheduler step, ``evaluate(model)`` (held-out metrics), then
    ``on_epoch_end(epoch, row)`` (checkpointing, CSV). Returns the rows of the epochs run here.
    """
    rows = []
    for epoch in range(start_epoch + 1, epochs + 1):
        t0 = time.perf_counter()
        lr = optimizer.param_groups[0]["lr"]
        terms = train_epoch(
            model, batches(epoch), spec, optimizer, opts, epoch_generator(opts.seed, epoch, rank),
            desc=f"epoch {epoch}/{epochs}", show_progress=rank == 0, scaler=scaler,
        )
        scheduler.step()
        row = {"epoch": epoch, "lr": lr, **{f"train_{k}" if k == "acc" else k: v for k, v in terms.items()}}
        if evaluate is not None:
            row.update(evaluate(model))
        row["seconds"] = time.perf_counter() - t0
        rows.append(row)
        if on_epoch_end is not None:
            on_epoch_end(epoch, row)
    return rows


