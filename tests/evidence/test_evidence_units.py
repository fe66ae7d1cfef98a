"""The evidence config's checks and the unit cache's reuse rule."""

from __future__ import annotations

import pytest
import yaml

from pagstore.config import ConfigError, load_section
from pagstore.evidence.config import EvidenceParams
from pagstore.evidence.units import UnitCache
from tests.helpers.doc_commands import REPO


def test_committed_params_files_load():
    for name in ("params.yaml", "tiny.yaml"):
        p = load_section(REPO / "evidence" / name, "evidence", EvidenceParams)
        assert len(p.seeds) >= 2 and p.comparisons
    full = load_section(REPO / "evidence/params.yaml", "evidence", EvidenceParams)
    assert len(full.seeds) >= 3 and full.eval.num_images >= 200  # the minimums


@pytest.mark.parametrize("patch,message", [
    ({"comparisons": [{"claim": "x", "a": "pag-sbg", "b": "nope"}]}, "names 'nope'"),
    ({"sweeps": {"lam": {"nope": [1.0]}}}, "sweeps.lam: 'nope'"),
    ({"seeds": [0, 0]}, "distinct"),
    ({"eval": {"norms": ["L1"]}}, "norms"),
])
def test_bad_evidence_params_name_the_key(tmp_path, patch, message):
    raw = yaml.safe_load((REPO / "evidence/tiny.yaml").read_text())
    raw["evidence"].update(patch)
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises((ConfigError, ValueError), match=message):
        load_section(tmp_path / "p.yaml", "evidence", EvidenceParams)


def test_unit_cache_reuses_only_a_matching_key(tmp_path):
    cache = UnitCache(tmp_path)
    calls = []

    def fn():
        calls.append(1)
        return {"v": len(calls)}

    assert cache.get("train-a-s0", {"lam": 1}, fn)["result"] == {"v": 1}
    assert cache.get("train-a-s0", {"lam": 1}, fn)["result"] == {"v": 1} and len(calls) == 1
    assert cache.get("train-a-s0", {"lam": 2}, fn)["result"] == {"v": 2}  # changed setting: redone
    rec = UnitCache(tmp_path).get("train-a-s0", {"lam": 2}, fn)
    assert rec["result"] == {"v": 2} and rec["seconds"] >= 0 and len(calls) == 2


def test_stage_reports_a_bad_params_file_in_one_line(tmp_path):
    from stages.evidence import main

    raw = yaml.safe_load((REPO / "evidence/tiny.yaml").read_text())
    raw["evidence"]["seeds"] = [0, 0]
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(SystemExit, match="distinct"):
        main(["--params", str(tmp_path / "p.yaml"), "--root", str(tmp_path), "--skip-upstream"])
