"""Per-unit costs of the evidence experiment on digits (seconds, wall and CPU), to budget `make evidence`.

Measures what can be measured without the diffusion model (5 min): prepare; training of vanilla, at-l2
and gradnorm with the default recipe; the noise-aware classifier and its store; AutoAttack L2 on the
first BENCH_IMAGES (default 50) images of the evidence subset of vanilla and at-l2 with the number of images surviving APGD-CE; the
attack-strength checks on at-l2. Store-backed PAG training (pag-sbg ~33 s) and SBG distillation (~30 s)
come from the committed metrics/dvc.lock. Run: python benchmarks/bench_evidence_units.py (~3 min).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]


def timed(fn):
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, {"wall_s": round(time.perf_counter() - t0, 2), "cpu_s": round(time.process_time() - c0, 2)}


class Log(dict):
    """Prints every measurement as it lands (a shared, loaded machine may stop the run early)."""

    def __setitem__(self, key, value):
        super().__setitem__(key, value)
        print(json.dumps({key: value}), flush=True)


def main() -> None:
    from pagstore.config import load_section
    from pagstore.data.prepared import load_split
    from pagstore.evaluation.attack_checks import attack_strength_checks
    from pagstore.evaluation.autoattack import run_autoattack
    from pagstore.noisy_classifier import NoisyClassifierParams, train_noisy_classifier
    from pagstore.training.checkpoint import load_classifier
    from pagstore.training.config import TrainSection
    from pagstore.training.objectives import ObjectiveSpec
    from pagstore.training.run import train_method
    from stages.distill import run_distill
    from stages.prepare import prepare

    torch.set_num_threads(2)
    params = REPO / "pipeline.yaml"
    common = load_section(params, "train", TrainSection).common
    out: dict = Log(torch_threads=torch.get_num_threads())
    n_images = int(os.environ.get("BENCH_IMAGES", "50"))  # AA cost scales with the images surviving APGD-CE
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        _, out["prepare"] = timed(lambda: prepare(params, tmp / "prepared"))
        ckpts = {}
        for name, spec in {"vanilla": ObjectiveSpec(objective="ce"),
                           "at-l2": ObjectiveSpec(objective="at", norm="l2", eps=1.0),
                           "gradnorm": ObjectiveSpec(objective="gradnorm", lam=0.03)}.items():
            _, out[f"train {name}"] = timed(lambda: train_method(
                name, spec, common, tmp / "prepared", tmp / "stores", tmp / name, tmp / f"{name}.json",
                tmp / f"{name}.csv"))
            ckpts[name] = tmp / name / "checkpoint.pt"
        train, test = load_split(tmp / "prepared/train.npz"), load_split(tmp / "prepared/test.npz")
        nc = load_section(params, "noisy_classifier", NoisyClassifierParams)
        m, out["train noisy classifier"] = timed(lambda: train_noisy_classifier(train, test, nc, tmp / "nc.pt"))
        out["noisy classifier test accuracy"] = m["noisy_test_accuracy"]
        _, out["distill nac"] = timed(lambda: run_distill(params, "nac", tmp / "prepared", tmp / "stores/nac",
                                                          classifier=tmp / "nc.pt"))
        import numpy as np

        idx = np.sort(np.random.default_rng(0).permutation(len(test))[:n_images])
        x, y = torch.from_numpy(test.as_float(idx)), torch.from_numpy(test.labels[idx])
        for name in ("vanilla", "at-l2"):
            model, _ = load_classifier(ckpts[name])
            res, t = timed(lambda: run_autoattack(model, x, y, norm="L2", eps=1.0))
            out[f"AA L2 {n_images} images {name}"] = {**t, "after_attack": res.after_attack,
                                               "clean": res.clean_accuracy}
        model, _ = load_classifier(ckpts["at-l2"])
        with torch.no_grad():
            flags = (model(res.x_adv).argmax(1) == y) & (model(x).argmax(1) == y)
        chk, out["attack checks at-l2 (full settings)"] = timed(
            lambda: attack_strength_checks(model, x, y, flags, norm="L2", eps=1.0))
        out["attack checks result"] = {k: round(v["robust_accuracy"], 1) for k, v in chk["attacks"].items()}
    print(json.dumps(dict(out), indent=1))


if __name__ == "__main__":
    main()
