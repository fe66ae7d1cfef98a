"""Where compute runs and at what precision: one place that resolves ``device`` / ``precision`` keys.

Every compute stage (train_diffusion, distill, train, evaluate, toy) takes ``device: auto | cpu | cuda |
cuda:N`` (auto = the first CUDA device if there is one, else the CPU) and ``precision: fp32 | bf16 | fp16``.
Reduced precision is autocast over fp32 master weights (parameters and optimiser state stay fp32); fp16
adds a GradScaler, since its gradients underflow without one. On the CPU with fp32 every helper here is a
no-op, so the default CPU run computes exactly what it computed before these keys existed.

Not imported by ``import pagstore`` (it imports torch).
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable
from typing import Literal

import torch
from torch import nn

PRECISIONS = ("fp32", "bf16", "fp16")
Precision = Literal["fp32", "bf16", "fp16"]
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
_DEVICE_RE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


def check_device(spec: str, where: str = "device") -> None:
    """Raise ValueError unless ``spec`` is auto, cpu, cuda or cuda:N (a syntax check, no CUDA needed)."""
    if not isinstance(spec, str) or not _DEVICE_RE.match(spec):
        raise ValueError(f"{where}: expected auto, cpu, cuda or cuda:N, got {spec!r}")


def check_precision(precision: str, where: str = "precision") -> None:
    """Raise ValueError unless ``precision`` is one of fp32, bf16, fp16."""
    if precision not in PRECISIONS:
        raise ValueError(f"{where}: expected one of {list(PRECISIONS)}, got {precision!r}")


def resolve_device(spec: str = "auto") -> torch.device:
    """``auto`` -> the first CUDA device if available else the CPU; ``cuda`` under torchrun -> the rank's
    ``cuda:LOCAL_RANK``; an unavailable CUDA device is an error naming it."""
    check_device(spec)
    if spec == "auto":
        spec = "cuda" if torch.cuda.is_available() else "cpu"
    if spec == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ValueError(f"device {spec!r}: CUDA is not available on this machine (use device: auto or cpu)")
    if spec == "cuda":
        # torchrun: one process per GPU, each bound to its LOCAL_RANK (no effect in a single process).
        spec = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    dev = torch.device(spec)
    if dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(f"device {spec!r}: only {torch.cuda.device_count()} CUDA device(s) here")
    return dev


def autocast(device: torch.device | str, precision: str) -> contextlib.AbstractContextManager:
    """Autocast context for ``precision`` on ``device`` (a null context for fp32)."""
    check_precision(precision)
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=_DTYPES[precision])


def grad_scaler(device: torch.device | str, precision: str) -> torch.amp.GradScaler | None:
    """A GradScaler for fp16 (gradients underflow in fp16 without loss scaling), else None."""
    check_precision(precision)
    if precision != "fp16":
        return None
    return torch.amp.GradScaler(torch.device(device).type)


def backward_step(loss: torch.Tensor, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler | None,
                  after_backward: Callable[[], None] | None = None) -> None:
    """``loss.backward()``, ``after_backward()`` (e.g. the DDP all-reduce), ``optimizer.step()``; scaled when
    ``scaler`` is given (fp16): the step is skipped by the scaler when gradients overflowed."""
    optimizer.zero_grad(set_to_none=True)
    if scaler is None:
        loss.backward()
        if after_backward is not None:
            after_backward()
        optimizer.step()
        return
    scaler.scale(loss).backward()
    if after_backward is not None:
        after_backward()
    scaler.step(optimizer)
    scaler.update()


def use_channels_last(setting: bool | str, device: torch.device | str) -> bool:
    """``channels_last``: true / false, or "auto" = only on CUDA (on the CPU it would change the kernels,
    hence the numbers, of the default run)."""
    if setting == "auto":
        return torch.device(device).type == "cuda"
    if isinstance(setting, bool):
        return setting
    raise ValueError(f"channels_last: expected true, false or auto, got {setting!r}")


def has_conv(model: nn.Module) -> bool:
    return any(isinstance(m, nn.Conv2d) for m in model.modules())


def to_device(t: torch.Tensor | None, device: torch.device, channels_last: bool = False) -> torch.Tensor | None:
    """Move a batch tensor: pinned memory and a non-blocking copy to CUDA (overlaps the copy with compute);
    a no-op on the CPU. 4-D tensors go to channels_last when asked."""
    if t is None:
        return None
    if device.type == "cuda" and t.device.type == "cpu":
        t = t.pin_memory().to(device, non_blocking=True)
    else:
        t = t.to(device)
    if channels_last and t.dim() == 4:
        t = t.contiguous(memory_format=torch.channels_last)
    return t


def prepare_model(model: nn.Module, device: torch.device, *, channels_last: bool = False,
                  compile: bool = False) -> nn.Module:
    """Move ``model`` to ``device`` (fp32 master weights), channels_last for conv nets, compiled in place
    (``nn.Module.compile`` keeps the state_dict keys, so checkpoints stay loadable without torch.compile)."""
    model = model.to(device)
    if channels_last and has_conv(model):
        model = model.to(memory_format=torch.channels_last)
    if compile:
        model.compile()
    return model


def dist_backend(device: torch.device | str) -> str:
    """nccl for CUDA tensors, gloo for CPU ones (nccl cannot all-reduce CPU tensors)."""
    return "nccl" if torch.device(device).type == "cuda" else "gloo"


class OnDevice(nn.Module):
    """Wrap a model so callers holding CPU tensors run it on ``device`` (under ``precision`` autocast).

    Inputs are moved to the device and logits come back as fp32 on the input's device; autograd flows
    through both copies, so input-gradients w.r.t. the caller's CPU tensor are exact. Evaluation uses it
    to run corruptions, pictures and alignment on the same device as the attacks without touching them.
    On the CPU with fp32 it computes exactly ``model(x)``.
    """

    def __init__(self, model: nn.Module, device: torch.device, precision: str = "fp32") -> None:
        super().__init__()
        check_precision(precision)
        self.model = model.to(device)
        self.device = device
        self.precision = precision

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with autocast(self.device, self.precision):
            out = self.model(x.to(self.device))
        return out.float().to(x.device)


def describe(device: torch.device) -> dict[str, object]:
    """What ran where, for artifacts' metadata: {"device": "cuda:0", "name": "NVIDIA H200"}."""
    info: dict[str, object] = {"device": str(device)}
    if device.type == "cuda":
        info["name"] = torch.cuda.get_device_name(device)
    return info
