"""Score-Based Gradients (paper Section 4.2, Eq. 8): g(x, y) = score(x_t | y) - score(x_t | none).

One class-conditional diffusion model with C + 1 labels (label C = "no class") gives both scores, with
score = -eps / sqrt(1 - alphabar_t). x_t = sqrt(alphabar_t) x0 + sqrt(1 - alphabar_t) n, x0 = 2x - 1 in
[-1, 1]. The noise n of a sample is drawn from a generator seeded by (seed, dataset index) alone, so a
sample's gradients are the same whatever the batch size, the batch it lands in or the worker running it.
For one image the C conditional and 1 unconditional evaluations share x_t and run in the same forward.

The output is a gradient w.r.t. [0, 1] pixels: d/dx = 2 d/dx0 (``pixel_chain_rule``); only its direction
is used downstream.

When the diffusion model's image size differs from the data's (STL-10's 96 px with the 64-px imagenet64
preset), x0 is the data resized into the model's size with the same bicubic resize train_diffusion used,
the scores are taken there, and the gradient is mapped back to the data's size through the adjoint of
that resize (autograd through it), so the stored gradient is a direction in the data's own pixels.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pagstore.sources.base import GradientSource, SourceError

PIXEL_CHAIN_RULE = 2.0

EpsFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class SBGParams:
    """SBG parameters.

    Attributes:
        t: the diffusion timestep (0 = clean, T - 1 = pure noise); a medium value works (paper Fig. 8).
        forward_batch: images per model forward (each gives C + 1 rows). Fixed, and the last forward of a
            call padded to it, because CPU kernels pick different reduction orders for different batch
            sizes: with a fixed forward shape a sample's gradients are bit-identical however the caller
            batches samples (rows are independent of their position within a forward).
    """

    t: int
    forward_batch: int = 8

    def validate(self) -> None:
        if self.t < 0:
            raise ValueError(f"t must be a timestep >= 0, got {self.t}")
        if self.forward_batch < 1:
            raise ValueError(f"forward_batch must be >= 1, got {self.forward_batch}")


def sample_noise(seed: int, index: int, shape: tuple[int, ...]) -> torch.Tensor:
    """Standard normal noise (shape) for one sample, fixed by (seed, dataset index) only."""
    state = np.random.SeedSequence([int(seed), int(index)]).generate_state(1, np.uint64)[0]
    gen = torch.Generator().manual_seed(int(state) & 0x7FFF_FFFF_FFFF_FFFF)
    return torch.randn(shape, generator=gen, dtype=torch.float32)


class ScoreBasedSource(GradientSource):
    """SBG from a noise predictor ``eps_fn(x_t (N, *S) in [-1, 1], t (N,) int64, y (N,) int64) -> (N, *S)``.

    Args:
        params: the timestep ``t``.
        eps_fn: the diffusion model's eps prediction (rescaling and learned-sigma split done inside).
        alphas_cumprod: (T,) alphabar schedule of the diffusion.
        num_classes: C; the model must accept labels 0..C, C meaning "no class".
        sample_shape: (ch, H, W).
        seed: fixes every sample's noise together with its dataset index.
        model_info: recorded in :meth:`describe` (checkpoint path, step, fingerprint, config).
        device: where the forward passes run.
        precision: fp32 | bf16 | fp16 autocast of the model forwards (scores are returned in fp32).
        model_size: the diffusion model's image size when it differs from ``sample_shape``'s (see module doc).
    """

    name = "sbg"

    def __init__(
        self,
        params: SBGParams,
        eps_fn: EpsFn,
        alphas_cumprod: np.ndarray,
        num_classes: int,
        sample_shape: tuple[int, ...],
        seed: int = 0,
        model_info: dict[str, Any] | None = None,
        device: str | torch.device = "cpu",
        precision: str = "fp32",
        model_size: int | None = None,
    ) -> None:
        super().__init__(num_classes, sample_shape)
        ab = np.asarray(alphas_cumprod, dtype=np.float64)
        if ab.ndim != 1 or not 0 <= params.t < ab.shape[0]:
            raise SourceError(f"source 'sbg': t={params.t} is outside the diffusion's [0, {ab.shape[0]}) steps")
        self.params = params
        self.eps_fn = eps_fn
        self.alphas_cumprod = ab
        self.alphabar = float(ab[params.t])
        self.num_timesteps = int(ab.shape[0])
        self.seed = int(seed)
        self.model_info = dict(model_info or {})
        self.device = torch.device(device)
        self.precision = precision
        self.model_size = None if model_size is None or (model_size,) * 2 == tuple(sample_shape[1:]) else model_size

    def at_timestep(self, t: int) -> ScoreBasedSource:
        """The same source (model, seed, forward batch) at another timestep ``t`` (for t-sweeps)."""
        params = SBGParams(t=t, forward_batch=self.params.forward_batch)
        return ScoreBasedSource(params, self.eps_fn, self.alphas_cumprod, self.num_classes, self.sample_shape,
                                self.seed, self.model_info, self.device, self.precision, self.model_size)

    def noisy(self, x: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        """x_t (B, ch, h, w) in the diffusion's space and size for [0, 1] samples x (B, *S)."""
        x0 = 2.0 * x - 1.0
        if self.model_size is not None:
            from pagstore.improved_diffusion.training import resize_to_model

            x0 = resize_to_model(x0, self.model_size).clamp(-1.0, 1.0)  # as train_diffusion saw its data
        noise = torch.stack([sample_noise(self.seed, int(i), tuple(x0.shape[1:])) for i in indices])
        return float(np.sqrt(self.alphabar)) * x0 + float(np.sqrt(1.0 - self.alphabar)) * noise

    def to_data_size(self, g: torch.Tensor) -> torch.Tensor:
        """Map gradients (B, C, ch, h, w) at the model's size back to the data's (B, C, *S): the adjoint of
        the linear resize, by autograd through it (the clamp only trims bicubic overshoot and is left out)."""
        from pagstore.improved_diffusion.training import resize_to_model

        b, c = g.shape[:2]
        with torch.enable_grad():  # compute() runs under no_grad
            leaf = torch.zeros(b * c, *self.sample_shape, dtype=g.dtype, device=g.device, requires_grad=True)
            (back,) = torch.autograd.grad(resize_to_model(leaf, self.model_size), leaf,
                                          grad_outputs=g.reshape(b * c, *g.shape[2:]))
        return back.reshape(b, c, *self.sample_shape)

    def _compute(self, x: torch.Tensor, labels: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        from pagstore.devices import autocast

        b, c, fb = x.shape[0], self.num_classes, self.params.forward_batch
        x_t = self.noisy(x, indices).to(self.device)
        model_shape = tuple(x_t.shape[1:])
        # Pad to whole forwards: every forward has the same shape (see SBGParams.forward_batch).
        n_pad = -b % fb
        x_t = torch.cat([x_t, x_t.new_zeros(n_pad, *x_t.shape[1:])])
        # Rows ordered (image, label): each image's C + 1 evaluations sit together in one forward.
        y = torch.arange(c + 1, device=self.device).repeat(fb)
        t = torch.full((fb * (c + 1),), self.params.t, dtype=torch.int64, device=self.device)
        with torch.no_grad(), autocast(self.device, self.precision):
            eps = torch.cat([
                self.eps_fn(x_t[i : i + fb].repeat_interleave(c + 1, dim=0), t, y).float()
                for i in range(0, b + n_pad, fb)
            ])[: b * (c + 1)].reshape(b, c + 1, *model_shape)
        score = -eps / float(np.sqrt(1.0 - self.alphabar))
        g = PIXEL_CHAIN_RULE * (score[:, :c] - score[:, c:])
        if self.model_size is not None:
            g = self.to_data_size(g)
        return g.cpu()

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "t": self.params.t,
            "forward_batch": self.params.forward_batch,
            "num_timesteps": self.num_timesteps,
            "alphabar_t": self.alphabar,
            "seed": self.seed,
            "noise": "torch.randn per sample, generator seeded by SeedSequence([seed, dataset index])",
            "score": "-eps / sqrt(1 - alphabar_t); g = score(x_t|y) - score(x_t|none), none = label C",
            "pixel_chain_rule": PIXEL_CHAIN_RULE,
            "model": self.model_info,
            # Recorded only when they apply, so stores made before these options stay byte-identical.
            **({"precision": self.precision} if self.precision != "fp32" else {}),
            **({"resize": {
                "from": list(self.sample_shape[1:]), "to": [self.model_size] * 2,
                "method": "torch.nn.functional.interpolate bicubic, align_corners=False, antialias=True, "
                          "then clamp [-1, 1] (as train_diffusion)",
                "gradient": "adjoint of the resize (autograd through it) back to the data's size",
            }} if self.model_size is not None else {}),
        }


def sbg_from_checkpoint(
    params: SBGParams,
    checkpoint: str | Path,
    num_classes: int,
    sample_shape: tuple[int, ...],
    *,
    dataset_fingerprint: str | None = None,
    seed: int = 0,
    device: str = "cpu",
    precision: str = "fp32",
) -> ScoreBasedSource:
    """Build SBG from a diffusion checkpoint written by ``pagstore.improved_diffusion`` (EMA weights).

    Raises:
        SourceError: the checkpoint's label count is not C + 1, or it was trained on other data.
    """
    # Imported here: the diffusion package is only needed by this source.
    from pagstore.improved_diffusion.checkpoint import load_checkpoint
    from pagstore.improved_diffusion.score import predict_eps

    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise SourceError(f"source 'sbg': diffusion checkpoint {checkpoint} not found (run train_diffusion)")
    model, diffusion, meta = load_checkpoint(checkpoint, ema=True)
    if int(meta["num_classes"]) != num_classes + 1:
        raise SourceError(
            f"source 'sbg': {checkpoint} has {meta['num_classes']} labels, expected C + 1 = {num_classes + 1} "
            "(C classes plus the 'no class' label)"
        )
    trained_on = meta.get("dataset_fingerprint")
    if dataset_fingerprint is not None and trained_on and trained_on != dataset_fingerprint:
        raise SourceError(
            f"source 'sbg': {checkpoint} was trained on dataset {trained_on}, but the training split is "
            f"{dataset_fingerprint}"
        )
    from pagstore.devices import resolve_device

    device = resolve_device(device)
    model = model.to(device).eval()

    def eps_fn(x_t: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return predict_eps(model, diffusion, x_t, t, y)

    info = {
        "checkpoint": str(checkpoint),
        "step": int(meta.get("step", -1)),
        "dataset_fingerprint": trained_on,
        "config": meta.get("config", {}),
    }
    source = ScoreBasedSource(
        params, eps_fn, np.asarray(diffusion.alphas_cumprod), num_classes, sample_shape, seed, info, device,
        precision, model_size=int(meta["config"]["image_size"]),
    )
    source.model, source.diffusion = model, diffusion  # for benchmarks and plots
    return source
