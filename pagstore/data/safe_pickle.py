"""A restricted unpickler for the pickled batches of the CIFAR "python version" archives.

Unpickling can call any importable function, so a downloaded pickle is code, not data. The CIFAR batches
only ever need numpy's array reconstruction (``_reconstruct``, ``ndarray``, ``dtype``); plain lists,
dicts, ints and bytes need no global lookup at all. Every other global is refused.
"""

from __future__ import annotations

import io
import pickle
from typing import Any

import numpy as np

from pagstore.data.raw import RawDataError

try:  # numpy >= 2 moved the implementation; both spellings appear in real files.
    from numpy._core.multiarray import _reconstruct
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core.multiarray import _reconstruct  # type: ignore[no-redef]

_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler whose ``find_class`` admits only numpy array reconstruction."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing global '{module}.{name}': only numpy array reconstruction is allowed"
            ) from None


def restricted_loads(data: bytes, where: str, hint: str = "") -> Any:
    """Unpickle ``data`` (a Python-2 era pickle: ``str`` loads as ``bytes``) with :class:`RestrictedUnpickler`.

    ``hint`` is appended to the message when the unpickler refuses the pickle (e.g. the non-pickle format
    the same data comes in).

    Raises:
        RawDataError: naming ``where``, for forbidden globals or malformed/truncated data.
    """
    try:
        return RestrictedUnpickler(io.BytesIO(data), encoding="bytes").load()
    except pickle.UnpicklingError as exc:
        refused = str(exc).startswith("refusing global")
        suffix = f"; {hint}" if hint and refused else ""
        raise RawDataError(f"{where}: unsafe or malformed pickle ({exc}){suffix}") from None
    except (EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError, MemoryError) as exc:
        raise RawDataError(f"{where}: malformed or truncated pickle ({type(exc).__name__}: {exc})") from None
