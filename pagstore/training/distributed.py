"""Multi-process training under ``torchrun``: nccl on CUDA (each rank on ``cuda:LOCAL_RANK``), gloo on the CPU.

Gradients are averaged with one all-reduce per step rather than through DDP's reducer, because the PAG
term back-propagates through a double backward (``create_graph``), which DDP's bucketed hooks do not
support. Ranks stop an epoch together as soon as one has run out of batches (shards may split unevenly).
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
from torch import nn

from pagstore.devices import dist_backend


_COMM_DEVICE = torch.device("cpu")  # where the small control tensors of all_have_batch live


def init_from_env(device: torch.device | str = "cpu") -> tuple[int, int]:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1); return (rank, world_size).

    ``device`` is the rank's training device (``pagstore.devices.resolve_device`` binds "cuda" to
    ``cuda:LOCAL_RANK``): nccl for CUDA, gloo for the CPU, since nccl cannot all-reduce CPU tensors.
    """
    global _COMM_DEVICE
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    device = torch.device(device)
    if not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(dist_backend(device))
    _COMM_DEVICE = device
    return dist.get_rank(), dist.get_world_size()


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def all_have_batch(has_batch: bool) -> bool:
    """True when every rank still has a batch this step (so no rank waits forever in an all-reduce)."""
    if not is_distributed():
        return has_batch
    flag = torch.tensor([1 if has_batch else 0], device=_COMM_DEVICE)
    dist.all_reduce(flag, op=dist.ReduceOp.MIN)
    return bool(flag.item())


def average_gradients(model: nn.Module) -> None:
    """Average parameter gradients across ranks (in place); a no-op in a single process."""
    if not is_distributed():
        return
    world = dist.get_world_size()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


def broadcast_parameters(model: nn.Module) -> None:
    """Make every rank start from rank 0's weights and buffers."""
    if not is_distributed():
        return
    for t in list(model.parameters()) + list(model.buffers()):
        dist.broadcast(t.data, src=0)


def average_buffers(model: nn.Module) -> None:
    """Average floating-point buffers (BN running statistics) across ranks, so every rank evaluates and
    saves the same model."""
    if not is_distributed():
        return
    world = dist.get_world_size()
    for b in model.buffers():
        if b.is_floating_point():
            dist.all_reduce(b.data)
            b.data /= world
