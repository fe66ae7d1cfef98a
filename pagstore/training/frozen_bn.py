"""Batch-norm statistics held constant inside the PAG pass (``pag_bn: frozen``).

In train mode a batch-norm layer normalises each row with its batch's mean and variance, so every
input-gradient of the repeated B x T PAG rows also flows through those statistics (cross-row terms), and
the parameter update back-propagates through batch norm's double backward, the most expensive op of the
step. ``frozen`` records the clean batch's statistics once (the B augmented images; repeating each
image T times leaves the biased mean and variance unchanged, so the forward values are the same as in
``batch``) and normalises the repeated rows with them: each row becomes a per-channel affine function of
its own activations, and the cross-row terms drop out. That is the reference layout's semantics minus
the cross-row terms, nothing more: the statistics are constants w.r.t. the repeated rows, but they keep
their dependence on the parameters (through the clean forward), exactly as the repeated rows' own
statistics depend on the parameters. Detaching them from the parameters too breaks training: the PAG
gradient then pushes pre-BN biases and scales that the next batch's statistics cancel, the running
statistics lag behind, and eval-mode accuracy collapses (digits, pag-cm: 10% test accuracy for five
epochs), the drift Ioffe & Szegedy (2015, Sec. 2) describe for normalisation outside the gradient.

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
    """Per-channel mean and biased variance of (N, C, *) activations, as train-mode batch norm uses them
    (part of the graph when ``x`` is: the parameters' path through the statistics)."""
    dims = [0, *range(2, x.dim())]
    var, mean = torch.var_mean(x, dim=dims, correction=0)
    return mean, var


@contextmanager
def record_batch_stats(model: nn.Module, *, update_running: bool = True) -> Iterator[BatchStats]:
    """Record, for each train-mode batch-norm layer, the (mean, var) of its input in the forward(s) run
    inside the block (the last forward wins); both (channels,), differentiable w.r.t. the parameters
    when the forward runs with grad (run it without grad for constants).

    With ``update_running=False`` the layers normalise with those batch statistics (train-mode
    semantics, gradient through the statistics included) without touching the running statistics or
    batch counters, so a forward that exists only to measure the statistics leaves the model as it was.
    """
    layers = batch_norm_layers(model)
    stats: BatchStats = {}
    if not update_running:
        with _override_forward({m: partial(_measuring_forward, m, stats) for m in layers}):
            yield stats
        return

    def hook(module: _BatchNorm, args: tuple[torch.Tensor, ...]) -> None:
        stats[module] = _batch_mean_var(args[0])

    handles = [m.register_forward_pre_hook(hook) for m in layers]
    try:
        yield stats
    finally:
        for h in handles:
            h.remove()


def _affine(module: _BatchNorm, mean: torch.Tensor, var: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
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


def _measuring_forward(module: _BatchNorm, stats: BatchStats, x: torch.Tensor) -> torch.Tensor:
    stats[module] = mean_var = _batch_mean_var(x)
    return _affine(module, *mean_var, x)


@contextmanager
def _override_forward(forwards: dict[_BatchNorm, partial]) -> Iterator[None]:
    """Instance-level ``forward`` overrides, removed on exit (works under wrappers and hooks)."""
    patched = []
    try:
        for m, fwd in forwards.items():
            if "forward" in m.__dict__:
                raise RuntimeError(f"{type(m).__name__} already has its forward overridden (nested freeze?)")
            m.forward = fwd  # type: ignore[method-assign]
            patched.append(m)
        yield
    finally:
        for m in patched:
            del m.forward


@contextmanager
def frozen_batch_norm(stats: BatchStats) -> Iterator[None]:
    """Inside the block, each layer of ``stats`` normalises with its recorded (mean, var), which do not
    depend on the block's inputs (no cross-row terms)."""
    with _override_forward({m: partial(_affine, m, mean, var) for m, (mean, var) in stats.items()}):
        yield
