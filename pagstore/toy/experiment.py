"""The 2-D toy experiment (Section 5.1, Appendix G.1): vanilla vs NN-PAG MLPs, several seeds.

Per seed: distill NN gradients of the train split into a real gradient store (the same source and engine
as for images), read it back through the store loader, train both models with the one training loop from
the same initialisation and batch order (they differ only by the PAG term), then measure clean accuracy,
L2-PGD accuracy and input-gradient alignment with the data line.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from pagstore.data.prepared import PreparedSplit
from pagstore.devices import OnDevice, grad_scaler, resolve_device
from pagstore.distill import distill
from pagstore.evaluation.paper import PAPER_TOY
from pagstore.loaders import ZarrGradientDataset
from pagstore.models import build_model
from pagstore.sources import build_source
from pagstore.toy.config import ToyParams
from pagstore.toy.evaluate import accuracy, grid_robust_accuracy, line_alignment, robust_accuracy
from pagstore.training.data import Batch, check_store_matches
from pagstore.training.loop import LoopOptions, fit
from pagstore.training.objectives import ObjectiveSpec


@dataclass
class ToyResult:
    """``metrics``: the JSON written to metrics/toy.json; ``models``: name -> seed -> trained model."""

    metrics: dict[str, Any]
    models: dict[str, dict[int, nn.Module]]


def model_specs(params: ToyParams) -> dict[str, ObjectiveSpec]:
    """Name -> objective: "vanilla" (CE), "nn-pag" (CE + lam * PAG), and one "nn-pag-lam<v>" per sweep value."""
    specs = {"vanilla": ObjectiveSpec("ce"), "nn-pag": ObjectiveSpec("pag", store="nn", lam=params.lam)}
    for lam in params.lambda_sweep:
        specs.setdefault(f"nn-pag-lam{lam:g}", ObjectiveSpec("pag", store="nn", lam=lam))
    return specs


def distill_nn_store(train: PreparedSplit, path: str | Path, params: ToyParams, seed: int) -> Path:
    """NN gradients (N, 2 classes, 2) of every train point into the gradient store at ``path``; returns it."""
    factory = functools.partial(build_source, "nn", params.nn, train, seed=seed)
    distill(path, train, factory, source=factory(), grad_dtype=params.grad_dtype, batch_size=1024, workers=1,
            replace_mismatched=True)
    check_store_matches(path, train)
    return Path(path)


def store_tensors(path: str | Path) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The whole store via its map-style loader: x (N, 2) float32, y (N,) int64, grads (N, 2, 2) float32.

    The toy store is ~100 KB, so one read up front beats streaming it again every epoch (the webdataset
    reader costs seconds per epoch here, more than the training step itself).
    """
    ds = ZarrGradientDataset(path)
    return ds.read_batch(np.arange(len(ds)))


def shuffled_batches(
    x: torch.Tensor, y: torch.Tensor, g: torch.Tensor, batch_size: int, seed: int
) -> Callable[[int], Iterator[Batch]]:
    """``batches(epoch)`` for :func:`fit`: a permutation seeded by (seed, epoch), last short batch kept."""

    def batches(epoch: int) -> Iterator[Batch]:
        order = torch.from_numpy(np.random.default_rng([seed, epoch]).permutation(len(x)))
        for start in range(0, len(x), batch_size):
            idx = order[start : start + batch_size]
            yield x[idx], y[idx], g[idx]

    return batches


def train_model(
    spec: ObjectiveSpec, batches: Callable[[int], Iterator[Batch]], params: ToyParams, seed: int
) -> tuple[nn.Module, dict[str, float]]:
    """Train the 2 -> hidden -> 2 MLP with Adam (constant lr) for ``params.epochs`` on ``params.device``;
    returns it (on that device) and its last row."""
    with torch.random.fork_rng():  # the same initialisation for every model of a seed, global RNG untouched
        torch.manual_seed(seed)
        model = build_model("mlp", 2, (2,), hidden=params.hidden)
    device = resolve_device(params.device)
    model = model.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=params.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    rows = fit(model, spec, batches, opt, sched,
               LoopOptions(augment=False, clamp=None, seed=seed, precision=params.precision),
               epochs=params.epochs, scaler=grad_scaler(device, params.precision))
    return model.eval(), rows[-1]


def evaluate_model(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, params: ToyParams, seed: int
) -> dict[str, float]:
    """Clean, PGD and (if enabled) grid-searched robust accuracy (percent) and line alignment (mean |cos|)
    on CPU test points x (N, 2), y (N,); the model runs on its own device at ``params.precision``."""
    model = OnDevice(model, next(model.parameters()).device, params.precision).eval()
    out = {
        "clean": accuracy(model, x, y),
        "robust": robust_accuracy(model, x, y, params.attack, seed),
        "line_alignment": line_alignment(model, x),
    }
    if params.grid.angles:
        out["robust_grid"] = grid_robust_accuracy(model, x, y, params.attack.eps, params.grid.angles, params.grid.radii)
    return out


def run_seed(
    params: ToyParams, train: PreparedSplit, test: PreparedSplit, store_dir: Path, seed: int
) -> tuple[dict[str, dict[str, float]], dict[str, nn.Module]]:
    """Both models (and the lambda sweep) for one seed: metrics per model name, and the trained models."""
    store = distill_nn_store(train, store_dir / f"nn-seed{seed}", params, seed)
    batches = shuffled_batches(*store_tensors(store), params.batch_size, seed)
    xt, yt = torch.from_numpy(test.as_float()), torch.from_numpy(test.labels)
    metrics, models = {}, {}
    for name, spec in model_specs(params).items():
        model, last = train_model(spec, batches, params, seed)
        metrics[name] = {**evaluate_model(model, xt, yt, params, seed), "train_loss": last["loss"],
                         "train_acc": 100.0 * last["train_acc"]}
        models[name] = model.cpu()  # plots, checkpoints and the process pool get CPU models
    return metrics, models


def summarise(per_seed: list[dict[str, float]]) -> dict[str, Any]:
    """Mean, sample std (ddof 1; 0 for one seed) and per-seed values of every metric."""
    out: dict[str, Any] = {}
    for key in per_seed[0]:
        vals = np.array([row[key] for row in per_seed], dtype=np.float64)
        out[f"{key}_mean"] = float(vals.mean())
        out[f"{key}_std"] = float(vals.std(ddof=1)) if len(vals) > 1 else 0.0
        out[f"{key}_per_seed"] = vals.tolist()
    return out


def run_toy(
    params: ToyParams, train: PreparedSplit, test: PreparedSplit, store_dir: str | Path, workers: int = 1
) -> ToyResult:
    """Run every seed (``workers`` processes in parallel); stores go to ``store_dir/nn-seed<k>``.

    Accuracies are percent. Results do not depend on ``workers``: every seed runs with one torch thread.
    """
    if train.sample_shape != (2,) or train.num_classes != 2:
        raise ValueError(
            f"toy experiment needs 2-class (N, 2) data, got {train.num_classes} classes of {train.sample_shape}"
        )
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    start = time.perf_counter()
    store_dir = Path(store_dir)
    rows: dict[str, list[dict[str, float]]] = {}
    models: dict[str, dict[int, nn.Module]] = {}
    outcomes = map_seeds(functools.partial(run_seed, params, train, test, store_dir), params.seeds, workers)
    for seed, (metrics, trained) in zip(params.seeds, outcomes):
        for name, m in metrics.items():
            rows.setdefault(name, []).append(m)
            models.setdefault(name, {})[seed] = trained[name]
    result: dict[str, Any] = {name: summarise(r) for name, r in rows.items()}
    result["paper"] = PAPER_TOY  # Appendix G.1, percent
    result["seeds"] = list(params.seeds)
    result["units"] = ("clean / robust (L2 PGD) / robust_grid (eps-disk searched on a grid) / train_acc: percent of "
                       "test (train) points; line_alignment: mean |cos(grad_x margin, data line)|")
    result["params"] = asdict(params)
    result["dataset"] = {"train_fingerprint": train.fingerprint(), "test_fingerprint": test.fingerprint(),
                         "train_size": len(train), "test_size": len(test)}
    result["seconds"] = time.perf_counter() - start
    return ToyResult(result, models)


def _init_worker() -> None:
    torch.set_num_threads(1)


def map_seeds(fn: Callable[[int], Any], seeds: tuple[int, ...], workers: int) -> list[Any]:
    """``[fn(s) for s in seeds]``, in up to ``workers`` spawned processes (one torch thread each)."""
    def progress(it: Any) -> list[Any]:
        return list(tqdm(it, total=len(seeds), desc="toy seeds", unit="seed", disable=None))

    if workers == 1 or len(seeds) == 1:
        return progress(fn(s) for s in seeds)
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    ctx = multiprocessing.get_context("spawn")  # fork after torch has started threads can deadlock
    with ProcessPoolExecutor(min(workers, len(seeds)), mp_context=ctx, initializer=_init_worker) as pool:
        return progress(pool.map(fn, seeds))
