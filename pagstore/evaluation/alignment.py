"""Quantitative gradient-alignment metrics.

- SBG cosine: the mean cosine between a model's input-gradients grad_x log p(c | x), for every class c,
  and the score-based ("ground-truth" perceptually aligned) gradients of held-out test images stored in
  ``stores/sbg-test``. This is the quantity the PAG objective maximises on training images, measured on
  images the model never saw.
- Etmann alignment (Etmann et al. 2019, as restated in "gradient alignment to the closest class"):
  |<x, g>| / (||x|| ||g||) with g = grad_x of the logit of the predicted class; robust models score higher.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pagstore.loss import input_grads_log_prob

_TINY = 1e-12


def input_gradients(model: nn.Module, x: torch.Tensor, num_classes: int | None = None) -> torch.Tensor:
    """grad_x log softmax(model(x))[:, c] for every class c: (B, *S) -> (B, C, *S).

    The training loss's one-backward layout (:func:`pagstore.loss.input_grads_log_prob`) with every class
    as a target; rows do not interact in eval mode. ``num_classes`` saves a probe forward when known.
    """
    if num_classes is None:
        with torch.no_grad():
            num_classes = model(x[:1]).shape[1]
    targets = torch.arange(num_classes, device=x.device).expand(x.shape[0], num_classes)
    return input_grads_log_prob(model, x, targets, create_graph=False)


def cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Cosine over all trailing dims after the first two: (B, C, *S) x (B, C, *S) -> (B, C)."""
    a = a.flatten(2)
    b = b.flatten(2)
    return (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1)).clamp_min(_TINY)


def etmann_alignment(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """|<x, g>| / (||x|| ||g||), g = grad_x logit_{argmax}(x): (B, *S) -> (B,)."""
    x = x.detach().requires_grad_(True)
    logits = model(x)
    pred = logits.argmax(1)
    (grad,) = torch.autograd.grad(logits.gather(1, pred.view(-1, 1)).sum(), x)
    xf, gf = x.detach().flatten(1), grad.flatten(1)
    return (xf * gf).sum(1).abs() / (xf.norm(dim=1) * gf.norm(dim=1)).clamp_min(_TINY)


def sbg_alignment(model: nn.Module, x: torch.Tensor, y: torch.Tensor, reference: torch.Tensor,
                  batch_size: int = 64) -> dict[str, float]:
    """Mean cosine between the model's per-class input-gradients and reference gradients.

    Args:
        x: (N, *S) model-space inputs; y: (N,) labels; reference: (N, C, *S) reference gradients
            (e.g. SBG), only their directions matter.

    Returns:
        ``cos_mean`` over all (image, class) pairs, ``cos_true_class`` (c = y) and ``cos_other_classes``.
    """
    if reference.shape[:2] != (x.shape[0], reference.shape[1]) or reference.shape[2:] != x.shape[1:]:
        raise ValueError(f"reference gradients must be (N, C, *S) = ({x.shape[0]}, C, "
                         f"{', '.join(map(str, x.shape[1:]))}), got {tuple(reference.shape)}")
    c = reference.shape[1]
    cos = torch.cat([cosine(input_gradients(model, x[i:i + batch_size], c), reference[i:i + batch_size].float())
                     for i in range(0, len(x), batch_size)])
    true_mask = F.one_hot(y, cos.shape[1]).bool()
    return {
        "cos_mean": cos.mean().item(),
        "cos_true_class": cos[true_mask].mean().item(),
        "cos_other_classes": cos[~true_mask].mean().item() if cos.shape[1] > 1 else float("nan"),
    }


def load_reference_gradients(store_path: str, num_images: int) -> tuple[torch.Tensor, torch.Tensor,
                                                                          torch.Tensor, dict]:
    """Read the first ``num_images`` samples of a gradient store: x (n, *S) model space, y (n,), grads (n, C, *S).

    Also returns a small description of the store (source name, dataset fingerprint) for the metrics.
    """
    from pagstore import open_store  # the store module imports zarr: only when alignment is wanted

    store = open_store(store_path, mode="r")
    if not store.is_complete():
        raise ValueError(f"{store_path}: gradient store is incomplete (missing shards "
                         f"{store.missing_shards()[:5]}...); rerun the distill stage")
    n = min(num_images, store.num_samples)
    images, labels, grads = store.read(np.arange(n))
    x = torch.from_numpy(np.asarray(images))
    x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
    spec = store.spec
    info = {"path": str(store_path), "num_images": n,
            "source": dict(getattr(spec, "source", {}) or {}).get("name"),
            "dataset_fingerprint": getattr(getattr(spec, "dataset", None), "fingerprint", None)}
    return x, torch.from_numpy(np.asarray(labels)).long(), torch.from_numpy(np.asarray(grads)).float(), info


def alignment_metrics(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                      reference: torch.Tensor | None) -> dict[str, float]:
    """Etmann alignment (mean) and, when reference gradients are given, the SBG cosines."""
    out = {"etmann_mean": etmann_alignment(model, x).mean().item()}
    if reference is not None:
        out.update({f"sbg_{k}": v for k, v in sbg_alignment(model, x, y, reference).items()})
    return out
