"""The committed evidence run stays the cache of the committed params.

`make evidence` reuses a unit only when its configuration key matches. A change of a default (for example
issue 18 making `pag_bn: frozen` the default) silently changes the key of every method spec that relies on
it, so the next `make evidence` would retrain everything and the committed report would no longer
describe what the params file says. This test recomputes each committed training unit's key from
evidence/params.yaml and pipeline.yaml as the experiment does, and fails naming the units that moved.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from pagstore.config import load_section
from pagstore.evidence.config import EvidenceParams
from pagstore.evidence.experiment import train_unit_key
from pagstore.evidence.units import UnitCache, config_key
from pagstore.profiles import load_effective
from pagstore.training.config import TrainSection

ROOT = Path(__file__).resolve().parents[2]
PARAMS = ROOT / "evidence" / "params.yaml"


def _expected_training_units(p: EvidenceParams, results: dict) -> dict[str, tuple[object, int]]:
    """unit name -> (method spec, seed) for every training unit of the main methods, gradnorm and sweeps."""
    out: dict[str, tuple[object, int]] = {}
    for name, spec in p.methods.items():
        for seed in p.seeds:
            out[f"train-{name}-s{seed}"] = (spec, seed)
    if p.gradnorm is not None:
        cal = p.gradnorm
        for lam in cal.lams:
            out[f"train-{cal.method}@lam{lam:g}-s{cal.seed}"] = (p.gradnorm_spec(lam), cal.seed)
        for seed in p.seeds:
            out[f"train-{cal.method}-s{seed}"] = (p.gradnorm_spec(results["gradnorm_calibration"]["lam"]), seed)
    for name, lams in p.sweeps.lam.items():
        for lam in lams:
            spec = dataclasses.replace(p.methods[name], lam=float(lam))
            if spec != p.methods[name]:
                out[f"train-{name}@lam{lam:g}-s{p.sweeps.seed}"] = (spec, p.sweeps.seed)
    return out


@pytest.mark.skipif(not (ROOT / "evidence" / "run" / "results.json").is_file(), reason="no committed evidence run")
def test_committed_training_units_match_the_committed_params() -> None:
    p = load_section(PARAMS, "evidence", EvidenceParams)
    results = json.loads((ROOT / p.paths.work / "results.json").read_text())
    common = load_effective(ROOT / p.base_params, "train", TrainSection).common
    cache = UnitCache(ROOT / p.paths.work)
    expected = _expected_training_units(p, results)
    assert len(expected) >= len(p.methods) * len(p.seeds)
    moved, missing = [], []
    for unit, (spec, seed) in expected.items():
        f = cache.path(unit)
        if not f.is_file():
            missing.append(unit)
            continue
        key = config_key(train_unit_key(spec, dataclasses.replace(common, seed=seed), Path(".") / p.paths.stores))
        if json.loads(f.read_text())["key"] != key:
            moved.append(unit)
    assert not missing, f"committed evidence run lacks units {missing}"
    assert not moved, (f"{len(moved)} committed evidence units no longer match evidence/params.yaml + pipeline.yaml "
                       f"(a changed default or recipe key?): {moved[:5]}; pin the old value in evidence/params.yaml "
                       f"or rerun `make evidence`")


def test_the_check_sees_a_changed_default() -> None:
    """The same keys under a flipped pag_bn differ: the check above can fail."""
    p = load_section(PARAMS, "evidence", EvidenceParams)
    common = load_effective(ROOT / p.base_params, "train", TrainSection).common
    spec = p.methods["pag-sbg"]
    flipped = dataclasses.replace(spec, pag_bn="frozen" if spec.pag_bn == "batch" else "batch")
    keys = {config_key(train_unit_key(s, common, Path("stores"))) for s in (spec, flipped)}
    assert len(keys) == 2
