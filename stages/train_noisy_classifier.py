"""Stage ``train_noisy_classifier``: a classifier on noised images x_t at the SBG t (source ``nac``).

Reads ``noisy_classifier`` of ``--params``; writes ``--checkpoint``, ``--details`` (noisy test accuracy, train
wall and CPU-seconds, t: for the cost comparison with diffusion training + SBG distillation) and ``--metrics``
(the accuracy in percent and the train seconds; the full record when ``--details`` is not given).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from pagstore.errors import user_errors

from pagstore.atomic import write_json
from pagstore.config import load_section
from pagstore.data.prepared import load_split
from pagstore.metrics_files import lean_noisy_classifier
from pagstore.noisy_classifier import NoisyClassifierParams, train_noisy_classifier


def run(params: Path, prepared: Path, checkpoint: Path, metrics: Path, details: Path | None = None) -> dict:
    """Train and write the checkpoint and metrics; returns the full record."""
    import torch

    cfg = load_section(params, "noisy_classifier", NoisyClassifierParams)
    cpu0 = time.process_time()
    out = train_noisy_classifier(load_split(prepared / "train.npz"), load_split(prepared / "test.npz"), cfg,
                                 checkpoint)
    out["cpu_seconds"] = time.process_time() - cpu0
    out["torch_threads"] = torch.get_num_threads()
    if details is not None:
        write_json(details, out)
    write_json(metrics, lean_noisy_classifier(out) if details is not None else out)
    return out


@user_errors("train_noisy_classifier")
def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--params", type=Path, required=True)
    p.add_argument("--prepared", type=Path, required=True)
    p.add_argument("--checkpoint", type=Path, required=True)
    p.add_argument("--metrics", type=Path, required=True, help="what DVC shows: accuracy and seconds")
    p.add_argument("--details", type=Path, default=None, help="the full record (else it goes to --metrics)")
    a = p.parse_args(argv)
    print(json.dumps(run(a.params, a.prepared, a.checkpoint, a.metrics, a.details)))


if __name__ == "__main__":
    main()
