"""Reading the raw files users download: existence checks, safe tar access, file digests.

Raw archives come from the internet, so nothing here trusts them: tar members are read straight into
memory (never extracted to disk), members with absolute paths or ``..`` are refused, and every failure of
the underlying libraries is turned into a :class:`RawDataError` naming the archive and member.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import lzma
import tarfile
import zlib
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

import numpy as np

# Corrupt or truncated gzip/tar streams surface as any of these, depending on where the damage is.
_ARCHIVE_ERRORS = (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile, OSError, ValueError)


class RawDataError(ValueError):
    """A raw dataset file is missing, corrupt, truncated or not in the expected format."""


def require_file(path: Path, what: str, url: str) -> Path:
    """Return ``path`` if it is a file, else raise RawDataError saying what to put there and where to get it."""
    if not path.is_file():
        raise RawDataError(
            f"{path}: {what} not found. Download it from {url} and place it at this path "
            f"(the file is read as it is; do not extract it)."
        )
    return path


def require_dir(path: Path, what: str, url: str) -> Path:
    """Return ``path`` if it is a directory, else raise RawDataError naming it and where to get the data."""
    if not path.is_dir():
        raise RawDataError(f"{path}: {what} not found (expected a directory). Get the data from {url}.")
    return path


def _unsafe(name: str) -> bool:
    p = PurePosixPath(name)
    return p.is_absolute() or ".." in p.parts or name.startswith("\\")


def read_tar_members(archive: Path, wanted: Iterable[str]) -> dict[str, bytes]:
    """Read the regular-file members ``wanted`` of a (possibly compressed) tar archive into memory.

    One sequential pass over the archive (streaming mode), stopping once every wanted member is read, so a
    multi-gigabyte member that is not wanted (e.g. STL-10's unlabeled_X.bin) is skipped, never held.

    Raises:
        RawDataError: the archive is corrupt or truncated, a member has an unsafe path, a wanted member is
            not a regular file, or some wanted members are missing.
    """
    wanted = set(wanted)
    found: dict[str, bytes] = {}
    current = "<archive header>"
    try:
        with archive.open("rb") as fh, tarfile.open(fileobj=fh, mode="r|*") as tf:
            for member in tf:
                current = member.name
                if _unsafe(member.name):
                    raise RawDataError(
                        f"{archive}: member '{member.name}' has an absolute path or '..'; refusing the archive"
                    )
                name = member.name.removeprefix("./")
                if name not in wanted:
                    continue
                if not member.isfile():
                    raise RawDataError(f"{archive}: member '{name}' is not a regular file")
                data = tf.extractfile(member).read()  # type: ignore[union-attr]
                if len(data) != member.size:
                    raise RawDataError(f"{archive}: member '{name}' is truncated ({len(data)} of {member.size} bytes)")
                found[name] = data
                if len(found) == len(wanted):
                    break
    except RawDataError:
        raise
    except _ARCHIVE_ERRORS as exc:
        raise RawDataError(
            f"{archive}: corrupt or truncated archive (while reading member '{current}': {exc}); "
            f"download it again"
        ) from None
    missing = sorted(wanted - set(found))
    if missing:
        # tarfile's stream mode ends quietly when the data stops at a header boundary, so a cut-off download
        # would otherwise read as "members missing": check the container's own end markers first.
        if is_truncated(archive):
            raise RawDataError(
                f"{archive}: truncated archive ({archive.stat().st_size} bytes; the data ends before the "
                f"archive's end, members {missing} were not reached); download it again"
            )
        raise RawDataError(f"{archive}: member(s) {missing} not found in the archive (is it the right file?)")
    return found


_OPENERS = {b"\x1f\x8b": gzip.open, b"BZ": bz2.open, b"\xfd7": lzma.open}


def is_truncated(archive: Path, chunk: int = 1 << 22) -> bool:
    """Whether a (gzip / bz2 / xz compressed or plain) tar file stops before its end.

    Compressed: the decompressor reaches end of file before the stream's end marker. Plain tar: the file is
    not whole 512-byte blocks or lacks the two zero blocks that end every tar archive.
    """
    with archive.open("rb") as fh:
        magic = fh.read(2)
    opener = _OPENERS.get(magic)
    if opener is not None:
        try:
            with opener(archive, "rb") as fh:
                while fh.read(chunk):
                    pass
        except EOFError:
            return True
        except (OSError, zlib.error, lzma.LZMAError, ValueError):
            return False  # corrupt rather than cut off; the caller reports it as it is
        return False
    size = archive.stat().st_size
    if size % 512:
        return True
    with archive.open("rb") as fh:
        fh.seek(max(0, size - 1024))
        return fh.read(1024) != bytes(1024)


def file_sha256(path: Path, chunk: int = 1 << 22) -> str:
    """``"sha256:<hex>"`` of a file's bytes, read in chunks (raw archives can be gigabytes)."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return "sha256:" + h.hexdigest()


def text_lines(data: bytes, where: str) -> list[str]:
    """Non-empty, stripped lines of a small UTF-8 text member (class-name lists)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RawDataError(f"{where}: not UTF-8 text ({exc})") from None
    return [line.strip() for line in text.splitlines() if line.strip()]


def check_labels(labels: np.ndarray, num_classes: int, where: str) -> None:
    """Raise RawDataError naming the first record whose label (shape (N,)) is outside [0, num_classes)."""
    labels = np.asarray(labels)
    bad = np.flatnonzero((labels < 0) | (labels >= num_classes))
    if bad.size:
        i = int(bad[0])
        raise RawDataError(f"{where}: label {int(labels[i])} of record {i} is outside [0, {num_classes})")
