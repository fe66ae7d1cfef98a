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

    def compute(self, x: ArrayLike, labels: ArrayLike, indices: ArrayLike) -> ArrayLike:
        """Gradients for every target class.

        Args:
            x: float32 (B, *S) samples in model space ([0, 1] images, or raw vectors).
            labels: int64 (B,) true labels (sources may ignore them).
            indices: int64 (B,) dataset indices of the samples (fixes SBG noise, NN self-exclusion).

        Returns:
            float32 (B, C, *S) gradients, a torch tensor if ``x`` is one, else a numpy array.
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
        with torch.no_grad():
            grads = self._compute(xt.cpu(), lb.cpu(), ix.cpu()).float()
        return grads if as_torch else grads.numpy()

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
