"""Build one gradient store as the distill stages do: replace a finished store, distil (resuming an
unfinished one), export the webdataset shards, verify, and draw the figures."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np

from pagstore.config import ConfigError
from pagstore.data.prepared import PreparedSplit, load_split
from pagstore.distill import plots
from pagstore.distill.config import DistillCommon, DistillPlots
from pagstore.distill.engine import distill
from pagstore.distill.recipe import SourceRecipe


def build_store(name: str, source_params: dict[str, Any], common: DistillCommon, prepared: Path, out: Path,
                diffusion: Path | None = None, plots_cfg: DistillPlots | None = None,
                plots_dir: Path | None = None, split_name: str = "train",
                num_test: int | None = None, classifier: Path | None = None) -> dict[str, Any]:
    """Build, export and verify the store of source ``name`` at ``out``; return the verify report as a dict.

    ``prepared`` holds ``train.npz`` / ``test.npz``; ``split_name`` "test" distils the first ``num_test``
    test images. ``classifier``: the noisy-classifier checkpoint of source ``nac``. With ``plots_cfg`` and
    ``plots_dir`` the figures are drawn into ``plots_dir``.
    """
    from pagstore.shards import export_webdataset
    from pagstore.verify import verify_store

    if name == "sbg" and diffusion is None:
        raise ConfigError("--source sbg needs --diffusion <checkpoint>")
    if name == "nn" and split_name != "train":
        # NN excludes "itself" by training-set index, which means nothing for samples of another split.
        raise ConfigError("--source nn distils the train split only (its self-exclusion uses train indices)")
    if name == "nac" and classifier is None:
        raise ConfigError("--source nac needs --classifier <noisy classifier checkpoint>")
    ckpt = {"sbg": diffusion, "nac": classifier}.get(name)  # nac: the noisy classifier (issue 16)
    recipe = SourceRecipe(name, source_params, str(prepared / "train.npz"), common.seed,
                          str(ckpt) if ckpt is not None else None, common.device, common.precision)
    split = load_split(prepared / f"{split_name}.npz")
    indices = None
    if split_name == "test":
        indices = np.arange(min(num_test if num_test is not None else len(split), len(split)))
    if _is_complete_store(out):
        # DVC reran this stage because a dependency changed (code, data, params): a finished store from
        # before must be redone, not "resumed". Only an unfinished store (an interrupted run) resumes.
        print(f"{out}: replacing the finished store of a previous run")
        shutil.rmtree(out)
    source = recipe()
    result = distill(out, split, recipe, indices=indices, samples_per_shard=common.samples_per_shard,
                     grad_dtype=common.grad_dtype, batch_size=common.batch_size, scheduler=common.scheduler,
                     workers=common.workers, split_name=split_name, source=source,
                     replace_mismatched=True,
                     # the test store is evaluation's reference for every class: always all C
                     num_target_classes=common.num_target_classes if split_name == "train" else None,
                     grad_codec=common.grad_codec, class_seed=common.seed, grad_compression=common.grad_compression)
    print(f"distill {name}: {len(result.shards_computed)}/{result.num_shards} shards in {result.seconds:.1f} s")
    if common.export_webdataset:
        export_webdataset(out)
    report = verify_store(out)
    if not report.ok:
        raise SystemExit(f"{out}: store verification failed: {report.to_dict()}")
    if plots_cfg is not None and plots_dir is not None:
        draw(plots_cfg, name, out, split, source, plots_dir)
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
    names = [split.class_names[c] for c in store.read_classes([0])[0]]  # titles: row 0's classes (all C if K = C)
    plots.gradient_grid(x, grads.astype(np.float32), names, plots_dir / f"{name}.png",
                        f"{name}: samples and their {grads.shape[1]} target-class gradients",
                        [f"y={int(y)}" for y in labels])
    if name == "sbg":
        idx = store.read_index(np.arange(n))
        k = min(2, n)  # two images x len(t_sweep) rows keep the figure readable
        by_t = {t: source.at_timestep(t).compute(x[:k], labels[:k], idx[:k]) for t in cfg.t_sweep}
        plots.t_sweep(x[:k], by_t, split.class_names, plots_dir / "sbg_t_sweep.png")
