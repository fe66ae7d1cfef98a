"""pagstore.evaluation.model_eval used as a library: one model in memory, or a checkpoint, no stage."""

from __future__ import annotations

import json

import pytest
import torch

from pagstore.config import from_dict
from pagstore.data.profile import EvalBudget
from tests.evaluation.test_evaluate_stage import TINY_EVAL, make_project, run_main
from tests.evaluation.tiny import make_split, tiny_cnn

BUDGET = {"eps_l2": 3.0, "eps_linf": 0.5, "large_eps_l2": 4.0, "large_eps_linf": 0.6}


def test_evaluate_model_in_memory_without_autoattack(tmp_path):
    from pagstore.evaluation import EvaluateParams, evaluate_model, select_images

    params = from_dict(EvaluateParams, {**TINY_EVAL, "autoattack": False})
    split = make_split(12, seed=3)
    model = tiny_cnn(seed=1)
    out = evaluate_model(model, split, params, from_dict(EvalBudget, BUDGET), tmp_path, title="tiny")
    xs, ys = select_images(split, 8, seed=0)  # the images evaluate_model picks (num_images 8, seed 0)
    with torch.no_grad():
        expected = (model(xs).argmax(1) == ys).float().mean().item()
    assert out["num_images"] == 8 and out["clean_accuracy"] == pytest.approx(expected)
    assert out["robust_accuracy"] == {} and out["autoattack"] == {}
    assert set(out["corruptions"]) == {"contrast_reduction", "gaussian_blur"}
    assert "sbg_test" not in out and "etmann_mean" in out["alignment"]
    assert out["pictures"]["eps"] == pytest.approx(4.0)  # eps_factor 1.0 x large_eps_l2
    assert set(out["timing_s"]) == {"autoattack", "sweep", "corruptions", "pictures", "alignment"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sweep.csv", "sweep.png", "targeted.png"]


def test_select_images_is_seeded_and_refuses_vectors():
    from pagstore.evaluation import select_images

    split = make_split(16, seed=1)
    x1, y1 = select_images(split, 5, seed=0)
    x2, y2 = select_images(split, 5, seed=0)
    x3, _ = select_images(split, 5, seed=1)
    assert x1.shape == (5, 1, 8, 8) and torch.equal(x1, x2) and torch.equal(y1, y2) and not torch.equal(x1, x3)
    assert len(select_images(split, None, seed=0)[1]) == 16
    from tests.sources.sources_fixtures import tiny_vectors

    with pytest.raises(ValueError, match="pixel space 'unit'"):
        select_images(tiny_vectors(), 3, seed=0)


def test_evaluate_checkpoint_is_what_the_stage_writes(tmp_path):
    """The stage is a wrapper: the library's record equals the stage's metrics file, timings aside."""
    from pagstore.config import load_section
    from pagstore.evaluation import EvaluateParams, evaluate_checkpoint

    root = make_project(tmp_path)
    written = run_main(root)
    params = load_section(root / "pipeline.yaml", "evaluate", EvaluateParams)
    record = evaluate_checkpoint(root / "ckpt.pt", root / "prepared" / "test.npz", params,
                                 from_dict(EvalBudget, BUDGET), tmp_path / "lib-plots", method="vanilla",
                                 profile="tiny", sbg_test=root / "sbg-test", state_dir=tmp_path / "lib-state")
    record = json.loads(json.dumps(record))  # tuples -> lists, as in the JSON file
    for r in (record, written):
        r.pop("timing_s")
    assert record == written
    assert record["checkpoint"]["sha256"].startswith("sha256:") and "history" not in record["checkpoint"]["meta"]
    assert record["sbg_test"]["matches_test_split"] is True


def test_public_names_load_lazily():
    import subprocess
    import sys

    code = ("import sys, pagstore.evaluation as ev\n"
            "assert 'torch' not in sys.modules\n"
            "from pagstore.evaluation import build_report, evaluate_checkpoint, ReportParams\n"
            "assert callable(build_report) and callable(evaluate_checkpoint)\n"
            "try:\n    ev.no_such_name\nexcept AttributeError as e:\n    assert 'no_such_name' in str(e)\n"
            "else:\n    raise SystemExit('no AttributeError')\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_manifold_metrics_join_the_alignment_when_enabled(tmp_path):
    """evaluate.manifold adds the other two papers' metrics, computed against the train split."""
    from pagstore.evaluation import EvaluateParams, evaluate_model
    from pagstore.evaluation.manifold import extra_alignment_metrics

    raw = {**TINY_EVAL, "autoattack": False, "manifold": {"k": 6, "dim": 2}}
    params = from_dict(EvaluateParams, raw)
    split, train = make_split(12, seed=3), make_split(24, seed=4)
    model = tiny_cnn(seed=1)
    out = evaluate_model(model, split, params, from_dict(EvalBudget, BUDGET), tmp_path, train_split=train)
    from pagstore.evaluation import select_images

    xs, ys = select_images(split, params.num_images, params.seed)
    ref = extra_alignment_metrics(model, xs[: params.alignment_images], ys[: params.alignment_images],
                                  torch.from_numpy(train.as_float()), torch.from_numpy(train.labels), k=6, dim=2)
    for key in ("closest_class_cos_mean", "on_manifold_fraction_mean"):
        assert out["alignment"][key] == pytest.approx(ref[key])
    off = evaluate_model(model, split, from_dict(EvaluateParams, {**raw, "manifold": None}),
                         from_dict(EvalBudget, BUDGET), tmp_path / "off", train_split=train)
    assert "on_manifold_fraction_mean" not in off["alignment"]
    with pytest.raises(Exception, match="manifold"):
        from_dict(EvaluateParams, {**raw, "manifold": {"k": 2, "dim": 3}})
