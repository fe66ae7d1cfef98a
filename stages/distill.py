"""Stage distill: compute a gradient store for one source (distill@oi/cm/nn, distill_sbg, distill_test).

Reads ``distill.common`` and ``distill.sources.<name>`` (and ``distill.test`` with ``--split test``,
``distill.plots`` with ``--plots``) of pipeline.yaml; builds ``--out`` (resuming it if a previous run was
interrupted; a finished store is rebuilt, since DVC only reruns a stage whose inputs changed), exports the webdataset shards, verifies the store (the stage fails if verification fails)
and draws the figures. Example::

    python -m stages.distill --params pipeline.yaml --source sbg --prepared data/prepared \
        --diffusion models/diffusion/checkpoint.pt --out stores/sbg --plots plots/distill
"""

from __future__ import annotations

import argparse
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from pagstore.config import ConfigError, load_section, read_yaml
from pagstore.data.prepared import PreparedSplit, load_split
from pagstore.distill import SourceRecipe, distill
from pagstore.distill import plots
from pagstore.sources import SOURCES


@dataclass(frozen=True)
class DistillCommon:
    """``distill.common``: store layout and execution (``scheduler``: "" local threads, "local-cluster:N",
    or a dask.distributed address; ``workers``: local threads, 0 = all cores)."""

    samples_per_shard: int
    grad_dtype: Literal["float16", "float32"]
    scheduler: str
    batch_size: int
    workers: int
    seed: int
    device: str = "auto"
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"

    def validate(self) -> None:
        from pagstore.devices import check_device

        check_device(self.device)
        for key, low in (("samples_per_shard", 1), ("batch_size", 1), ("workers", 0)):
            if getattr(self, key) < low:
                raise ValueError(f"{key} must be >= {low}, got {getattr(self, key)}")


@dataclass(frozen=True)
class DistillTest:
    """``distill.test``: SBG gradients of the first ``num_test`` test images (evaluation's alignment metric)."""

    num_test: int

    def validate(self) -> None:
        if self.num_test < 1:
            raise ValueError(f"num_test must be >= 1, got {self.num_test}")


@dataclass(frozen=True)
class DistillPlots:
    """``distill.plots``: images per figure and the SBG timesteps of the t-sweep figure."""

    num_images: int
    t_sweep: tuple[int, ...]


def source_params(params_path: Path, name: str) -> dict[str, Any]:
    """The raw ``distill.sources.<name>`` mapping (checked strictly by the source's params dataclass)."""
    sources = read_yaml(params_path).get("distill", {}).get("sources", {})
    if name not in SOURCES:
        raise ConfigError(f"--source {name!r}: unknown gradient source; known: {sorted(SOURCES)}")
    if not isinstance(sources, dict) or not isinstance(sources.get(name), dict):
        raise ConfigError(f"{params_path}: distill.sources.{name} must be a mapping of the source's parameters")
    return dict(sources[name])


def run_distill(
    params_path: Path,
    name: str,
    prepared: Path,
    out: Path,
    diffusion: Path | None = None,
    plots_dir: Path | None = None,
    split_name: str = "train",
) -> dict[str, Any]:
    """Build, export and verify the store at ``out``; draw figures into ``plots_dir``. Returns the verify report."""
    from pagstore.shards import export_webdataset
    from pagstore.verify import verify_store

    common = load_section(params_path, "distill.common", DistillCommon)
    if name == "sbg" and diffusion is None:
        raise ConfigError("--source sbg needs --diffusion <checkpoint>")
    if name == "nn" and split_name != "train":
        # NN excludes "itself" by training-set index, which means nothing for samples of another split.
        raise ConfigError("--source nn distils the train split only (its self-exclusion uses train indices)")
    recipe = SourceRecipe(name, source_params(params_path, name), str(prepared / "train.npz"), common.seed,
                          str(diffusion) if name == "sbg" else None, common.device, common.precision)
    split = load_split(prepared / f"{split_name}.npz")
    indices = None
    if split_name == "test":
        indices = np.arange(min(load_section(params_path, "distill.test", DistillTest).num_test, len(split)))
    if _is_complete_store(out):
        # DVC reran this stage because a dependency changed (code, data, params): a finished store from
        # before must be redone, not "resumed". Only an unfinished store (an interrupted run) resumes.
        print(f"{out}: replacing the finished store of a previous run")
        shutil.rmtree(out)
    source = recipe()
    result = distill(out, split, recipe, indices=indices, samples_per_shard=common.samples_per_shard,
                     grad_dtype=common.grad_dtype, batch_size=common.batch_size, scheduler=common.scheduler,
                     workers=common.workers, split_name=split_name, source=source,
                     replace_mismatched=True)
    print(f"distill {name}: {len(result.shards_computed)}/{result.num_shards} shards in {result.seconds:.1f} s")
    export_webdataset(out)
    report = verify_store(out)
    if not report.ok:
        raise SystemExit(f"{out}: store verification failed: {report.to_dict()}")
    if plots_dir is not None:
        draw(load_section(params_path, "distill.plots", DistillPlots), name, out, split, source, plots_dir)
    return report.to_dict()


def _is_complete_store(path: Path) -> bool:
    from pagstore.store import open_store

    if not path.exists():
        return False
    try:
        return open_store(path).is_complete()
    except ValueError:  # StoreError, SpecError
        return False  # not a readable store: distill() reports or replaces it


def draw(cfg: DistillPlots, name: str, store_path: Path, split: PreparedSplit, source: Any, plots_dir: Path) -> None:
    """``<plots_dir>/<name>.png`` (samples and their stored gradients) and, for SBG, ``sbg_t_sweep.png``."""
    from pagstore.store import open_store

    store = open_store(store_path)
    n = min(cfg.num_images, store.num_samples)
    images, labels, grads = store.read(np.arange(n))
    x = split.as_float(store.read_index(np.arange(n)))
    if split.pixel_space == "raw":
        if x.shape[1] == 2:
            pts = np.arange(min(store.num_samples, 200))
            _, lab, g = store.read(pts)
            plots.vector_field(split.as_float(store.read_index(pts)), lab, g.astype(np.float32),
                               plots_dir / f"{name}.png", f"{name} gradients")
        return
    plots.gradient_grid(x, grads.astype(np.float32), split.class_names, plots_dir / f"{name}.png",
                        f"{name}: samples and their {split.num_classes} target-class gradients",
                        [f"y={int(y)}" for y in labels])
    if name == "sbg":
        idx = store.read_index(np.arange(n))
        k = min(2, n)  # two images x len(t_sweep) rows keep the figure readable
        by_t = {t: source.at_timestep(t).compute(x[:k], labels[:k], idx[:k]) for t in cfg.t_sweep}
        plots.t_sweep(x[:k], by_t, split.class_names, plots_dir / "sbg_t_sweep.png")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", type=Path, required=True, help="pipeline.yaml")
    ap.add_argument("--source", required=True, choices=sorted(SOURCES))
    ap.add_argument("--prepared", type=Path, required=True, help="prepared data dir (train.npz, test.npz)")
    ap.add_argument("--diffusion", type=Path, default=None, help="diffusion checkpoint (sbg only)")
    ap.add_argument("--out", type=Path, required=True, help="store directory to write")
    ap.add_argument("--plots", type=Path, default=None, help="directory for the figures")
    ap.add_argument("--split", choices=["train", "test"], default="train")
    args = ap.parse_args(argv)
    try:
        run_distill(args.params, args.source, args.prepared, args.out, args.diffusion, args.plots, args.split)
    except ConfigError as exc:
        sys.exit(f"distill: {exc}")


if __name__ == "__main__":
    main()
