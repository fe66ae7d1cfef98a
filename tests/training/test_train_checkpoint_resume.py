"""Checkpoints load with weights_only and describe themselves; an interrupted run resumes at its saved
epoch and ends where an uninterrupted run ends."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from train_fixtures import write_prepared

from pagstore.training.checkpoint import CheckpointError, load_checkpoint, load_classifier
from pagstore.training.config import TrainCommon
from pagstore.training.objectives import ObjectiveSpec
from pagstore.training.run import train_method

COMMON = TrainCommon(model="small-cnn", model_kwargs={"width": 4}, epochs=3, batch_size=16, milestones=(2,),
                     crop_pad=1, flip=True, eval_samples=20, align_samples=0)
SPEC = ObjectiveSpec(objective="ce")


def _train(tmp_path, prepared, name: str, epochs: int):
    common = dataclasses.replace(COMMON, epochs=epochs)
    return train_method("vanilla", SPEC, common, prepared, tmp_path / "stores", tmp_path / name,
                        tmp_path / f"{name}.json", tmp_path / f"{name}.csv")


def test_resume_continues_at_the_saved_epoch(tmp_path, monkeypatch) -> None:
    _, prepared = write_prepared(tmp_path)
    _train(tmp_path, prepared, "full", 3)

    # interrupt the second run after epoch 2 (as a killed job would), then run again
    import pagstore.training.run as run_mod

    real_save = run_mod.save_checkpoint
    calls = []

    def save_then_die(path, model, cfg, meta, *a, **kw):
        real_save(path, model, cfg, meta, *a, **kw)
        calls.append(meta["epoch"])
        if meta["epoch"] == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(run_mod, "save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        _train(tmp_path, prepared, "resumed", 3)
    assert load_checkpoint(tmp_path / "resumed" / "checkpoint.pt")["meta"]["epoch"] == 2
    calls.clear()
    _train(tmp_path, prepared, "resumed", 3)
    assert calls == [3]  # only the last epoch ran

    full = load_checkpoint(tmp_path / "full" / "checkpoint.pt")
    resumed = load_checkpoint(tmp_path / "resumed" / "checkpoint.pt")
    assert [r["epoch"] for r in resumed["meta"]["history"]] == [1, 2, 3]
    for k, v in full["state_dict"].items():
        assert torch.allclose(v.float(), resumed["state_dict"][k].float(), atol=1e-6), k
    assert full["optimizer"]["param_groups"][0]["lr"] == pytest.approx(resumed["optimizer"]["param_groups"][0]["lr"])


def test_checkpoint_is_weights_only_and_self_describing(tmp_path) -> None:
    train, prepared = write_prepared(tmp_path)
    final = _train(tmp_path, prepared, "run", 1)
    raw = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert raw["format"] == "pagstore-classifier/1"
    model, meta = load_classifier(tmp_path / "run" / "checkpoint.pt")
    assert not model.training
    assert meta["model"]["name"] == "small-cnn" and meta["model"]["kwargs"]["width"] == 4
    assert meta["method"] == "vanilla" and meta["objective"]["objective"] == "ce"
    assert meta["dataset_fingerprint"] == train.fingerprint() and meta["epoch"] == 1
    assert model(torch.rand(2, 1, 8, 8)).shape == (2, 3)
    metrics = json.loads((tmp_path / "run.json").read_text())
    assert metrics["test_acc"] == pytest.approx(final["test_acc"])
    assert (tmp_path / "run.csv").read_text().splitlines()[0].startswith("epoch,lr,loss")


def test_changed_params_start_fresh_and_bad_files_are_named(tmp_path) -> None:
    _, prepared = write_prepared(tmp_path)
    _train(tmp_path, prepared, "run", 1)
    common = dataclasses.replace(COMMON, epochs=1, lr=0.05)
    train_method("vanilla", SPEC, common, prepared, tmp_path / "stores", tmp_path / "run",
                 tmp_path / "m.json", tmp_path / "p.csv")
    meta = load_checkpoint(tmp_path / "run" / "checkpoint.pt")["meta"]
    assert meta["recipe"]["lr"] == 0.05 and len(meta["history"]) == 1
    bad = tmp_path / "bad.pt"
    torch.save({"format": "other"}, bad)
    with pytest.raises(CheckpointError, match="expected format"):
        load_classifier(bad)
    with pytest.raises(CheckpointError, match="not found"):
        load_classifier(tmp_path / "missing.pt")


def test_rerun_removes_a_temp_checkpoint_left_by_a_kill(tmp_path) -> None:
    _, prepared = write_prepared(tmp_path)
    (tmp_path / "run").mkdir()
    stale = tmp_path / "run" / ".checkpoint.pt.k1ll3d.tmp.pt"
    stale.write_bytes(b"PK\x03\x04 half a zip")
    _train(tmp_path, prepared, "run", 1)
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["checkpoint.pt"]


def test_a_finished_checkpoint_is_retrained_when_the_training_code_changed(tmp_path, monkeypatch) -> None:
    """DVC reruns a train stage when its code changes; the persisted checkpoint must not pass for the new
    code's result. Same code: the rerun trains no epoch. Changed code: it trains every epoch again."""
    import pagstore.training.run as run_mod

    _, prepared = write_prepared(tmp_path)
    _train(tmp_path, prepared, "run", 2)
    real_save = run_mod.save_checkpoint
    calls: list[int] = []

    def counting_save(path, model, cfg, meta, *a, **kw):
        calls.append(meta["epoch"])
        return real_save(path, model, cfg, meta, *a, **kw)

    monkeypatch.setattr(run_mod, "save_checkpoint", counting_save)
    _train(tmp_path, prepared, "run", 2)
    assert calls == []  # the same code: the finished checkpoint is this run's
    monkeypatch.setattr(run_mod, "code_fingerprint", lambda parts: "sha256:" + "1" * 64)
    _train(tmp_path, prepared, "run", 2)
    assert calls == [1, 2]  # another code fingerprint: trained from scratch


def test_code_fingerprint_follows_the_computation_sources_only(tmp_path) -> None:
    from pagstore.code_fingerprint import code_fingerprint

    pkg = tmp_path / "pkg"
    (pkg / "training").mkdir(parents=True)
    (pkg / "training" / "loop.py").write_text("x = 1\n")
    (pkg / "loss.py").write_text("y = 1\n")
    parts = ("training", "loss.py")
    first = code_fingerprint(parts, pkg)
    (pkg / "report.py").write_text("z = 1\n")  # not part of the computation
    (pkg / "training" / "loop.cpython-311.pyc").write_bytes(b"\0")  # bytecode is ignored
    assert code_fingerprint.__wrapped__(parts, pkg) == first
    (pkg / "training" / "loop.py").write_text("x = 2\n")
    assert code_fingerprint.__wrapped__(parts, pkg) != first
