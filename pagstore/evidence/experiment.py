"""The evidence experiment's shared state and its unit kinds: train one (method, seed), evaluate it
(AutoAttack flags on the fixed subset + every alignment metric), APGD-probe it, distill a store."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pagstore.config import load_section, read_yaml
from pagstore.profiles import effective_params, load_effective
from pagstore.evidence.config import EvidenceParams
from pagstore.evidence.units import UnitCache
from pagstore.training.objectives import ObjectiveSpec


class Experiment:
    """State shared by the units: params, recipe, budgets, the fixed image subset and the metric data."""

    def __init__(self, params_path: Path, root: Path = Path(".")) -> None:
        from pagstore.data.prepared import load_split
        from pagstore.data.profile import EvalBudget
        from pagstore.training.config import TrainSection

        self.root = Path(root)
        self.params_path = Path(params_path)
        self.p = load_section(self.params_path, "evidence", EvidenceParams)
        self.base_path = self.root / self.p.base_params
        # the effective recipe: the profile's recipe merged under the stage sections, as the stages see it
        self.common = load_effective(self.base_path, "train", TrainSection).common
        self.profile = read_yaml(self.base_path).get("profile")
        self.budget = load_section(self.base_path, f"datasets.{self.profile}.eval", EvalBudget)
        paths = self.p.paths
        self.prepared = self.root / paths.prepared
        self.stores = self.root / paths.stores
        self.work = self.root / paths.work
        self.cache = UnitCache(self.work)
        self._ckpt_keys: dict[Path, str] = {}
        self._retrain: dict[Path, Any] = {}
        self.train = load_split(self.prepared / "train.npz")
        test = load_split(self.prepared / "test.npz")
        n = min(self.p.eval.num_images, len(test))
        idx = np.sort(np.random.default_rng(self.p.eval.subset_seed).permutation(len(test))[:n])
        self.subset = idx
        self.x, self.y = torch.from_numpy(test.as_float(idx)), torch.from_numpy(test.labels[idx])
        self.test_fingerprint = test.fingerprint()

    # -- data for the alignment metrics ---------------------------------------------------------------
    def metric_data(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        from pagstore.evaluation.alignment import load_reference_gradients

        sbg_test = self.root / self.p.paths.sbg_test
        if sbg_test.exists():
            x, y, ref, _ = load_reference_gradients(str(sbg_test), self.p.eval.metric_images)
            return x, y, ref
        k = self.p.eval.metric_images
        return self.x[:k], self.y[:k], None

    def eps(self, norm: str) -> float:
        return self.budget.eps_l2 if norm == "L2" else self.budget.eps_linf

    # -- units ------------------------------------------------------------------------------------------
    def trained(self, name: str, spec: ObjectiveSpec, seed: int, stores: Path | None = None) -> Path:
        """Train (or reuse) ``name`` at ``seed``; returns its checkpoint path."""
        from pagstore.training.run import train_method

        out = self.work / "models" / name / f"s{seed}"
        common = dataclasses.replace(self.common, seed=seed)
        stores = stores or self.stores

        def fn() -> dict[str, Any]:
            return train_method(name, spec, common, self.prepared, stores, out, out / "train.json", out / "train.csv")

        rec = self.cache.get(f"train-{name}-s{seed}", train_unit_key(spec, common, stores), fn)
        ckpt = out / "checkpoint.pt"
        # Later units key on the training configuration, not the file: committed unit results stay valid
        # in a fresh clone without the (uncommitted) checkpoints, which are retrained only if a unit needs one.
        self._ckpt_keys[ckpt], self._retrain[ckpt] = rec["key"], fn
        return ckpt

    def ckpt_key(self, ckpt: Path) -> str:
        """The training unit's key of ``ckpt`` (or the file's size and mtime for checkpoints made elsewhere)."""
        return self._ckpt_keys.get(ckpt) or _file_key(ckpt)

    def load(self, ckpt: Path):  # noqa: ANN201
        """(model in eval mode, meta) of ``ckpt``, retraining it first if its file is gone."""
        from pagstore.training.checkpoint import load_classifier

        if not ckpt.is_file() and ckpt in self._retrain:
            self._retrain[ckpt]()
        return load_classifier(ckpt)

    def evaluated(self, name: str, seed: int, ckpt: Path, keep_adv: bool = False) -> dict[str, Any]:
        """Clean and AutoAttack per-image flags on the subset, plus every alignment metric."""
        from pagstore.evaluation.alignment import alignment_metrics
        from pagstore.evaluation.autoattack import run_autoattack
        from pagstore.evaluation.manifold import extra_alignment_metrics
        from pagstore.training.controls import input_grad_norm

        ev = self.p.eval

        def fn() -> dict[str, Any]:
            model, _ = self.load(ckpt)
            with torch.no_grad():
                clean = (model(self.x).argmax(1) == self.y).tolist()
            out: dict[str, Any] = {"clean": clean, "aa": {}}
            for norm in ev.norms:
                res = run_autoattack(model, self.x, self.y, norm=norm, eps=self.eps(norm), batch_size=ev.batch_size,
                                     seed=0)
                with torch.no_grad():
                    flags = (model(res.x_adv).argmax(1) == self.y) & torch.tensor(clean)
                out["aa"][norm] = flags.tolist()
                if keep_adv:
                    adv_dir = self.work / "adv"
                    adv_dir.mkdir(parents=True, exist_ok=True)
                    torch.save(res.x_adv, adv_dir / f"{name}-s{seed}-{norm}.pt")
            xm, ym, ref = self.metric_data()
            tx, ty = torch.from_numpy(self.train.as_float()), torch.from_numpy(self.train.labels)
            out["metrics"] = {**alignment_metrics(model, xm, ym, ref),
                              **extra_alignment_metrics(model, xm, ym, tx, ty, k=min(ev.manifold_k, len(tx)),
                                                        dim=min(ev.manifold_dim, ev.manifold_k, len(tx))),
                              "input_grad_norm": input_grad_norm(model, xm, ym)}
            return out

        # n_boot only shapes the report's intervals: changing it must not redo any AutoAttack
        settings = {k: v for k, v in dataclasses.asdict(ev).items() if k != "n_boot"}
        key = {"ckpt": self.ckpt_key(ckpt), "eval": settings, "subset": self.subset.tolist(), "keep_adv": keep_adv}
        return self.cache.get(f"eval-{name}-s{seed}", key, fn)["result"]

    def apgd_probe(self, name: str, ckpt: Path) -> dict[str, float]:
        """Clean and APGD-CE accuracy (%) on the subset (the sweeps' cheaper attack)."""
        from pagstore.evaluation.apgd_sweep import apgd_accuracy

        sw = self.p.sweeps

        def fn() -> dict[str, float]:
            model, _ = self.load(ckpt)
            with torch.no_grad():
                clean = (model(self.x).argmax(1) == self.y).float().mean().item() * 100
            adv = apgd_accuracy(model, self.x, self.y, norm=sw.norm, eps=self.eps(sw.norm), n_iter=sw.apgd_iter) * 100
            return {"clean": clean, "apgd": adv}

        key = {"ckpt": self.ckpt_key(ckpt), "norm": sw.norm, "n_iter": sw.apgd_iter, "subset": self.subset.tolist()}
        return self.cache.get(f"apgd-{name}", key, fn)["result"]

    def distilled(self, name: str, source: str, overrides: dict[str, Any], checkpoint: Path | None) -> Path:
        """A store of ``source`` with ``distill.sources.<source>`` of the base params updated by ``overrides``
        (e.g. another SBG t), at ``<work>/stores/<name>/<source>``; returns ``<work>/stores/<name>``."""
        from pagstore.distill.build import build_store
        from pagstore.distill.config import DistillCommon

        base = effective_params(self.base_path)["distill"]
        common = load_effective(self.base_path, "distill.common", DistillCommon)
        src = {**base["sources"].get(source, {}), **overrides}
        stores = self.work / "stores" / name
        kw = {"diffusion": checkpoint} if source == "sbg" else {"classifier": checkpoint}

        def fn() -> dict[str, Any]:
            return {"ok": build_store(source, src, common, self.prepared, stores / source, **kw)["ok"]}

        key = {"distill": common, "source": src, "ckpt": _file_key(checkpoint) if checkpoint else None}
        self.cache.get(f"distill-{name}", key, fn)
        return stores


def train_unit_key(spec: ObjectiveSpec, common: Any, stores: Path) -> dict[str, Any]:
    """The configuration a training unit is cached under: the whole method spec (defaults included), the
    recipe with its seed, and the stores directory."""
    return {"spec": spec, "common": common, "stores": str(stores)}


def _file_key(path: Path) -> str:
    st = Path(path).stat()
    return f"{path}:{st.st_size}:{st.st_mtime_ns}"
