"""The PAG objective (Ganz, Kawar & Elad, ICML 2023, Eq. 4-5), usable on its own.

For an image x with target classes y_t and "ground-truth" perceptually aligned gradients g(x, y_t):

    L_pag(x) = sum_t  1 - <v_t, g_t> / max(||v_t|| * ||g_t||, eps),    v_t = grad_x log p(y_t | x),

summed over all C classes, or over K sampled classes scaled by C / K so values stay comparable.
The returned loss is the batch mean, differentiable w.r.t. the model parameters (``create_graph``).

Layout (as in the reference code): every image is repeated once per target class (B*T rows) as one leaf
tensor; one backward of sum_rows log p(y_row | x_row) w.r.t. that leaf gives each row's own input-gradient,
because row r only depends on its own copy. An optional ``augment`` is applied to the repeated leaf, so the
gradient is w.r.t. the un-augmented image and the stored gradient needs no transform.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F

Augment = Callable[[torch.Tensor], torch.Tensor]
# (x (B, *S), target classes (B, T)) -> (input-gradients (B, T, *S), logits (B, T, C))
InputGrads = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def sample_target_classes(
    labels: torch.Tensor, num_classes: int, k: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """K distinct target classes per image, the true class first and K - 1 others at random.

    Args:
        labels: int64 (B,). Returns int64 (B, K).
    """
    if not 1 <= k <= num_classes:
        raise ValueError(f"k_classes must be in [1, {num_classes}], got {k}")
    b = labels.shape[0]
    # random scores with the true class forced to the top, then take the K best: distinct, true class kept
    scores = torch.rand(b, num_classes, generator=generator, device="cpu").to(labels.device)
    scores.scatter_(1, labels.view(-1, 1), 2.0)
    return scores.topk(k, dim=1).indices


def cosine_loss(v: torch.Tensor, u: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Eq. 5 row-wise: 1 - v.u / max(|v| |u|, eps). v, u (R, D) -> (R,)."""
    dot = (v * u).sum(dim=1)
    return 1.0 - dot / (v.norm(dim=1) * u.norm(dim=1)).clamp_min(eps)


def _repeat_rows(x: torch.Tensor, t: int) -> torch.Tensor:
    """(B, *S) -> (B*T, *S), row b*T + j = x[b], keeping a channels_last input channels_last (else the
    first convolution would convert the whole repeated batch); a contiguous input is left as it was."""
    rep = x.repeat_interleave(t, dim=0)
    if x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
        rep = rep.contiguous(memory_format=torch.channels_last)
    return rep


def input_grads_log_prob(
    model: nn.Module | Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    target_classes: torch.Tensor,
    *,
    augment: Augment | None = None,
    create_graph: bool = True,
    return_logits: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """grad_x log p(y_t | x) for every image and target class, in one backward pass.

    Args:
        x: (B, *S) model-space inputs (not augmented).
        target_classes: int64 (B, T).
        augment: applied to the (B*T, *S) repeated batch (rows image-major: row b*T + t), must use the
            same random parameters for the T copies of an image.
    Returns:
        (B, T, *S) input-gradients, part of the autograd graph when ``create_graph``; with
        ``return_logits`` also the logits of the repeated rows (B, T, C) (any row t of image b is
        model(augment(x_b)); reusing them saves the separate cross-entropy forward).
    """
    b, t = target_classes.shape
    rep = _repeat_rows(x.detach(), t).requires_grad_(True)
    logits = model(augment(rep) if augment is not None else rep)
    logp = F.log_softmax(logits, dim=1).gather(1, target_classes.reshape(-1, 1))
    (grad,) = torch.autograd.grad(logp.sum(), rep, create_graph=create_graph)
    grad = grad.view(b, t, *x.shape[1:])
    return (grad, logits.view(b, t, -1)) if return_logits else grad


def input_grads_shared_forward(
    model: nn.Module | Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    target_classes: torch.Tensor,
    *,
    augment: Augment | None = None,
    create_graph: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`input_grads_log_prob` from one forward of the B images instead of B*T repeated rows.

    The T input-gradients of an image are vector-Jacobian products of the same forward with T one-hot
    cotangents on log p, computed as one batched backward (``is_grads_batched``: vmap over the
    cotangents). Valid only when the rows of a batch do not interact, i.e. no layer normalises with
    train-mode batch statistics (eval-mode or frozen batch norm, or none): otherwise the B-row
    backward would add cross-image terms. Saves the B*T forward and, in the parameter update, its backward.

    Args:
        x: (B, *S) model-space inputs (not augmented); target_classes: int64 (B, T).
        augment: applied to the B images (not repeated): one augmentation per image.
    Returns:
        ((B, T, *S) input-gradients, part of the graph when ``create_graph``; (B, T, C) logits, the B
        forward rows expanded over T without a copy).
    """
    b, t = target_classes.shape
    leaf = x.detach().requires_grad_(True)
    logits = model(augment(leaf) if augment is not None else leaf)
    logp = F.log_softmax(logits, dim=1)
    onehot = F.one_hot(target_classes.t(), logp.shape[1]).to(logp.dtype)  # (T, B, C): cotangent j picks class
    (grad,) = torch.autograd.grad(logp, leaf, grad_outputs=onehot, is_grads_batched=True,
                                  create_graph=create_graph)
    return grad.transpose(0, 1), logits[:, None].expand(b, t, logits.shape[1])


def pag_alignment_loss(
    model: nn.Module | Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    target_grads: torch.Tensor,
    target_classes: torch.Tensor | None = None,
    *,
    labels: torch.Tensor | None = None,
    k_classes: int | None = None,
    augment: Augment | None = None,
    eps: float = 1e-8,
    generator: torch.Generator | None = None,
    create_graph: bool = True,
    return_logits: bool = False,
    classes: torch.Tensor | None = None,
    input_grads: InputGrads | None = None,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """PAG alignment loss (Eq. 4's sum over classes, Eq. 5's cosine loss), batch mean.

    Args:
        model: maps (N, *S) -> logits (N, C).
        x: (B, *S) model-space inputs (un-augmented; the stored gradients refer to these).
        target_grads: (B, C, *S) stored gradients g(x, y) for every class (only direction matters).
        target_classes: int64 (B, T) classes to align; default all C classes (or K sampled, see below).
        labels: int64 (B,) true classes; needed with ``k_classes`` (the true class is always a target).
        k_classes: sample K target classes per image; the sum is scaled by C / K.
        augment: differentiable augmentation applied inside the graph (see :func:`input_grads_log_prob`).
        eps: floor of the norm product in the cosine (Eq. 5).
        generator: RNG for sampling target classes.
        create_graph: keep the graph so the loss can be back-propagated to the parameters.
        return_logits: also return the repeated rows' logits (B, T, C) (see :func:`input_grads_log_prob`).
        classes: int64 (B, K) class ids of target_grads' K slots (a K-of-C store, true class first); then
            target_grads is (B, K, *S), ``target_classes`` are class ids found among them, the default
            targets are the K stored classes (or ``k_classes`` of them, the true class always), and the sum
            is scaled by C / T with C the model's class count. None: slot c is class c (K = C).
        input_grads: ``(x, target_classes (B, T)) -> ((B, T, *S) input-gradients, (B, T, C) logits)`` in
            place of the repeated rows (``augment`` is then unused): e.g.
            ``partial(input_grads_shared_forward, model, augment=aug)`` where rows do not interact.
    Returns:
        Scalar tensor: mean over images of sum_t (1 - cos), in [0, 2C] (and the logits if asked).
    """
    if target_grads.dim() < 3 or target_grads.shape[0] != x.shape[0] or target_grads.shape[2:] != x.shape[1:]:
        raise ValueError(
            f"target_grads must be (B, C, *S) = ({x.shape[0]}, C, {', '.join(map(str, x.shape[1:]))}), "
            f"got {tuple(target_grads.shape)}"
        )
    b, c = target_grads.shape[:2]
    if classes is not None:
        return _stored_classes_loss(model, x, target_grads, classes, target_classes, k_classes, augment, eps,
                                    generator, create_graph, return_logits, input_grads)
    all_classes = target_classes is None and (k_classes is None or k_classes >= c)
    if target_classes is None:
        if k_classes is not None and k_classes < c:
            if labels is None:
                raise ValueError("k_classes needs labels: the true class is always among the targets")
            target_classes = sample_target_classes(labels, c, k_classes, generator)
        else:
            target_classes = torch.arange(c, device=x.device).expand(b, c)
    t = target_classes.shape[1]
    v, logits = _input_grads(model, x, target_classes, augment, create_graph, input_grads)
    # all classes in order: the stored gradients are already the targets (no B x C x D gather copy)
    u = target_grads if all_classes else target_grads.gather(
        1, target_classes.view(b, t, *([1] * (x.dim() - 1))).expand(b, t, *x.shape[1:]))
    per_row = cosine_loss(v.reshape(b * t, -1), u.reshape(b * t, -1).to(v.dtype), eps)
    loss = per_row.view(b, t).sum(dim=1).mean() * (c / t)
    return (loss, logits) if return_logits else loss


def _input_grads(
    model: nn.Module | Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, target_classes: torch.Tensor,
    augment: Augment | None, create_graph: bool, input_grads: InputGrads | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, T, *S) input-gradients and (B, T, C) logits: from ``input_grads`` if given, else the repeated rows."""
    if input_grads is not None:
        return input_grads(x, target_classes)
    return input_grads_log_prob(model, x, target_classes, augment=augment, create_graph=create_graph,
                                return_logits=True)


def _stored_classes_loss(
    model: nn.Module | Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, target_grads: torch.Tensor,
    classes: torch.Tensor, target_classes: torch.Tensor | None, k_classes: int | None, augment: Augment | None,
    eps: float, generator: torch.Generator | None, create_graph: bool, return_logits: bool,
    input_grads: InputGrads | None,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """pag_alignment_loss for a K-of-C store: x (B, *S), target_grads (B, K, *S), classes (B, K); the targets
    (B, T) are class ids, each read from its slot in ``classes``."""
    b, k = classes.shape
    if target_classes is None:
        slots = (sample_target_classes(torch.zeros(b, dtype=torch.long, device=classes.device), k, k_classes,
                                       generator) if k_classes is not None and k_classes < k
                 else torch.arange(k, device=classes.device).expand(b, k))  # slot 0 holds the true class
        target_classes = classes.gather(1, slots)
    match = classes[:, None, :] == target_classes[:, :, None]  # (B, T, K)
    if not bool(match.any(dim=2).all()):
        raise ValueError("target_classes must be among the stored classes of each image")
    slots = match.float().argmax(dim=2)
    t = target_classes.shape[1]
    v, logits = _input_grads(model, x, target_classes, augment, create_graph, input_grads)
    u = target_grads.gather(1, slots.view(b, t, *([1] * (x.dim() - 1))).expand(b, t, *x.shape[1:]))
    per_row = cosine_loss(v.reshape(b * t, -1), u.reshape(b * t, -1).to(v.dtype), eps)
    loss = per_row.view(b, t).sum(dim=1).mean() * (logits.shape[-1] / t)
    return (loss, logits) if return_logits else loss


def pag_alignment_loss_bruteforce(
    model: nn.Module, x: torch.Tensor, target_grads: torch.Tensor, target_classes: torch.Tensor | None = None,
    eps: float = 1e-8,
) -> torch.Tensor:
    """Slow per-image, per-class reference of :func:`pag_alignment_loss` (no augmentation), for tests.

    Shapes as in :func:`pag_alignment_loss`; differentiable w.r.t. parameters.
    """
    b, c = target_grads.shape[:2]
    if target_classes is None:
        target_classes = torch.arange(c).expand(b, c)
    total = x.new_zeros(())
    for i in range(b):
        for y in target_classes[i].tolist():
            xi = x[i : i + 1].detach().clone().requires_grad_(True)
            logp = torch.log_softmax(model(xi), dim=1)[0, y]
            (v,) = torch.autograd.grad(logp, xi, create_graph=True)
            v, u = v.flatten(), target_grads[i, y].flatten().to(v.dtype)
            total = total + 1 - torch.dot(v, u) / torch.clamp(v.norm() * u.norm(), min=eps)
    return total / b * (c / target_classes.shape[1])


def pag_alignment_loss_reference_layout(
    model: nn.Module, x: torch.Tensor, target_grads: torch.Tensor
) -> torch.Tensor:
    """The reference code's layout, kept for benchmarking: repeat, mean cross-entropy against the target
    classes, grad of -CE, then C * (1 - mean cosine). Equals :func:`pag_alignment_loss` over all classes
    (the 1/(B*C) of the mean CE only rescales gradients, which the cosine ignores)."""
    b, c = target_grads.shape[:2]
    rep = x.detach().repeat_interleave(c, dim=0).requires_grad_(True)
    targets = torch.arange(c, device=x.device).repeat(b)
    ce = F.cross_entropy(model(rep), targets)
    (grad,) = torch.autograd.grad(-ce, rep, create_graph=True)
    cos = F.cosine_similarity(grad.reshape(b * c, -1), target_grads.reshape(b * c, -1).to(grad.dtype), dim=1)
    return c * (1.0 - cos.mean())
