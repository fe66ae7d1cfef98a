"""Peak memory of ``pagstore import pag-rob`` on a fake official gradient set, beside the file's size and
beside a plain ``torch.load`` of the same file (what a naive importer would hold).

The fake has the official layout (float32 (N, 11, 3, 32, 32) + int64 (N,), images in [-1, 1]) and rows in a
shuffled order of a prepared split of N random CIFAR-sized images. Each side runs in its own process under
``/usr/bin/time -v``; its "Maximum resident set size" is the figure. The official SBG file (N = 50,000) is
about 6.8 GB: the import streams one store shard of rows at a time, so its peak should not grow with N.

    python benchmarks/bench_import_memory.py [--n 10000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pagstore.data.prepared import PreparedSplit  # noqa: E402


def make_fake(root: Path, n: int) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    names = tuple(f"class_{i}" for i in range(10))
    images = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
    labels = rng.integers(0, 10, n).astype(np.int64)
    (root / "data/prepared").mkdir(parents=True)
    PreparedSplit(images, labels, names, {"dataset": "cifar10"}).save(root / "data/prepared/train.npz")
    order = rng.permutation(n)
    data = torch.empty(n, 11, 3, 32, 32)
    data[:, 0] = (torch.from_numpy(images[order]).float() / 255 - 0.5) / 0.5
    data[:, 1:] = torch.randn(n, 10, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    torch.save(data, root / "c10_sbg_data.pt")
    torch.save(torch.from_numpy(labels[order]), root / "c10_sbg_label.pt")
    return root / "c10_sbg_data.pt", root / "c10_sbg_label.pt"


def peak_rss(cmd: list[str], cwd: Path) -> tuple[float, float]:
    """(max resident set size in MiB, wall seconds) of ``cmd`` run under /usr/bin/time -v."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    t0 = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-v", *cmd], cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}")
    kib = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr).group(1))
    return kib / 1024, wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--keep", type=Path, default=None, help="work here and keep the files")
    args = ap.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="bench_import_"))
    data, labels = make_fake(root, args.n)
    size = data.stat().st_size / 2**20
    py = sys.executable
    imp, t_imp = peak_rss([py, "-m", "pagstore.cli", "import", "pag-rob", str(data), str(labels),
                           "--prepared", "data/prepared", "--out", "stores/sbg"], root)
    naive, t_naive = peak_rss([py, "-c", f"import torch; t = torch.load({str(data)!r}, weights_only=True); "
                                         "print(float(t[:, 0].min()))"], root)
    print(f"rows {args.n}, data file {size:.0f} MiB")
    print(f"pagstore import pag-rob: peak RSS {imp:.0f} MiB ({t_imp:.1f} s wall, includes export + verify)")
    print(f"plain torch.load:        peak RSS {naive:.0f} MiB ({t_naive:.1f} s wall)")
    print(f"ratio import / plain load: {imp / naive:.3f}; import / file size: {imp / size:.3f}")
    if args.keep is None:
        import shutil

        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
