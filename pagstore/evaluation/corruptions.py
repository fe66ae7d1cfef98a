"""Non-norm-bounded attacks built on the model alone (the paper's Table 6, done the way foolbox does them).

Each corruption maps images and a severity ``s`` in [0, 1] to corrupted images; ``s = 0`` is the identity
and the corruption grows monotonically with ``s`` along a fixed per-image path (the random noise of an
image is drawn once, from a seed and the image's position, so a larger severity only adds to a smaller one):

- ``gaussian_blur``: Gaussian filter, sigma = s * max(H, W), reflect boundaries (foolbox GaussianBlurAttack).
- ``salt_and_pepper``: a fraction s of the pixels set to 0 or 1 (all channels of a pixel together).
- ``contrast_reduction``: (1 - s) * x + s * 0.5 (foolbox's ContrastReductionAttack, target 0.5).
- ``blended_uniform_noise``: (1 - s) * x + s * u with u ~ U[0, 1] (foolbox's LinearSearchBlendedUniformNoise).

The attack is the per-image search for the smallest severity that changes the prediction: a linear scan
over ``steps`` severities, then bisection between the last correct and the first wrong one (foolbox's
linear/binary-search attacks do the same). Images already misclassified have minimal severity 0; images
never misclassified up to s = 1 have minimal severity inf.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

Corruption = Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]


def _per_image_generator(seed: int) -> torch.Generator:
    return torch.Generator(device="cpu").manual_seed(seed)


def _expand(s: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return s.to(x).view(-1, *([1] * (x.dim() - 1)))


def contrast_reduction(x: torch.Tensor, s: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """(B, ch, H, W) images in [0, 1], (B,) severities -> (1 - s) x + s / 2."""
    s = _expand(s, x)
    return (1 - s) * x + s * 0.5


def blended_uniform_noise(x: torch.Tensor, s: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """(1 - s) x + s u, u ~ U[0, 1]^shape drawn once from ``seed`` (same noise for every severity)."""
    noise = torch.rand(x.shape, generator=_per_image_generator(seed)).to(x)
    s = _expand(s, x)
    return (1 - s) * x + s * noise


def salt_and_pepper(x: torch.Tensor, s: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """Pixels with u < s/2 become 1 (salt), u > 1 - s/2 become 0 (pepper); u ~ U[0, 1] per pixel, fixed."""
    b, ch, h, w = x.shape
    u = torch.rand((b, 1, h, w), generator=_per_image_generator(seed)).to(x)
    s = _expand(s, x)
    out = torch.where(u < s / 2, torch.ones_like(x), x)
    return torch.where(u > 1 - s / 2, torch.zeros_like(x), out)


def gaussian_blur(x: torch.Tensor, s: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """Gaussian blur with sigma_i = s_i * max(H, W), boundary mode "reflect" (as scipy / foolbox); s_i = 0
    leaves image i unchanged. (B, ch, H, W) -> (B, ch, H, W)."""
    out = x.clone()
    h, w = x.shape[-2:]
    for i, si in enumerate(s.tolist()):
        if si > 0:
            sigma = si * max(h, w)
            out[i] = _blur_matrix(h, sigma).to(x) @ x[i] @ _blur_matrix(w, sigma).to(x).T
    return out


def _blur_matrix(n: int, sigma: float) -> torch.Tensor:
    """(n, n) matrix applying a 1-D Gaussian with reflect boundaries (d c b a | a b c d | d c b a).

    Folding the kernel onto the n positions works for any sigma, also kernels wider than the image, where
    the blur tends to the image mean.
    """
    radius = int(math.ceil(4 * sigma))
    offsets = torch.arange(-radius, radius + 1)
    kernel = torch.exp(-0.5 * (offsets.double() / sigma) ** 2)
    kernel /= kernel.sum()
    rows = torch.arange(n).view(-1, 1)
    m = (rows + offsets.view(1, -1)) % (2 * n)
    cols = torch.where(m < n, m, 2 * n - 1 - m)
    mat = torch.zeros(n, n, dtype=torch.float64)
    mat.scatter_add_(1, cols, kernel.expand(n, -1).clone())
    return mat.float()


CORRUPTIONS: dict[str, Corruption] = {
    "gaussian_blur": gaussian_blur,
    "salt_and_pepper": salt_and_pepper,
    "contrast_reduction": contrast_reduction,
    "blended_uniform_noise": blended_uniform_noise,
}


def get_corruption(name: str) -> Corruption:
    """Look up a corruption by name (keys of CORRUPTIONS)."""
    if name not in CORRUPTIONS:
        raise ValueError(f"unknown corruption {name!r}; known: {', '.join(CORRUPTIONS)}")
    return CORRUPTIONS[name]


def _correct(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(x).argmax(1) == y


def accuracy_at(model: nn.Module, x: torch.Tensor, y: torch.Tensor, name: str, severity: float,
                seed: int = 0) -> float:
    """Accuracy of ``model`` on x (N, ch, H, W), y (N,) corrupted by ``name`` at one severity."""
    xc = get_corruption(name)(x, torch.full((len(y),), float(severity)), seed)
    return _correct(model, xc, y).float().mean().item()


def minimal_severity(model: nn.Module, x: torch.Tensor, y: torch.Tensor, name: str, *, steps: int = 32,
                     refine: int = 6, seed: int = 0) -> torch.Tensor:
    """Smallest severity in [0, 1] that makes each image misclassified: (N,) float, inf when none does.

    Linear scan over ``steps`` severities (1/steps, 2/steps, ..., 1), then ``refine`` bisection steps.
    """
    corrupt = get_corruption(name)
    n = len(y)
    result = torch.full((n,), math.inf)
    result[~_correct(model, x, y)] = 0.0
    grid = torch.linspace(0, 1, steps + 1)[1:]
    lo = torch.zeros(n)
    hi = torch.full((n,), math.inf)
    pending = torch.isinf(result)
    for s in grid:
        if not pending.any():
            break
        idx = torch.nonzero(pending).flatten()
        # Corrupt the whole batch and index: the noise of an image depends on its position in the batch.
        full = corrupt(x, torch.full((n,), float(s)), seed)
        wrong = ~_correct(model, full[idx], y[idx])
        hi[idx[wrong]] = float(s)
        pending[idx[wrong]] = False
        lo[idx[~wrong]] = float(s)
    found = torch.isfinite(hi) & torch.isinf(result)
    for _ in range(refine):
        if not found.any():
            break
        mid = torch.where(found, (lo + hi) / 2, torch.zeros(n))
        wrong = ~_correct(model, corrupt(x, mid, seed), y)
        hi = torch.where(found & wrong, mid, hi)
        lo = torch.where(found & ~wrong, mid, lo)
    result[found] = hi[found]
    return result


def corruption_report(model: nn.Module, x: torch.Tensor, y: torch.Tensor, names: list[str],
                      severities: list[float], *, steps: int = 32, refine: int = 6,
                      seed: int = 0) -> dict[str, dict]:
    """Per corruption: accuracy at each fixed severity and the median minimal severity (inf -> None)."""
    out = {}
    for name in names:
        mins = minimal_severity(model, x, y, name, steps=steps, refine=refine, seed=seed)
        median = mins.median().item() if len(mins) else math.nan
        out[name] = {
            "accuracy_at": {f"{s:g}": accuracy_at(model, x, y, name, s, seed) for s in severities},
            "median_min_severity": None if math.isinf(median) else median,
            "fooled_fraction": torch.isfinite(mins).float().mean().item(),
        }
    return out
