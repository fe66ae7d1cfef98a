"""The evidence experiment end to end on a tiny project, through the documented `make evidence` variant."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import yaml

from pagstore.noisy_classifier import NoisyClassifierParams, train_noisy_classifier
from stages.distill import run_distill
from tests.helpers.doc_commands import REPO, run_documented
from tests.helpers.dvc_project import deep_merge
from tests.sources.sources_fixtures import tiny_checkpoint
from tests.stages.report_fixtures import TOY
from tests.training.train_fixtures import tiny_split

TINY_PIPELINE = {
    "train": {"common": {"model": "small-cnn", "model_kwargs": {"width": 4}, "epochs": 1, "batch_size": 8,
                         "milestones": [1], "crop_pad": 1, "eval_samples": 8, "align_samples": 8}},
    "distill": {"common": {"samples_per_shard": 8, "batch_size": 4, "workers": 1},
                "sources": {"sbg": {"t": 20, "forward_batch": 2}, "nac": {"t": 20}},
                "test": {"num_test": 8}, "plots": {"num_images": 2, "t_sweep": [10]}},
    "noisy_classifier": {"t": 20, "diffusion_steps": 50, "model_kwargs": {"width": 4}, "epochs": 2,
                         "batch_size": 8},
}


def make_tiny_project(root: Path) -> Path:
    """Upstream artefacts of the default pipeline in their real formats, made small: prepared split,
    a (random) tiny diffusion checkpoint, SBG / CM / SBG-test / nac stores, toy metrics."""
    params = deep_merge(yaml.safe_load((REPO / "pipeline.yaml").read_text()), TINY_PIPELINE)
    (root / "pipeline.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    # 4 classes: AutoAttack's targeted DLR loss needs at least 4
    train, test = tiny_split(32, classes=4, size=8, seed=0), tiny_split(16, classes=4, size=8, seed=1, split="test")
    prepared = root / "data/prepared"
    train.save(prepared / "train.npz")
    test.save(prepared / "test.npz")
    diffusion = tiny_checkpoint(root / "models/diffusion/checkpoint.pt", train)
    pp = root / "pipeline.yaml"
    run_distill(pp, "sbg", prepared, root / "stores/sbg", diffusion)
    run_distill(pp, "cm", prepared, root / "stores/cm")
    run_distill(pp, "sbg", prepared, root / "stores/sbg-test", diffusion, split_name="test")
    nc = NoisyClassifierParams(**{**params["noisy_classifier"]})
    metrics = train_noisy_classifier(train, test, nc, root / "models/noisy_classifier/checkpoint.pt")
    (root / "metrics").mkdir(parents=True, exist_ok=True)
    (root / "metrics/noisy_classifier.json").write_text(json.dumps({**metrics, "cpu_seconds": 1.0}))
    run_distill(pp, "nac", prepared, root / "stores/nac", classifier=root / "models/noisy_classifier/checkpoint.pt")
    (root / "metrics/toy.details.json").write_text(json.dumps(TOY))
    # `make evidence` needs the Makefile, the params file and an installed venv: link the test's own.
    shutil.copy2(REPO / "Makefile", root / "Makefile")
    shutil.copy2(REPO / "pyproject.toml", root / "pyproject.toml")
    (root / "evidence").mkdir()
    shutil.copy2(REPO / "evidence/tiny.yaml", root / "evidence/tiny.yaml")
    venv = Path(sys.prefix)
    (root / ".venv").mkdir()
    for part in ("bin", "lib", "lib64", "include"):  # a venv is found from pyvenv.cfg beside bin/
        if (venv / part).exists():
            os.symlink(venv / part, root / ".venv" / part)
    shutil.copy2(venv / "pyvenv.cfg", root / ".venv/pyvenv.cfg")
    (root / ".venv/.installed").touch()
    return root


def test_make_evidence_tiny_end_to_end(tmp_path: Path) -> None:
    root = make_tiny_project(tmp_path)
    run_documented("make evidence EVIDENCE_PARAMS=evidence/tiny.yaml", cwd=root)
    md = (root / "reports/evidence.md").read_text()
    results = json.loads((root / "evidence/run/results.json").read_text())
    methods = set(results["methods"])
    assert methods == {"vanilla", "pag-sbg", "pag-nac", "pag-cm", "at-l2", "at-l2-pag-sbg", "pag-random",
                       "pag-shuffled", "gradnorm"}
    for m in methods:  # every method: 2 seeds x the same 12 images
        seeds = results["methods"][m]["seeds"]
        assert len(seeds) == 2 and all(len(s["aa"]["L2"]) == 12 for s in seeds.values())
    assert results["gradnorm_calibration"]["lam"] in (0.01, 0.1)
    assert [r["t"] for r in results["sweeps"]["sbg_t"]["rows"]] == [10, 20]
    assert results["attack_checks"]["pag"] in ("pag-sbg", "pag-nac", "pag-cm")
    assert "Commit:" in md and "Measured runtime:" in md
    # one verdict per claim, each either an interval-backed "beats" or "not distinguishable"
    claims = [line for line in md.splitlines() if line.startswith("- **") and "->" in line]
    verdict = next(line for line in md.splitlines() if line.startswith("- **Alignment correlates with robustness**: "))
    # every metric is named once, as holding or as not shown (with 12 images, either may happen)
    assert verdict.count("holds on digits for ") + verdict.count("holds for no metric") == 1
    assert all(label in verdict for label in ("SBG cos", "alpha_dx", "on-manifold", "Etmann"))
    assert len(claims) == 7
    assert all((" beats " in c) or ("not distinguishable" in c) for c in claims)
    for png in ("lambda_pag-sbg.png", "lambda_pag-cm.png", "sbg_t.png"):
        assert (root / "reports/evidence" / png).read_bytes()[:4] == b"\x89PNG"
    assert "| model | AutoAttack | attack |" in md and "transfer from at-l2" in md
    assert "PGD (upper bound)" in md and "Spearman" in md and "- **No attack finds more than 2 points below" in md
    # a rerun reuses every unit and rewrites the same report numbers, even without the uncommitted
    # checkpoints, stores and adversarial examples (what a fresh clone of the committed results has)
    for big in ("models", "stores", "adv"):
        shutil.rmtree(root / "evidence/run" / big)
    run_documented("make evidence EVIDENCE_PARAMS=evidence/tiny.yaml", cwd=root)
    again = json.loads((root / "evidence/run/results.json").read_text())
    assert again["runtime"]["units_run_now"] == 0
    assert again["methods"] == results["methods"]
    assert (root / "reports/evidence.md").read_text().split("## Accuracy")[1] == md.split("## Accuracy")[1]
