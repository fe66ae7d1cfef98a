"""kill -9 of a distillation, a diffusion training and a classifier training at seeded random points.

After every kill: no partial output is taken as complete (a done-flagged store shard holds exactly the
data of an uninterrupted run; a checkpoint present is a whole, loadable one from a save point; final
outputs exist only once their run finished). Rerunning the stage then finishes and gives the same store
bytes (distill) or the same weights, bit for bit, as one uninterrupted run (trainings: every step/epoch
draws its randomness from (seed, step), so resuming from a saved checkpoint replays the uninterrupted run;
"equivalent" = torch.equal on every tensor of the state dict (model, EMA), same step/epoch and the same
logged loss history).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from rel_fixtures import build_store, kill_when, write_diffusion_checkpoint, write_params, write_prepared

from pagstore.data.prepared import load_split

# (kill point, extra delay in s) drawn once from a seeded generator, so failures are reproducible.
_RNG = np.random.default_rng(20231122)
DISTILL_POINTS = [(int(k), float(d)) for k, d in zip(_RNG.integers(1, 7, 3), _RNG.uniform(0, 0.12, 3))]
DIFFUSION_POINTS = [(int(k), float(d)) for k, d in zip(_RNG.integers(1, 4, 3), _RNG.uniform(0, 0.3, 3))]
CLASSIFIER_POINTS = [(int(k), float(d)) for k, d in zip(_RNG.integers(1, 5, 3), _RNG.uniform(0, 0.1, 3))]


def _points(points: list[tuple[int, float]]) -> list:
    """Two kill points run by default, the third under ``-m slow`` (keeps the default suite short)."""
    return [pytest.param(*p, id=f"after{p[0]}-{p[1]:.3f}s", marks=[pytest.mark.slow] if i == 2 else [])
            for i, p in enumerate(points)]


# ---------------------------------------------------------------- distillation (SBG, 8 shards of 8 rows)

DISTILL = {"distill": {"common": {"samples_per_shard": 8, "grad_dtype": "float32", "workers": 1, "batch_size": 8},
                       "sources": {"sbg": {"t": 20, "forward_batch": 4}}}}


def _distill_args(root: Path, out: Path) -> list[str]:
    return ["stages.distill", "--params", str(root / "params.yaml"), "--source", "sbg", "--prepared",
            str(root / "prepared"), "--diffusion", str(root / "diffusion.pt"), "--out", str(out)]


@pytest.fixture(scope="module")
def distill_reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Inputs plus one uninterrupted distillation (``ref``) to compare against."""
    from stages.distill import main

    root = tmp_path_factory.mktemp("distill")
    prepared = write_prepared(root, n=64)
    write_diffusion_checkpoint(root / "diffusion.pt", load_split(prepared / "train.npz"))
    write_params(root / "params.yaml", DISTILL)
    main(_distill_args(root, root / "ref")[1:])
    return root


def _array_files(store: Path) -> dict[str, bytes]:
    """Every file of the store, metadata included (format v2 has no created_at: a resumed store is the same
    bytes as an uninterrupted one, root zarr.json and shards/index.json too)."""
    files = sorted(p for p in store.rglob("*") if p.is_file())
    return {str(p.relative_to(store)): p.read_bytes() for p in files}


def _spec_without_time(attrs: dict) -> dict:
    return {k: v for k, v in attrs.items() if k != "created_at"}


@pytest.mark.parametrize("after_shards, delay", [*_points(DISTILL_POINTS),
                                                pytest.param(0, 0.0, id="during-export")])
def test_distill_killed_resumes_to_same_bytes(distill_reference: Path, tmp_path: Path, after_shards: int,
                                              delay: float) -> None:
    """``after_shards`` 0 = as soon as the webdataset export starts (all shards done, tars being written)."""
    from pagstore.shards import check_export
    from pagstore.store import open_store
    from stages.distill import main

    root, out = distill_reference, tmp_path / "store"
    ready = ((lambda: (out / "shards").exists()) if after_shards == 0
             else (lambda: len(list((out / "done" / "c").glob("*"))) >= after_shards))
    killed = kill_when(_distill_args(root, out), tmp_path, ready, delay)
    assert killed, "the distillation finished before the kill point"
    ref = open_store(root / "ref")
    part = open_store(out, "r")
    for k in np.flatnonzero(part.done_flags()):  # a done flag is never set on an incomplete shard
        rows = part.shard_slice(int(k))
        for got, want in zip(part.read(rows), ref.read(rows)):
            np.testing.assert_array_equal(got, want, err_msg=f"shard {k} is flagged done but differs")
    if (out / "shards" / "index.json").exists():  # an index that exists lists only whole tars
        assert check_export(out) == []
    main(_distill_args(root, out)[1:])
    assert _array_files(out) == _array_files(root / "ref")
    assert _spec_without_time(open_store(out).spec.to_attrs()) == _spec_without_time(ref.spec.to_attrs())


# ---------------------------------------------------------------- diffusion training (12 steps, save every 3)

DIFFUSION = {"train_diffusion": {
    "model": {"num_channels": 32, "channel_mult": [1, 2], "image_size": 8, "attention_resolutions": "4",
              "num_heads": 1, "diffusion_steps": 40, "num_res_blocks": 1},
    "train": {"steps": 12, "batch_size": 8}, "save_every": 3, "log_every": 3,
    "sample": {"per_class": 1, "respacing": "5"}}}


def _diffusion_args(root: Path, out: Path) -> list[str]:
    return ["stages.train_diffusion", "--params", str(root / "params.yaml"), "--train",
            str(root / "prepared" / "train.npz"), "--checkpoint", str(out / "checkpoint.pt"),
            "--samples", str(out / "samples.png"), "--loss-csv", str(out / "loss.csv")]


@pytest.fixture(scope="module")
def diffusion_reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from stages.train_diffusion import main

    root = tmp_path_factory.mktemp("diffusion")
    write_prepared(root, n=48)
    write_params(root / "params.yaml", DIFFUSION)
    main(_diffusion_args(root, root / "ref")[1:])
    return root


def _saves_seen(path: Path) -> Callable[[], int]:
    """A predicate counting distinct versions of ``path`` (atomic replace: a new inode per save)."""
    seen: set[tuple[int, int]] = set()

    def count() -> int:
        try:
            st = path.stat()
        except FileNotFoundError:
            return len(seen)
        seen.add((st.st_ino, st.st_mtime_ns))
        return len(seen)
    return count


def _assert_same_tensors(a: dict, b: dict, what: str) -> None:
    assert a.keys() == b.keys(), what
    for k in a:
        assert torch.equal(a[k], b[k]), f"{what}: {k} differs"


@pytest.mark.parametrize("after_saves, delay", _points(DIFFUSION_POINTS))
def test_diffusion_killed_resumes_to_same_weights(diffusion_reference: Path, tmp_path: Path, after_saves: int,
                                                  delay: float) -> None:
    from pagstore.improved_diffusion.checkpoint import read_checkpoint
    from stages.train_diffusion import main

    root, out = diffusion_reference, tmp_path / "run"
    count = _saves_seen(out / "checkpoint.pt")
    assert kill_when(_diffusion_args(root, out), tmp_path, lambda: count() >= after_saves, delay)
    ckpt = read_checkpoint(out / "checkpoint.pt")  # whole and loadable, from a save point
    assert ckpt["step"] % 3 == 0 and 3 <= ckpt["step"] <= 12
    if ckpt["step"] < 12:  # final outputs only once training finished
        assert not (out / "loss.csv").exists() and not (out / "samples.png").exists()
    main(_diffusion_args(root, out)[1:])
    got, want = read_checkpoint(out / "checkpoint.pt"), read_checkpoint(root / "ref" / "checkpoint.pt")
    assert got["step"] == want["step"] == 12
    _assert_same_tensors(got["model"], want["model"], "model")
    _assert_same_tensors(got["ema"], want["ema"], "ema")
    assert got["loss_history"] == want["loss_history"]
    assert (out / "loss.csv").read_text() == (root / "ref" / "loss.csv").read_text()


# ---------------------------------------------------------------- classifier training (PAG, 6 epochs)

CLASSIFIER = {"train": {"common": {"model_kwargs": {"width": 4}, "epochs": 6, "batch_size": 8, "milestones": [3],
                                   "eval_samples": 16, "align_samples": 8, "crop_pad": 1}}}


def _train_args(root: Path, out: Path) -> list[str]:
    return ["stages.train", "--params", str(root / "params.yaml"), "--method", "pag-cm", "--prepared",
            str(root / "prepared"), "--stores", str(root / "stores"), "--out", str(out / "model"),
            "--metrics", str(out / "metrics.json"), "--plots", str(out / "epochs.csv")]


@pytest.fixture(scope="module")
def classifier_reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from stages.train import main

    root = tmp_path_factory.mktemp("classifier")
    prepared = write_prepared(root, n=96)
    build_store(root / "stores" / "cm", load_split(prepared / "train.npz"), samples_per_shard=16,
                samples_per_tar=16)
    write_params(root / "params.yaml", CLASSIFIER)
    main(_train_args(root, root / "ref")[1:])
    return root


@pytest.mark.parametrize("after_epochs, delay", _points(CLASSIFIER_POINTS))
def test_classifier_killed_resumes_to_same_weights(classifier_reference: Path, tmp_path: Path, after_epochs: int,
                                                   delay: float) -> None:
    from pagstore.training.checkpoint import load_checkpoint
    from stages.train import main

    root, out = classifier_reference, tmp_path / "run"
    count = _saves_seen(out / "model" / "checkpoint.pt")
    assert kill_when(_train_args(root, out), tmp_path, lambda: count() >= after_epochs, delay)
    ckpt = load_checkpoint(out / "model" / "checkpoint.pt")
    epoch = ckpt["meta"]["epoch"]
    assert 1 <= epoch <= 6 and len(ckpt["meta"]["history"]) == epoch
    if epoch < 6:
        assert not (out / "metrics.json").exists()
    main(_train_args(root, out)[1:])
    got = load_checkpoint(out / "model" / "checkpoint.pt")
    want = load_checkpoint(root / "ref" / "model" / "checkpoint.pt")
    assert got["meta"]["epoch"] == want["meta"]["epoch"] == 6
    _assert_same_tensors(got["state_dict"], want["state_dict"], "classifier")
    strip = lambda h: [{k: v for k, v in row.items() if k != "seconds"} for row in h]  # noqa: E731
    assert strip(got["meta"]["history"]) == strip(want["meta"]["history"])
    final = json.loads((out / "metrics.json").read_text())
    assert final["test_acc"] == json.loads((root / "ref" / "metrics.json").read_text())["test_acc"]


def test_classifier_rerun_leaves_no_stale_temp_file(classifier_reference: Path, tmp_path: Path) -> None:
    """What SIGKILL during ``torch.save`` leaves (atomic_path's mkstemp file, never moved into place);
    the rerun must not ship it inside the output directory."""
    from stages.train import main

    out = tmp_path / "run"
    (out / "model").mkdir(parents=True)
    (out / "model" / ".checkpoint.pt.k1ll3d.tmp.pt").write_bytes(b"PK\x03\x04 half a zip")
    main(_train_args(classifier_reference, out)[1:])
    assert sorted(p.name for p in (out / "model").iterdir()) == ["checkpoint.pt"]
