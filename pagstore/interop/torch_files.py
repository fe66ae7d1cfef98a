"""Reading foreign ``torch.save`` files safely and in bounded memory.

Every file is opened with ``torch.load(weights_only=True, mmap=True)``: the weights-only unpickler refuses
any pickle that would build arbitrary objects (a hostile file never runs code), and ``mmap`` reads only
metadata until data is touched. Large tensors are then read chunk by chunk straight from the file at their
storage's byte offset (``TensorChunks``), not through the mmap: pages of a mapped file count towards the
process's resident memory until the kernel reclaims them, so reading a 6.8 GB tensor through the mapping
would show ~6.8 GB resident even though each chunk is dropped after use.
"""

from __future__ import annotations

import hashlib
import os
import struct
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pagstore.interop import InteropError

_LOCAL_HEADER = struct.Struct("<4s22xHH")  # signature, ..., file name length, extra field length


def sha256_file(path: str | Path, block: int = 1 << 24) -> str:
    """``"sha256:<hex>"`` of a file, read in 16 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(block):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def safe_load(path: str | Path, what: str) -> Any:
    """``torch.load(path, weights_only=True, mmap=True, map_location="cpu")`` with one-line errors.

    Raises:
        InteropError: naming ``path`` for a missing file, a pickle payload the weights-only unpickler refuses,
            or a file that is not a zip-format ``torch.save`` file (mmap needs the zip format).
    """
    path = Path(path)
    if not path.is_file():
        raise InteropError(f"{path}: {what} not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:  # UnpicklingError for hostile payloads, RuntimeError for legacy/corrupt files
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise InteropError(f"{path}: not a safe torch.save file of {what} ({type(exc).__name__}: {first})") from None


def load_plain_tensor(path: str | Path, what: str, ndim: int, dtypes: tuple[torch.dtype, ...]) -> torch.Tensor:
    """A file that holds exactly one tensor of ``ndim`` dimensions and one of ``dtypes``; anything else refused."""
    obj = safe_load(path, what)
    if not isinstance(obj, torch.Tensor):
        raise InteropError(f"{path}: expected a plain tensor ({what}), found {type(obj).__name__}")
    if obj.ndim != ndim or obj.dtype not in dtypes:
        names = ", ".join(str(d).removeprefix("torch.") for d in dtypes)
        raise InteropError(f"{path}: expected a {ndim}-d tensor of {names} ({what}), found "
                           f"{str(obj.dtype).removeprefix('torch.')} of shape {tuple(obj.shape)}")
    return obj


class TensorChunks:
    """Row chunks of a contiguous tensor saved with ``torch.save``, read from the file at the storage offset.

    Args:
        path: the file ``tensor`` was loaded from (with :func:`load_plain_tensor`).
        tensor: its mmap-loaded tensor (only metadata is used, plus one row as a check of the offset).
    """

    def __init__(self, path: str | Path, tensor: torch.Tensor) -> None:
        self.path = Path(path)
        self.shape = tuple(tensor.shape)
        self.dtype = np.dtype(str(tensor.dtype).removeprefix("torch."))
        self.row_bytes = int(np.prod(self.shape[1:], dtype=np.int64)) * self.dtype.itemsize
        if not tensor.is_contiguous():
            raise InteropError(f"{path}: the tensor is not stored contiguously (strides {tensor.stride()})")
        self.offset = self._data_offset(tensor)
        if self.shape[0] and not np.array_equal(self.rows(0, 1)[0], tensor[0].numpy()):
            raise InteropError(f"{path}: could not locate the tensor's data in the file")

    def _data_offset(self, tensor: torch.Tensor) -> int:
        """Byte offset in the file of ``tensor[0]``: the zip entry ``<archive>/data/<key>`` of its storage."""
        storage = tensor.untyped_storage()
        with zipfile.ZipFile(self.path) as zf:
            entries = [i for i in zf.infolist() if "/data/" in i.filename and not i.filename.endswith("/")]
            sized = [i for i in entries if i.file_size == storage.nbytes()]
            if len(sized) != 1 or sized[0].compress_type != zipfile.ZIP_STORED:
                raise InteropError(f"{self.path}: expected one uncompressed storage of {storage.nbytes()} bytes, "
                                   f"found {len(sized)} (a tensor saved as a view of a larger one?)")
            info = sized[0]
        with open(self.path, "rb") as f:
            f.seek(info.header_offset)
            sig, name_len, extra_len = _LOCAL_HEADER.unpack(f.read(_LOCAL_HEADER.size))
        if sig != b"PK\x03\x04":
            raise InteropError(f"{self.path}: corrupt zip header of the tensor data")
        start = info.header_offset + _LOCAL_HEADER.size + name_len + extra_len
        return start + tensor.storage_offset() * self.dtype.itemsize

    def rows(self, start: int, stop: int) -> np.ndarray:
        """Rows [start, stop) as a fresh numpy array (n, *shape[1:]); the file's page cache is dropped after."""
        n = stop - start
        with open(self.path, "rb") as f:
            off = self.offset + start * self.row_bytes
            f.seek(off)
            buf = np.empty((n, *self.shape[1:]), dtype=self.dtype)
            got = f.readinto(memoryview(buf).cast("B"))
            if hasattr(os, "posix_fadvise"):  # a one-pass read: do not let it evict everyone else's cache
                os.posix_fadvise(f.fileno(), off, n * self.row_bytes, os.POSIX_FADV_DONTNEED)
        if got != n * self.row_bytes:
            raise InteropError(f"{self.path}: file truncated at row {start + got // max(1, self.row_bytes)}")
        return buf

    def firsts(self, start: int, stop: int) -> np.ndarray:
        """``tensor[start:stop, 0]`` (n, *shape[2:]) read row by row: only 1 / shape[1] of the bytes are read,
        e.g. the images of a gradient set without their gradients."""
        item = self.row_bytes // self.shape[1]
        out = np.empty((stop - start, *self.shape[2:]), dtype=self.dtype)
        view = memoryview(out.reshape(stop - start, -1)).cast("B")
        with open(self.path, "rb") as f:
            for r in range(stop - start):
                f.seek(self.offset + (start + r) * self.row_bytes)
                if f.readinto(view[r * item:(r + 1) * item]) != item:
                    raise InteropError(f"{self.path}: file truncated at row {start + r}")
        return out
