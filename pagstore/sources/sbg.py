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

    t: int | None
    forward_batch: int = 8
    # A pair (see UncondModel): a separate unconditional diffusion checkpoint, its own timestep t_uncond,
    # or instead of t / t_uncond one shared noise level alphabar (each model then runs at its nearest step).
    uncond_checkpoint: str | None = None
    t_uncond: int | None = None
    alphabar: float | None = None

    def validate(self) -> None:
        if (self.t is None) == (self.alphabar is None):
            raise ValueError("give exactly one of t (a timestep) and alphabar (a shared noise level)")
        if self.t is not None and self.t < 0:
            raise ValueError(f"t must be a timestep >= 0, got {self.t}")
        if self.alphabar is not None and not 0.0 < self.alphabar < 1.0:
            raise ValueError(f"alphabar must be in (0, 1), got {self.alphabar}")
        if self.forward_batch < 1:
            raise ValueError(f"forward_batch must be >= 1, got {self.forward_batch}")
        if self.uncond_checkpoint is None and self.t_uncond is not None:
            raise ValueError("t_uncond needs uncond_checkpoint (the separate unconditional model)")
        if self.uncond_checkpoint is not None and self.t is not None and self.t_uncond is None:
            raise ValueError("with uncond_checkpoint give t_uncond too (each model has its own schedule), "
                             "or one shared alphabar instead of t")


@dataclass(frozen=True)
class UncondModel:
    """The unconditional half of a pair: ``eps_fn(x_t, t, y)`` with ``y`` = ``null_label`` (or None when the
    model has no labels), its own alphabar schedule, and what to record about it."""

    eps_fn: EpsFn
    alphas_cumprod: np.ndarray
    null_label: int | None = None
    info: dict[str, Any] | None = None


def nearest_step(alphas_cumprod: np.ndarray, alphabar: float) -> int:
    """The step whose alphabar is closest to ``alphabar``."""
    return int(np.argmin(np.abs(np.asarray(alphas_cumprod, dtype=np.float64) - alphabar)))


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
        uncond: UncondModel | None = None,
        precision: str = "fp32",
        model_size: int | None = None,
    ) -> None:
        super().__init__(num_classes, sample_shape)
        ab = np.asarray(alphas_cumprod, dtype=np.float64)
        t = nearest_step(ab, params.alphabar) if params.t is None else params.t
        if ab.ndim != 1 or not 0 <= t < ab.shape[0]:
            raise SourceError(f"source 'sbg': t={t} is outside the diffusion's [0, {ab.shape[0]}) steps")
        self.params = params
        self.eps_fn = eps_fn
        self.alphas_cumprod = ab
        self.t = t
        self.alphabar = float(ab[t]) if params.alphabar is None else float(params.alphabar)
        self.uncond = uncond
        if uncond is not None:
            ab_u = np.asarray(uncond.alphas_cumprod, dtype=np.float64)
            self.t_uncond = nearest_step(ab_u, self.alphabar) if params.t_uncond is None else params.t_uncond
            if not 0 <= self.t_uncond < ab_u.shape[0]:
                raise SourceError(f"source 'sbg': t_uncond={self.t_uncond} is outside the unconditional "
                                  f"diffusion's [0, {ab_u.shape[0]}) steps")
            self.alphabar_uncond = float(ab_u[self.t_uncond]) if params.alphabar is None else self.alphabar
        self.num_timesteps = int(ab.shape[0])
        self.seed = int(seed)
        self.model_info = dict(model_info or {})
        self.device = torch.device(device)
        self.precision = precision
        self.model_size = None if model_size is None or (model_size,) * 2 == tuple(sample_shape[1:]) else model_size

    def at_timestep(self, t: int) -> ScoreBasedSource:
        """The same source (model, seed, forward batch) at another timestep ``t`` (for t-sweeps)."""
        params = SBGParams(t=t, forward_batch=self.params.forward_batch)
        if self.uncond is not None:  # the unconditional model follows at the same noise level
            t_u = nearest_step(self.uncond.alphas_cumprod, float(self.alphas_cumprod[t]))
            params = SBGParams(t=t, forward_batch=self.params.forward_batch, t_uncond=t_u,
                               uncond_checkpoint=self.params.uncond_checkpoint)
        return ScoreBasedSource(params, self.eps_fn, self.alphas_cumprod, self.num_classes, self.sample_shape,
                                self.seed, self.model_info, self.device, self.uncond, self.precision,
                                self.model_size)

    def noisy(self, x: torch.Tensor, indices: torch.Tensor, alphabar: float | None = None) -> torch.Tensor:
        """x_t (B, ch, h, w) in the diffusion's space and size for [0, 1] samples x (B, *S), at ``alphabar``
        (default: ours)."""
        ab = self.alphabar if alphabar is None else alphabar
        x0 = 2.0 * x - 1.0
        if self.model_size is not None:
            from pagstore.improved_diffusion.training import resize_to_model

            x0 = resize_to_model(x0, self.model_size).clamp(-1.0, 1.0)  # as train_diffusion saw its data
        noise = torch.stack([sample_noise(self.seed, int(i), tuple(x0.shape[1:])) for i in indices])
        return float(np.sqrt(ab)) * x0 + float(np.sqrt(1.0 - ab)) * noise

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

        if self.uncond is not None:
            return self._compute_pair(x, indices)
        b, c, fb = x.shape[0], self.num_classes, self.params.forward_batch
        x_t = self.noisy(x, indices).to(self.device)
        model_shape = tuple(x_t.shape[1:])
        # Pad to whole forwards: every forward has the same shape (see SBGParams.forward_batch).
        n_pad = -b % fb
        x_t = torch.cat([x_t, x_t.new_zeros(n_pad, *x_t.shape[1:])])
        # Rows ordered (image, label): each image's C + 1 evaluations sit together in one forward.
        y = torch.arange(c + 1, device=self.device).repeat(fb)
        t = torch.full((fb * (c + 1),), self.t, dtype=torch.int64, device=self.device)
        with torch.no_grad(), autocast(self.device, self.precision):
            eps = torch.cat([
                self.eps_fn(x_t[i : i + fb].repeat_interleave(c + 1, dim=0), t, y).float()
                for i in range(0, b + n_pad, fb)
            ])[: b * (c + 1)].reshape(b, c + 1, *model_shape)
        score = -eps / float(np.sqrt(1.0 - self.alphabar))
        return self._to_output(PIXEL_CHAIN_RULE * (score[:, :c] - score[:, c:]))

    def _to_output(self, g: torch.Tensor) -> torch.Tensor:
        """Gradients at the model's size (B, K, ch, h, w) -> the data's size, on the CPU."""
        if self.model_size is not None:
            g = self.to_data_size(g)
        return g.cpu()

    def _compute_pair(self, x: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        """g = score_cond(x_t | y) - score_uncond(x_t'), each model at its own step; the same noise per sample
        (x_t = x_t' when the noise level is shared). Labels 0..C-1 only: the null label is the other model's."""
        assert self.uncond is not None
        from pagstore.devices import autocast

        b, c, fb = x.shape[0], self.num_classes, self.params.forward_batch
        n_pad = -b % fb
        x_c = self.noisy(x, indices)
        model_shape = tuple(x_c.shape[1:])
        pad = x_c.new_zeros(n_pad, *model_shape)
        x_c = torch.cat([x_c, pad]).to(self.device)
        x_u = torch.cat([self.noisy(x, indices, self.alphabar_uncond), pad]).to(self.device)
        y = torch.arange(c, device=self.device).repeat(fb)
        t_c = torch.full((fb * c,), self.t, dtype=torch.int64, device=self.device)
        t_u = torch.full((fb,), self.t_uncond, dtype=torch.int64, device=self.device)
        null = self.uncond.null_label
        y_u = None if null is None else torch.full((fb,), null, dtype=torch.int64, device=self.device)
        with torch.no_grad(), autocast(self.device, self.precision):
            eps_c = torch.cat([self.eps_fn(x_c[i : i + fb].repeat_interleave(c, dim=0), t_c, y).float()
                               for i in range(0, b + n_pad, fb)])[: b * c].reshape(b, c, *model_shape)
            eps_u = torch.cat([self.uncond.eps_fn(x_u[i : i + fb], t_u, y_u).float()
                               for i in range(0, b + n_pad, fb)])[:b].reshape(b, 1, *model_shape)
        score_c = -eps_c / float(np.sqrt(1.0 - self.alphabar))
        score_u = -eps_u / float(np.sqrt(1.0 - self.alphabar_uncond))
        return self._to_output(PIXEL_CHAIN_RULE * (score_c - score_u))

    def _compute_classes(self, x: torch.Tensor, labels: torch.Tensor, indices: torch.Tensor,
                         classes: torch.Tensor) -> torch.Tensor:
        """Only the K asked classes: K + 1 rows per image (its K labels, then "no class") instead of C + 1."""
        if self.uncond is not None:
            # The pair's unconditional term is shared by all classes; selecting classes there is not wired yet.
            raise SourceError("source 'sbg': num_target_classes (K of C) is not supported with uncond_checkpoint; "
                              "distill all C classes (num_target_classes: null)")
        from pagstore.devices import autocast

        b, k, c, fb = x.shape[0], classes.shape[1], self.num_classes, self.params.forward_batch
        x_t = self.noisy(x, indices).to(self.device)
        model_shape = tuple(x_t.shape[1:])
        n_pad = -b % fb  # whole forwards of a fixed shape, as in _compute
        x_t = torch.cat([x_t, x_t.new_zeros(n_pad, *x_t.shape[1:])])
        y_all = torch.cat([classes, torch.full((b, 1), c, dtype=torch.int64)], dim=1)  # (B, K + 1)
        y_all = torch.cat([y_all, torch.full((n_pad, k + 1), c, dtype=torch.int64)]).to(self.device)
        t = torch.full((fb * (k + 1),), self.t, dtype=torch.int64, device=self.device)
        with torch.no_grad(), autocast(self.device, self.precision):
            eps = torch.cat([
                self.eps_fn(x_t[i : i + fb].repeat_interleave(k + 1, dim=0), t, y_all[i : i + fb].reshape(-1)).float()
                for i in range(0, b + n_pad, fb)
            ])[: b * (k + 1)].reshape(b, k + 1, *model_shape)
        score = -eps / float(np.sqrt(1.0 - self.alphabar))
        return self._to_output(PIXEL_CHAIN_RULE * (score[:, :k] - score[:, k:]))

    def describe(self) -> dict[str, Any]:
        if self.uncond is not None:
            return self._describe_pair()
        return {
            "name": self.name,
            "t": self.t,
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

    def _describe_pair(self) -> dict[str, Any]:
        assert self.uncond is not None
        return {
            "name": self.name,
            "pair": True,
            "t": self.t,
            "t_uncond": self.t_uncond,
            "alphabar": self.params.alphabar,
            "forward_batch": self.params.forward_batch,
            "num_timesteps": self.num_timesteps,
            "num_timesteps_uncond": int(len(self.uncond.alphas_cumprod)),
            "alphabar_t": self.alphabar,
            "alphabar_t_uncond": self.alphabar_uncond,
            "seed": self.seed,
            "noise": "torch.randn per sample, generator seeded by SeedSequence([seed, dataset index])",
            "score": "-eps / sqrt(1 - alphabar); g = score_cond(x_t|y) - score_uncond(x_t'), x_t and x_t' from "
                     "the same noise at each model's own alphabar",
            "pixel_chain_rule": PIXEL_CHAIN_RULE,
            "model": self.model_info,
            "uncond_model": dict(self.uncond.info or {}),
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
    labels = meta.get("num_classes")
    pair = params.uncond_checkpoint is not None
    if not pair and labels != num_classes + 1:
        raise SourceError(
            f"source 'sbg': {checkpoint} has {labels} labels, expected C + 1 = {num_classes + 1} "
            "(C classes plus the 'no class' label)"
        )
    if pair and labels not in (num_classes, num_classes + 1):
        raise SourceError(f"source 'sbg': {checkpoint} has {labels} labels, expected C = {num_classes} "
                          f"(or C + 1 with a 'no class' label, unused in a pair)")
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
    uncond = _uncond_model(Path(params.uncond_checkpoint), device) if pair else None
    source = ScoreBasedSource(
        params, eps_fn, np.asarray(diffusion.alphas_cumprod), num_classes, sample_shape, seed, info, device,
        uncond, precision, model_size=int(meta["config"]["image_size"]),
    )
    source.model, source.diffusion = model, diffusion  # for benchmarks and plots
    return source


def _uncond_model(checkpoint: Path, device: str) -> UncondModel:
    """The unconditional half of a pair from our diffusion checkpoint (e.g. one made by ``pagstore import
    diffusion`` from an original improved-diffusion file). A model with labels gets its last one, "no class"."""
    from pagstore.improved_diffusion.checkpoint import load_checkpoint
    from pagstore.improved_diffusion.score import predict_eps

    if not checkpoint.is_file():
        raise SourceError(f"source 'sbg': unconditional diffusion checkpoint {checkpoint} not found")
    model, diffusion, meta = load_checkpoint(checkpoint, ema=True)
    model = model.to(device).eval()
    labels = meta.get("num_classes")

    def eps_fn(x_t: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        return predict_eps(model, diffusion, x_t, t, y)

    info = {"checkpoint": str(checkpoint), "step": int(meta.get("step", -1)), "config": meta.get("config", {}),
            "imported_from": meta.get("imported_from")}
    return UncondModel(eps_fn, np.asarray(diffusion.alphas_cumprod), None if labels is None else int(labels) - 1, info)
