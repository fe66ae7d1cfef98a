"""The external_models section: strict entries, report rows labelled external (or listed as missing)."""

from __future__ import annotations

import json

import pytest

from pagstore.config import ConfigError, from_dict
from pagstore.evaluation.results import ReportParams, build_report
from pagstore.interop.external import ExternalModel, external_names


def test_entries_are_checked_strictly():
    ok = from_dict(ExternalModel, {"checkpoint": "a.pt", "layout": "pag-rob", "arch": "resnet18"}, "external_models.a")
    assert ok.paper_row is None
    with pytest.raises(ConfigError, match="external_models.a: arch must be one of .*'resnet18'.* got 'vit'"):
        from_dict(ExternalModel, {"checkpoint": "a.pt", "layout": "pag-rob", "arch": "vit"}, "external_models.a")
    with pytest.raises(ConfigError, match="unknown key.*'ckpt'"):
        from_dict(ExternalModel, {"ckpt": "a.pt", "layout": "pag-rob", "arch": "resnet18"}, "external_models.a")
    assert external_names({"external_models": {}}) == [] and external_names({}) == []


def test_report_rows_of_external_models(tmp_path):
    pipeline = {"train": {"methods": {}, "plain_methods": {}}, "profile": "cifar10",
                "external_models": {"sbg-rn18": {}, "cm-rn18": {}}}
    metrics = {"clean_accuracy": 0.5, "num_images": 3, "robust_accuracy": {"aa_l2": 0.25},
               "checkpoint": {"meta": {"model": {"name": "resnet18"}}}}
    (tmp_path / "external-sbg-rn18.json").write_text(json.dumps(metrics))
    md, report, rows = build_report(ReportParams(), pipeline, tmp_path, None)
    assert [r["method"] for r in rows] == ["sbg-rn18 (external)"] and rows[0]["external"] is True
    assert "| sbg-rn18 (external) | 50.0 | 25.0 |" in md and "SBG (ResNet-18" in md
    assert report["missing"] == ["cm-rn18 (external)"]
