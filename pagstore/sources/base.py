"""The gradient-source contract shared by the heuristics (OI, CM, NN) and SBG.

A source maps a batch of samples in model space (B, *S) with their labels and dataset indices to C
"ground-truth" input-gradients (B, C, *S) float32, one per target class, and describes itself with a
plain dict that the store records in its spec (so a store says exactly what made it).
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from typing import Any

import numpy as np
import torch

ArrayLike = np.ndarray | torch.Tensor


class SourceError(ValueError):
    """A gradient source was given impossible parameters or inputs."""


class GradientSource(ABC):
    """Base class: subclasses implement :meth:`_compute` on float32 tensors and :meth:`describe`.

    Attributes:
        name: the registry name ("oi", "cm", "nn", "sbg").
        num_classes: C, the number of target classes (the second axis of the output).
        sample_shape: S, the shape of one sample.
    """

    name: str = ""

    def __init__(self, num_classes: int, sample_shape: tuple[int, ...]) -> None:
        self.num_classes = int(num_classes)
        self.sample_shape = tuple(int(s) for s in sample_shape)

    def compute(self, x: ArrayLike, labels: ArrayLike, indices: ArrayLike,
                classes: ArrayLike | None = None) -> ArrayLike:
        """Gradients for every target class, or for the K ``classes`` of each sample.

        Args:
            x: float32 (B, *S) samples in model space ([0, 1] images, or raw vectors).
            labels: int64 (B,) true labels (sources may ignore them).
            indices: int64 (B,) dataset indices of the samples (fixes SBG noise, NN self-exclusion).
            classes: int64 (B, K) target classes per sample (None: all C in class order).

        Returns:
            float32 (B, C, *S) gradients (or (B, K, *S) for ``classes``), a torch tensor if ``x`` is one,
            else a numpy array.
        """
        as_torch = isinstance(x, torch.Tensor)
        xt = torch.as_tensor(np.asarray(x) if not as_torch else x, dtype=torch.float32)
        lb = torch.as_tensor(np.asarray(labels) if not isinstance(labels, torch.Tensor) else labels).long()
        ix = torch.as_tensor(np.asarray(indices) if not isinstance(indices, torch.Tensor) else indices).long()
        if tuple(xt.shape[1:]) != self.sample_shape:
            raise SourceError(
                f"source '{self.name}': samples of shape {tuple(xt.shape[1:])}, expected {self.sample_shape}"
            )
        if lb.shape != (xt.shape[0],) or ix.shape != (xt.shape[0],):
            raise SourceError(
                f"source '{self.name}': labels {tuple(lb.shape)} and indices {tuple(ix.shape)} must both be "
                f"({xt.shape[0]},) for a batch of {xt.shape[0]} samples"
            )
        cl = None
        if classes is not None:
            cl = torch.as_tensor(np.asarray(classes) if not isinstance(classes, torch.Tensor) else classes).long()
            if cl.dim() != 2 or cl.shape[0] != xt.shape[0] or cl.numel() and not (
                    0 <= int(cl.min()) and int(cl.max()) < self.num_classes):
                raise SourceError(f"source '{self.name}': classes must be (B={xt.shape[0]}, K) ids in "
                                  f"[0, {self.num_classes}), got {tuple(cl.shape)}")
        with torch.no_grad():
            if cl is None:
                grads = self._compute(xt.cpu(), lb.cpu(), ix.cpu()).float()
            else:
                grads = self._compute_classes(xt.cpu(), lb.cpu(), ix.cpu(), cl.cpu()).float()
        return grads if as_torch else grads.numpy()

    def _compute_classes(self, x: torch.Tensor, labels: torch.Tensor, indices: torch.Tensor,
                         classes: torch.Tensor) -> torch.Tensor:
        """(B, *S), (B,), (B,), (B, K) -> (B, K, *S). Default: all C, then the K asked (cheap heuristics);
        SBG overrides it to evaluate only the K classes."""
        grads = self._compute(x, labels, indices)
        return grads.gather(1, classes.view(*classes.shape, *([1] * (grads.dim() - 2))).expand(
            *classes.shape, *grads.shape[2:]))

    @abstractmethod
    def _compute(self, x: torch.Tensor, labels: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        """(B, *S) float32, (B,), (B,) -> (B, C, *S) float32."""

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """Plain JSON-able dict: name, parameters and anything derived that the store should record."""


def array_digest(*arrays: np.ndarray | torch.Tensor) -> str:
    """sha256 over dtypes, shapes and bytes, as ``"sha256:<hex>"`` (records derived tensors compactly)."""
    h = hashlib.sha256()
    for arr in arrays:
        a = arr.detach().cpu().numpy() if isinstance(arr, torch.Tensor) else np.asarray(arr)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return "sha256:" + h.hexdigest()
