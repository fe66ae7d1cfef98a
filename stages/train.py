"""DVC stage ``train@<method>`` / ``train_plain@<method>``: train one classifier method.

Reads ``train.common`` and the method's block (``train.methods.<name>`` for store-backed methods,
``train.plain_methods.<name>`` otherwise) from ``--params``; writes ``<out>/checkpoint.pt``,
``--metrics`` (JSON) and ``--plots`` (per-epoch CSV). Also runs under ``torchrun --nproc_per_node N``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pagstore.errors import user_errors
from pagstore.profiles import load_effective
from pagstore.training.config import TrainSection
from pagstore.training.run import train_method


def run(params: Path, method: str, prepared: Path, stores: Path, out: Path, metrics: Path, plots: Path) -> dict:
    """Load the effective ``train`` section (profile recipe merged), pick ``method`` and train it."""
    section = load_effective(params, "train", TrainSection)
    try:
        spec = section.method(method)
    except KeyError as exc:
        raise SystemExit(f"{params}: {exc.args[0]}") from None
    return train_method(method, spec, section.common, prepared, stores, out, metrics, plots)


@user_errors("train")
def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--params", type=Path, required=True, help="pipeline.yaml")
    p.add_argument("--method", required=True, help="a key of train.methods or train.plain_methods")
    p.add_argument("--prepared", type=Path, required=True, help="directory with train.npz and test.npz")
    p.add_argument("--stores", type=Path, required=True, help="directory holding stores/<source>")
    p.add_argument("--out", type=Path, required=True, help="output directory for checkpoint.pt")
    p.add_argument("--metrics", type=Path, required=True, help="final metrics JSON")
    p.add_argument("--plots", type=Path, required=True, help="per-epoch metrics CSV")
    a = p.parse_args(argv)
    final = run(a.params, a.method, a.prepared, a.stores, a.out, a.metrics, a.plots)
    print(json.dumps({k: final[k] for k in ("method", "test_acc", "train_seconds") if k in final}))


if __name__ == "__main__":
    main()
