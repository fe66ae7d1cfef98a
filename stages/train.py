"""DVC stage ``train@<method>`` / ``train_plain@<method>``: train one classifier method.

Reads ``train.common`` and the method's block (``train.methods.<name>`` for store-backed methods,
``train.plain_methods.<name>`` otherwise) from ``--params``; writes ``<out>/checkpoint.pt``,
``--metrics`` (JSON of the scalars to compare; the full record in ``--details``) and ``--plots``
(per-epoch CSV). Also runs under ``torchrun --nproc_per_node N``.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from pagstore.atomic import write_json
from pagstore.errors import user_errors
from pagstore.metrics_files import lean_train
from pagstore.profiles import load_effective
from pagstore.training.config import TrainSection
from pagstore.training.run import train_method


def run(params: Path, method: str, prepared: Path, stores: Path, out: Path, metrics: Path, plots: Path,
        details: Path | None = None) -> dict:
    """Load the effective ``train`` section (profile recipe merged), pick ``method`` and train it.

    With ``details`` the full final record goes there and ``metrics`` holds only the scalars to compare.
    """
    section = load_effective(params, "train", TrainSection)
    try:
        spec = section.method(method)
    except KeyError as exc:
        raise SystemExit(f"{params}: {exc.args[0]}") from None
    final = train_method(method, spec, section.common, prepared, stores, out, details or metrics, plots)
    if details is not None and int(os.environ.get("RANK", "0")) == 0:  # under torchrun only rank 0 writes
        write_json(metrics, lean_train(final))
    return final


@user_errors("train")
def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--params", type=Path, required=True, help="pipeline.yaml")
    p.add_argument("--method", required=True, help="a key of train.methods or train.plain_methods")
    p.add_argument("--prepared", type=Path, required=True, help="directory with train.npz and test.npz")
    p.add_argument("--stores", type=Path, required=True, help="directory holding stores/<source>")
    p.add_argument("--out", type=Path, required=True, help="output directory for checkpoint.pt")
    p.add_argument("--metrics", type=Path, required=True, help="final metrics JSON (the scalars to compare)")
    p.add_argument("--details", type=Path, default=None, help="full final record (else it goes to --metrics)")
    p.add_argument("--plots", type=Path, required=True, help="per-epoch metrics CSV")
    a = p.parse_args(argv)
    final = run(a.params, a.method, a.prepared, a.stores, a.out, a.metrics, a.plots, a.details)
    print(json.dumps({k: final[k] for k in ("method", "test_acc", "train_seconds") if k in final}))


if __name__ == "__main__":
    main()
