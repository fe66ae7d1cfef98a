"""Input-gradients of a piecewise-linear sequential classifier, written out (the frozen PAG pass).

Under frozen batch-norm statistics a network of convolutions, per-channel affine maps (batch norm),
ReLUs, max- and average-pools and linear layers is, around each image, the linear map
J = W_L D_L ... W_1 D_1 whose masks D (ReLU signs, max-pool winners) are constants (their derivative is
zero almost everywhere). The input-gradient of log p(y_t | x) is then J^T (e_t - softmax(logits)):
one forward of the B images records the masks, and the T cotangents of each image run back through
transposed convolutions, mask products and ``x @ W``, ops whose own backward is a single backward.
Autograd's route (a B*T forward, its create_graph backward and the double backward of every
convolution, plus the backward of the B*T forward for softmax's path) does about twice the convolution
work for the same numbers. Everything else (ResNets, ViTs, strided or padded pools, ...) keeps autograd's
route: :func:`explicit_supported` says which models qualify.

    with record_batch_stats(model) as stats:          # the clean forward (CE term, statistics)
        logits = model(augment(x))
    v, _ = explicit_input_grads(model, x, targets, stats, augment)   # (B, T, *S), equal to autograd's
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from pagstore.models.registry import Classifier
from pagstore.training.augment import Augmentation
from pagstore.training.frozen_bn import BatchStats

_LAYERS = (nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.MaxPool2d, nn.AdaptiveAvgPool2d, nn.Flatten, nn.Linear)


def _pool_ok(m: nn.MaxPool2d) -> bool:
    """Non-overlapping max-pools only: each input pixel feeds at most one output (no sums in the backward)."""
    k, s = m.kernel_size, m.stride if m.stride is not None else m.kernel_size
    return k == s and m.padding == 0 and m.dilation == 1 and not m.ceil_mode and not m.return_indices


def explicit_supported(model: nn.Module) -> bool:
    """True for ``Classifier(Sequential(...))`` built from Conv2d (groups 1, zero padding), BatchNorm2d,
    ReLU, non-overlapping MaxPool2d, AdaptiveAvgPool2d, Flatten and Linear (the small-cnn family)."""
    if not isinstance(model, Classifier) or not isinstance(model.net, nn.Sequential):
        return False
    for m in model.net:
        if not isinstance(m, _LAYERS):
            return False
        if isinstance(m, nn.Conv2d) and (m.groups != 1 or m.padding_mode != "zeros" or isinstance(m.padding, str)):
            return False
        if isinstance(m, nn.MaxPool2d) and not _pool_ok(m):
            return False
        if isinstance(m, nn.Flatten) and m.start_dim != 1:
            return False
    return True


def _forward(model: Classifier, xa: torch.Tensor, stats: BatchStats) -> tuple[torch.Tensor, list[tuple]]:
    """Logits (B, C) of the augmented images ``xa`` under the recorded statistics, and per layer what its
    transposed map needs (masks as constants, weights and batch-norm scales with their graph)."""
    h, back = model.normalize(xa), []
    for m in model.net:
        if isinstance(m, nn.Conv2d):
            back.append(("conv", m, h.shape[-2:]))
        elif isinstance(m, nn.BatchNorm2d):
            mean, var = stats[m] if m in stats else (m.running_mean, m.running_var)  # eval mode: running
            scale = torch.rsqrt(var + m.eps)
            scale = scale * m.weight if m.weight is not None else scale
            shift = -mean * scale if m.bias is None else m.bias - mean * scale
            h = torch.addcmul(shift.view(1, -1, 1, 1), h, scale.view(1, -1, 1, 1))
            back.append(("scale", scale.view(1, 1, -1, 1, 1)))
            continue
        elif isinstance(m, nn.ReLU):
            back.append(("mask", (h > 0).to(h.dtype).detach()))
            h = F.relu(h)
            continue
        elif isinstance(m, nn.MaxPool2d):
            out, idx = F.max_pool2d(h, m.kernel_size, return_indices=True)
            winners = torch.zeros_like(h).flatten(2).scatter_(2, idx.flatten(2), 1.0).view_as(h)
            back.append(("pool", winners.detach(), m.kernel_size))
            h = out
            continue
        elif isinstance(m, nn.AdaptiveAvgPool2d):
            back.append(("avg", h.shape[1:]))
        elif isinstance(m, nn.Flatten):
            back.append(("unflatten", h.shape[1:]))
        elif isinstance(m, nn.Linear):
            back.append(("linear", m))
        h = m(h)
    return h, _fuse(back)


def _fuse(back: list[tuple]) -> list[tuple]:
    """Fewer full-size products in the transposed pass (each one runs over B x T rows, and again in the
    parameter gradient): a ReLU mask right before a max-pool is folded into the pool's winners (both
    per-image constants, multiplied once over B rows), and a batch-norm scale right after a convolution
    into that convolution's weight (conv_transpose(v * s, W) = conv_transpose(v, W * s) for a scale s
    per output channel; the ReLU mask between them commutes with it)."""
    out: list[tuple] = []
    for item in back:
        if item[0] == "pool" and out and out[-1][0] == "mask":
            out[-1] = ("pool", item[1] * out[-1][1], item[2])
        elif item[0] == "scale" and out and out[-1][0] == "conv" and len(out[-1]) == 3:
            out[-1] = (*out[-1], item[1].view(-1, 1, 1, 1))
        else:
            out.append(item)
    return out


def _upsample(v: torch.Tensor, kh: int, kw: int) -> torch.Tensor:
    """(..., h, w) -> (..., h*kh, w*kw), each value repeated over its window (an expand: its backward is
    a sum, cheaper than repeat_interleave's index_add)."""
    *lead, h, w = v.shape
    return v[..., :, None, :, None].expand(*lead, h, kh, w, kw).reshape(*lead, h * kh, w * kw)


def _backward(v: torch.Tensor, back: list[tuple]) -> torch.Tensor:
    """J^T v for (B, T, C) cotangents v: the transposed layers in reverse order, T rows per image."""
    b, t = v.shape[:2]
    for item in reversed(back):
        kind = item[0]
        if kind == "linear":
            v = v @ item[1].weight
        elif kind == "unflatten":
            v = v.reshape(b, t, *item[1])
        elif kind in ("mask", "scale"):
            v = v * (item[1][:, None] if kind == "mask" else item[1])  # masks per image, scales per channel
        elif kind == "avg":  # aten's own transpose of the (possibly uneven) average pool; linear in v
            shape = item[1]
            rows = v.reshape(b * t, *v.shape[2:])
            like = rows.new_zeros(()).expand(b * t, *shape)  # only its shape is read
            v = torch.ops.aten._adaptive_avg_pool2d_backward(rows, like).view(b, t, *shape)
        elif kind == "pool":
            winners, k = item[1], item[2]
            v = _upsample(v, k, k)
            if v.shape[-2:] != winners.shape[-2:]:  # odd sizes: the rows / columns the pool dropped get 0
                v = F.pad(v, (0, winners.shape[-1] - v.shape[-1], 0, winners.shape[-2] - v.shape[-2]))
            v = v * winners[:, None]  # the gradient goes to each window's winner
        elif kind == "conv":
            m, size = item[1], item[2]
            weight = m.weight if len(item) == 3 else m.weight * item[3]  # a folded batch-norm scale (_fuse)
            rows = v.reshape(b * t, *v.shape[2:])
            # output_padding: a strided convolution's input rows / columns past its last window
            extra = [n - ((i - 1) * s - 2 * p + d * (k - 1) + 1) for n, i, s, p, d, k in
                     zip(size, rows.shape[-2:], m.stride, m.padding, m.dilation, m.kernel_size)]
            out = F.conv_transpose2d(rows, weight, stride=m.stride, padding=m.padding, dilation=m.dilation,
                                     output_padding=tuple(extra))
            v = out.view(b, t, *out.shape[1:])
    return v


def explicit_input_grads(
    model: Classifier,
    x: torch.Tensor,
    target_classes: torch.Tensor,
    stats: BatchStats,
    augment: Augmentation | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """grad_x log p(y_t | x) for every image and target class, as autograd gives it under ``stats``
    (:func:`pagstore.training.frozen_bn.frozen_batch_norm`), differentiable w.r.t. the parameters.

    Args:
        model: a model :func:`explicit_supported` accepts.
        x: (B, ch, H, W) un-augmented images; target_classes: int64 (B, T).
        stats: the clean batch's recorded statistics (train-mode batch-norm layers).
        augment: the per-image augmentation (B rows); the gradient is w.r.t. the un-augmented image.
    Returns:
        ((B, T, ch, H, W) input-gradients, (B, T, C) logits: the B forward rows expanded over T).
    """
    xa = augment(x.detach()) if augment is not None else x.detach()
    logits, back = _forward(model, xa, stats)
    b, t = target_classes.shape
    cot = F.one_hot(target_classes, logits.shape[1]).to(logits.dtype) - F.softmax(logits, dim=1)[:, None]
    v = _backward(cot, back) / model.normalize.std  # (x - mean) / std: one more per-channel scale
    if augment is not None:
        v = augment.adjoint(v)
    return v, logits[:, None].expand(b, t, logits.shape[1])
