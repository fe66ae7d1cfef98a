"""Train one method end to end: data checks, model, resume, the loop, checkpoint, metrics and plots."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pagstore import __version__
from pagstore.atomic import atomic_path, write_json
from pagstore.code_fingerprint import CLASSIFIER_CODE, code_fingerprint
from pagstore.config import ConfigError
from pagstore.devices import describe as describe_device
from pagstore.devices import grad_scaler, prepare_model, resolve_device, use_channels_last
from pagstore.data.prepared import PreparedSplit, load_split
from pagstore.models import build_model
from pagstore.training import metrics as M
from pagstore.training.checkpoint import (
    load_checkpoint,
    model_from_checkpoint,
    restore_scheduler_state,
    save_checkpoint,
)
from pagstore.training.config import TrainCommon
from pagstore.training.data import Batch, array_batches, check_store_matches, store_batches
from pagstore.training.distributed import broadcast_parameters, init_from_env
from pagstore.training.loop import LoopOptions, fit
from pagstore.training.objectives import ObjectiveSpec

CSV_COLUMNS = ["epoch", "lr", "loss", "ce", "adv", "pag", "train_acc", "test_acc", "align_cos", "seconds"]


def normalisation(split: PreparedSplit) -> tuple[list[float], list[float]]:
    """Per-channel (images) or per-feature (vectors) mean and std of the train split in model space."""
    x = split.as_float()
    axes = (0, 2, 3) if x.ndim == 4 else (0,)
    mean, std = x.mean(axis=axes), x.std(axis=axes)
    return [round(float(m), 6) for m in mean], [round(max(float(s), 1e-3), 6) for s in std]


def _held_out(split: PreparedSplit, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    idx = np.arange(min(n, len(split)))
    return torch.from_numpy(split.as_float(idx)), torch.from_numpy(split.labels[idx])


def _align_batch(store_path: Path, n: int) -> tuple[torch.Tensor, ...] | None:
    """A fixed, un-augmented batch of the store (images in model space, gradients (n, K, *S) and, for a K < C
    store, their classes (n, K)) for the alignment metric."""
    if n == 0:
        return None
    from pagstore.store import open_store

    store = open_store(str(store_path), mode="r")
    rows = np.arange(min(n, store.num_samples))
    images, _, grads = store.read(rows)
    x = images.astype(np.float32) / 255.0 if images.dtype == np.uint8 else images.astype(np.float32)
    out = (torch.from_numpy(x), torch.from_numpy(grads.astype(np.float32)))
    k_of_c = store.num_stored_classes < store.num_classes
    return (*out, torch.from_numpy(store.read_classes(rows))) if k_of_c else out


# Keys that say where a run executes, not what it computes: a run started on the CPU resumes on a GPU.
EXECUTION_KEYS = ("device", "compile", "loader_workers")


def run_id(method: str, spec: ObjectiveSpec, common: TrainCommon, fingerprints: dict[str, Any]) -> str:
    """Hash of everything that defines a run; a checkpoint is resumed only when it matches."""
    recipe = {k: v for k, v in dataclasses.asdict(common).items() if k not in EXECUTION_KEYS}
    blob = json.dumps(
        {"method": method, "spec": dataclasses.asdict(spec), "common": recipe, **fingerprints},
        sort_keys=True, default=str,
    )
    return "sha256:" + hashlib.sha256(blob.encode()).hexdigest()


def write_history_csv(path: Path, history: list[dict[str, Any]]) -> None:
    """Per-epoch metrics as CSV (DVC plots); absent terms are left empty."""
    with atomic_path(path, suffix=".csv") as tmp, open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=CSV_COLUMNS, extrasaction="ignore")
        w.writeheader()
        for row in history:
            w.writerow({k: (f"{row[k]:.6g}" if isinstance(row.get(k), float) else row.get(k, "")) for k in CSV_COLUMNS})


def remove_stale_temp_files(ckpt_path: Path) -> None:
    """Delete temp checkpoints a killed save left beside ``ckpt_path`` (atomic_path's never-moved file),
    so they do not end up inside the DVC output directory."""
    for stale in ckpt_path.parent.glob(f".{ckpt_path.name}.*.tmp*"):
        stale.unlink(missing_ok=True)


def _optimizer_and_scheduler(
    model: torch.nn.Module, common: TrainCommon
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.MultiStepLR]:
    opt = torch.optim.SGD(model.parameters(), lr=common.lr, momentum=common.momentum,
                          weight_decay=common.weight_decay)
    return opt, torch.optim.lr_scheduler.MultiStepLR(opt, list(common.milestones), gamma=common.gamma)


def _resume(ckpt_path: Path, rid: str, model: torch.nn.Module, common: TrainCommon,  # noqa: ANN202
            place: Callable[[torch.nn.Module], torch.nn.Module] = lambda m: m):
    """(model, optimizer, scheduler, start epoch, history), from the checkpoint if it is this run's.

    ``place`` moves a model to its device before its optimizer is built, so loaded optimizer state lands
    on the parameters' device (checkpoints are read onto the CPU, whatever device wrote them).
    """
    ckpt = load_checkpoint(ckpt_path) if ckpt_path.is_file() else None
    if ckpt is None or ckpt["meta"].get("run_id") != rid:
        model = place(model)  # no checkpoint, or one of other parameters or data: start from scratch
        return (model, *_optimizer_and_scheduler(model, common), 0, [])
    model = place(model_from_checkpoint(ckpt))
    opt, sched = _optimizer_and_scheduler(model, common)
    opt.load_state_dict(ckpt["optimizer"])
    sched.load_state_dict(restore_scheduler_state(ckpt["scheduler"]))
    return model, opt, sched, int(ckpt["meta"]["epoch"]), list(ckpt["meta"]["history"])


def train_method(
    method: str,
    spec: ObjectiveSpec,
    common: TrainCommon,
    prepared_dir: str | Path,
    stores_dir: str | Path,
    out_dir: str | Path,
    metrics_path: str | Path,
    plots_path: str | Path,
) -> dict[str, Any]:
    """Train ``method`` and write ``out_dir/checkpoint.pt``, ``metrics_path`` (JSON) and ``plots_path`` (CSV).

    Resumes from ``out_dir/checkpoint.pt`` when it was made by the same run (same params and data).
    Under torchrun, ranks train on disjoint data and rank 0 writes the outputs. Returns the final metrics.
    """
    if common.compile and spec.uses_store:
        # Checked before any work: torch.compile's aot_autograd raises at the first PAG backward.
        raise ConfigError(
            f"train.common.compile: true cannot train method {method!r}: torch.compile does not support the "
            "double backward of its PAG term; set compile: false (it applies to methods without a store)"
        )
    device = resolve_device(common.device)  # cuda -> cuda:LOCAL_RANK under torchrun
    rank, world = init_from_env(device)
    torch.manual_seed(common.seed)
    train = load_split(Path(prepared_dir) / "train.npz")
    test = load_split(Path(prepared_dir) / "test.npz")
    if spec.k_classes is not None and spec.k_classes > train.num_classes:
        # Checked here, not in ObjectiveSpec: C is known only once the data are loaded.
        raise ConfigError(
            f"train.methods.{method}.k_classes: {spec.k_classes} exceeds the number of classes "
            f"C={train.num_classes} of the dataset (use null for all classes)"
        )
    store_path = Path(stores_dir) / spec.store if spec.store else None
    store_attrs = check_store_matches(store_path, train) if store_path is not None else None
    rid = run_id(method, spec, common, {"dataset_fingerprint": train.fingerprint(), "store": store_attrs,
                                        "code": code_fingerprint(CLASSIFIER_CODE)})

    kwargs = dict(common.model_kwargs)
    if common.normalize:
        kwargs["mean"], kwargs["std"] = normalisation(train)
    model_config = {"name": common.model, "num_classes": train.num_classes,
                    "sample_shape": list(train.sample_shape), "kwargs": kwargs}
    model = build_model(common.model, train.num_classes, train.sample_shape, **kwargs)
    ckpt_path = Path(out_dir) / "checkpoint.pt"
    if rank == 0:
        remove_stale_temp_files(ckpt_path)
    channels_last = use_channels_last(common.channels_last, device)

    def place(m: torch.nn.Module) -> torch.nn.Module:
        return prepare_model(m, device, channels_last=channels_last, compile=common.compile)

    model, optimizer, scheduler, start, history = _resume(ckpt_path, rid, model, common, place)
    broadcast_parameters(model)

    is_image = len(train.sample_shape) == 3
    opts = LoopOptions(augment=common.augment and is_image, crop_pad=common.crop_pad, flip=common.flip,
                       clamp=(0.0, 1.0) if is_image else None, seed=common.seed, precision=common.precision,
                       channels_last=channels_last and is_image)
    x_test, y_test = _held_out(test, common.eval_samples)
    align = _align_batch(store_path, common.align_samples) if store_path is not None else None

    controls = None
    if store_path is not None and spec.targets != "store":
        from pagstore.training.controls import ControlTargets

        controls = ControlTargets(store_path, spec.targets, common.seed)

    def batches(epoch: int) -> Iterable[Batch]:
        if controls is not None:
            return controls.batches(common.batch_size, seed=common.seed, epoch=epoch, rank=rank, world_size=world)
        if store_path is not None:
            return store_batches(store_path, common.batch_size, seed=common.seed, epoch=epoch,
                                 k_of_c=store_attrs.get("num_target_classes", train.num_classes) < train.num_classes,
                                 num_workers=common.loader_workers)
        return array_batches(train, common.batch_size, seed=common.seed, epoch=epoch, rank=rank, world_size=world)

    def evaluate(m: torch.nn.Module) -> dict[str, float]:
        out = {"test_acc": M.accuracy(m, x_test, y_test)}
        if align is not None:
            out["align_cos"] = M.alignment(m, *align)
        return out

    meta = {"method": method, "objective": dataclasses.asdict(spec), "recipe": dataclasses.asdict(common),
            "store": store_attrs, "dataset_fingerprint": train.fingerprint(), "run_id": rid,
            "epochs": common.epochs, "world_size": world, "code_version": __version__,
            "execution": {**describe_device(device), "precision": common.precision,
                          "channels_last": channels_last, "compile": common.compile}}

    def on_epoch_end(epoch: int, row: dict[str, float]) -> None:
        history.append(row)
        if rank == 0:
            save_checkpoint(ckpt_path, model, model_config, {**meta, "epoch": epoch, "history": history},
                            optimizer, scheduler)
            write_history_csv(Path(plots_path), history)

    fit(model, spec, batches, optimizer, scheduler, opts, epochs=common.epochs, start_epoch=start,
        evaluate=evaluate, on_epoch_end=on_epoch_end, rank=rank, scaler=grad_scaler(device, common.precision))
    final = {"method": method, "model": common.model, "objective": spec.objective, "store": spec.store,
             "lam": spec.lam, "epochs": common.epochs,
             "num_parameters": sum(p.numel() for p in model.parameters()),
             "train_seconds": float(sum(r.get("seconds", 0.0) for r in history)),
             **{k: v for k, v in history[-1].items() if k not in ("epoch", "seconds")}}
    if rank == 0:
        write_history_csv(Path(plots_path), history)
        write_json(metrics_path, final)
    return final
