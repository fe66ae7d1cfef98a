"""A stand-in for train_diffusion in the cache tests: a persisted checkpoint, resumed and saved atomically.

Reads ``ckpt.bin`` if it is there (as a resumed training does), then writes a new version of the same
size through ``pagstore.atomic.atomic_path`` (write a temporary file, ``os.replace`` it into place).
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

from pagstore.atomic import atomic_path

SIZE = 4 << 20  # 4 MiB: big enough that a duplicate shows in the byte count


def main(path: str, version: str) -> None:
    ckpt = Path(path)
    previous = ckpt.read_bytes() if ckpt.exists() else b""
    seed = hashlib.sha256(previous[:64] + version.encode()).digest()
    data = (seed * (SIZE // len(seed) + 1))[:SIZE]
    with atomic_path(ckpt, suffix=".tmp") as tmp:
        tmp.write_bytes(data)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
