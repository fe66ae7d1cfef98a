"""Batch-norm statistics held constant inside the PAG pass (``pag_bn: frozen``).

In train mode a batch-norm layer normalises each row with its batch's mean and variance, so every
input-gradient of the repeated B x T PAG rows also flows through those statistics (cross-row terms), and
the parameter update back-propagates through batch norm's double backward, the most expensive op of the
step. ``frozen`` records the clean batch's statistics once (the B augmented images; repeating each
image T times leaves the biased mean and variance unchanged, so the forward values are the same as in
``batch``) and normalises the repeated rows with them, detached: each row becomes an affine function of
its own activations, and the cross-row terms drop out.

    with record_batch_stats(model) as stats:     # a normal train-mode forward of the clean batch
        logits = model(x_aug)
    with frozen_batch_norm(stats):               # the PAG pass uses the recorded statistics
        loss = pag_alignment_loss(model, x, g, ...)

Only layers in train mode are recorded and frozen (an eval-mode layer already uses fixed statistics).
The frozen pass never updates running statistics: the clean forward did that once.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

BatchStats = dict[_BatchNorm, tuple[torch.Tensor, torch.Tensor]]


def batch_norm_layers(model: nn.Module) -> list[_BatchNorm]:
    """The batch-norm layers of ``model`` that normalise with batch statistics (train mode)."""
    return [m for m in model.modules() if isinstance(m, _BatchNorm) and m.training]


def _batch_mean_var(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and biased variance of (N, C, *) activations, as train-mode batch norm uses them."""
    dims = [0, *range(2, x.dim())]
    var, mean = torch.var_mean(x.detach(), dim=dims, correction=0)
    return mean, var


@contextmanager
def record_batch_stats(model: nn.Module, *, update_running: bool = True) -> Iterator[BatchStats]:
    """Record, for each train-mode batch-norm layer, the (mean, var) of its input in the forward(s) run
    inside the block (the last forward wins); both (channels,), detached.

    With ``update_running=False`` the running statistics (and batch counters) are restored on exit, so a
    forward that exists only to measure the statistics leaves the model as it was.
    """
    layers = batch_norm_layers(model)
    stats: BatchStats = {}
    saved = [] if update_running else [
        (m, [b.detach().clone() for b in (m.running_mean, m.running_var, m.num_batches_tracked) if b is not None])
        for m in layers
    ]

    def hook(module: _BatchNorm, args: tuple[torch.Tensor, ...]) -> None:
        stats[module] = _batch_mean_var(args[0])

    handles = [m.register_forward_pre_hook(hook) for m in layers]
    try:
        yield stats
    finally:
        for h in handles:
            h.remove()
        with torch.no_grad():
            for m, bufs in saved:
                for live, old in zip((b for b in (m.running_mean, m.running_var, m.num_batches_tracked)
                                      if b is not None), bufs):
                    live.copy_(old)


def _frozen_forward(module: _BatchNorm, mean: torch.Tensor, var: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """x * scale + shift per channel, scale = weight / sqrt(var + eps), shift = bias - mean * scale.

    Written as one addcmul rather than F.batch_norm(training=False): eval-mode batch norm still goes
    through NativeBatchNormBackward, whose generic double backward costs several passes over the
    activations; an affine map's double backward is a multiplication. Never touches the running buffers.
    """
    view = (1, -1) + (1,) * (x.dim() - 2)
    scale = torch.rsqrt(var + module.eps)
    if module.weight is not None:
        scale = module.weight * scale
    shift = -mean * scale if module.bias is None else module.bias - mean * scale
    return torch.addcmul(shift.view(view), x, scale.view(view))


@contextmanager
def frozen_batch_norm(stats: BatchStats) -> Iterator[None]:
    """Inside the block, each layer of ``stats`` normalises with its recorded (mean, var), detached.

    Implemented as an instance-level ``forward`` override, so it works on the plain module, under
    ``torch.nn.parallel`` wrappers and with forward hooks; removed on exit.
    """
    patched = []
    try:
        for m, (mean, var) in stats.items():
            if "forward" in m.__dict__:
                raise RuntimeError(f"{type(m).__name__} already has its forward overridden (nested freeze?)")
            m.forward = partial(_frozen_forward, m, mean, var)  # type: ignore[method-assign]
            patched.append(m)
        yield
    finally:
        for m in patched:
            del m.forward
