import json

import pytest
import yaml

from pagstore.evaluation.paper import paper_row_for
from pagstore.evaluation.report import ReportError, read_metrics
from stages.report import ReportParams, build_report, lambda_groups, main, method_names
from tests.stages.report_fixtures import TOY, TRAIN, write_eval_dir

PIPELINE = {"profile": "digits", "datasets": {"digits": {"eval": {"eps_l2": 1.0, "eps_linf": 0.1,
                                                                   "large_eps_l2": 2.0, "large_eps_linf": 0.2},
                                         "recipe": {"train_diffusion": {}, "distill": {}, "train": {}}}},
            "train": TRAIN}


def table_line(md, method):
    return next(line for line in md.splitlines() if line.startswith(f"| {method} |"))


def test_table_has_our_numbers_beside_the_papers(tmp_path):
    eval_dir = write_eval_dir(tmp_path)
    md, report, rows = build_report(ReportParams(), PIPELINE, eval_dir, None)
    assert [r["method"] for r in rows] == ["pag-sbg", "vanilla", "at-l2"]
    sbg = [c.strip() for c in table_line(md, "pag-sbg").split("|")[1:-1]]
    assert sbg[:8] == ["pag-sbg", "94.0", "55.0", "31.0", "12.0", "2.0", "0.400", "0.350"]
    assert sbg[8].startswith("SBG (ResNet-18") and sbg[9:] == ["78.56", "55.39", "23.97", "30.43", "1.92"]
    van = [c.strip() for c in table_line(md, "vanilla").split("|")[1:-1]]
    assert van[1:4] == ["98.0", "12.0", "8.0"] and van[9:12] == ["93.61", "0.00", "0.00"]
    assert van[12:] == ["-", "-"]  # the paper has no large-eps numbers for vanilla
    at = [c.strip() for c in table_line(md, "at-l2").split("|")[1:-1]]
    assert at[9:] == ["86.79", "60.82", "19.63", "18.81", "0.50"]
    # Settings of both sides are stated.
    assert "`digits`" in md and "16x16x1" in md and "CIFAR-10 32x32x3" in md and "L2 eps 1.0" in md
    assert "Not evaluated (no metrics file): at-linf." in md and report["missing"] == ["at-linf"]
    assert report["models"]["pag-sbg"]["aa_l2"] == 0.55
    # Across the three models robust accuracy rises with alignment.
    assert report["correlation"]["pearson"] > 0.9 and report["correlation"]["num_models"] == 3
    assert report["correlations"]["aa_l2~sbg_cos_mean"] == report["correlation"]["pearson"]
    assert len(report["correlations"]) == 8 and report["correlations"]["aa_linf_large~etmann_mean"] is not None
    assert "| pag-sbg | - | - | 0.125 | - |" in md  # corruptions: median minimal blur severity (3rd column)
    assert "2-D toy" not in md


def test_toy_section_when_toy_metrics_exist(tmp_path):
    toy = tmp_path / "toy.json"
    toy.write_text(json.dumps(TOY))
    md, report, _ = build_report(ReportParams(), PIPELINE, write_eval_dir(tmp_path), toy)
    assert "## 2-D toy" in md
    # no grid search in this fixture: the robust column is empty and PGD stays as the upper bound
    assert "| vanilla | 100 +- 0 | - | 1.5 +- 0.7 | 100.0 | 0.0 |" in md
    assert "| nn-pag | 99.5 +- 0.5 | - | 70.25 +- 3.5 | 100.0 | 75.5 |" in md
    assert "PGD (upper bound)" in md and "50-image smoke run" in md and "reports/evidence.md" in md
    assert "| paper |" not in md and "| params |" not in md and "| seconds |" not in md
    assert report["toy"] == TOY
    # The nested layout {"clean": {"mean", "std"}} reads the same.
    toy.write_text(json.dumps({"nn-pag": {"clean": {"mean": 99.5, "std": 0.5}, "robust": {"mean": 70.25}}}))
    md, _, _ = build_report(ReportParams(), PIPELINE, tmp_path / "metrics" / "eval", toy)
    assert "| nn-pag | 99.5 +- 0.5 | - | 70.25 | 100.0 | 75.5 |" in md
    # with the exhaustive search the robust column is the grid figure, PGD beside it
    toy.write_text(json.dumps({"nn-pag": {"clean_mean": 100.0, "robust_mean": 73.9, "robust_grid_mean": 59.9,
                                          "robust_grid_std": 8.1}}))
    md, _, _ = build_report(ReportParams(), PIPELINE, tmp_path / "metrics" / "eval", toy)
    assert "| nn-pag | 100 | 59.9 +- 8.1 | 73.9 | 100.0 | 75.5 |" in md


def test_main_writes_markdown_json_and_plot(tmp_path):
    write_eval_dir(tmp_path)
    params = {**PIPELINE, "report": {"alignment_metric": "etmann_mean", "robust_metric": "aa_linf",
                                     "lambda_sweep": {"image_index": 0, "norm": "L2", "eps_factor": 1.0, "steps": 2}}}
    (tmp_path / "pipeline.yaml").write_text(yaml.safe_dump(params))
    main(["--params", str(tmp_path / "pipeline.yaml"), "--eval-dir", str(tmp_path / "metrics" / "eval"),
          "--toy", str(tmp_path / "absent.json"), "--markdown", str(tmp_path / "reports" / "results.md"),
          "--details", str(tmp_path / "metrics" / "report.json"), "--plots", str(tmp_path / "plots" / "report")])
    md = (tmp_path / "reports" / "results.md").read_text()
    assert "| at-l2 | 95.0 |" in md and "](../plots/report/robust_vs_alignment.png)" in md
    report = json.loads((tmp_path / "metrics" / "report.json").read_text())
    assert report["correlation"]["x"] == "etmann_mean" and report["lambda_sweeps"] == []
    assert (tmp_path / "plots" / "report" / "robust_vs_alignment.png").read_bytes()[:4] == b"\x89PNG"


def test_method_mapping_to_paper_rows():
    names = {m: (paper_row_for(m).name if paper_row_for(m) else None) for m in [
        "vanilla", "pag-oi", "pag-cm", "pag-nn", "pag-sbg", "at-linf", "at-l2", "at-l2-pag-sbg", "trades-linf",
        "trades-linf-pag-sbg", "mystery"]}
    assert names == {"vanilla": "Vanilla", "pag-oi": "OI", "pag-cm": "CM", "pag-nn": "NN", "pag-sbg": "SBG",
                     "at-linf": "AT Linf", "at-l2": "AT L2", "at-l2-pag-sbg": "AT L2 + PAG (SBG)",
                     "trades-linf": "TRADES Linf", "trades-linf-pag-sbg": "TRADES Linf + PAG (SBG)", "mystery": None}


def test_lambda_groups_and_method_names():
    train = {"methods": {"sbg-a": {"objective": "pag", "store": "sbg", "lam": 0.5},
                         "sbg-b": {"objective": "pag", "store": "sbg", "lam": 1.5},
                         "cm": {"objective": "pag", "store": "cm", "lam": 0.2}},
             "plain_methods": {"vanilla": {"objective": "ce"}}}
    assert lambda_groups({"train": train}) == {"objective=pag, store=sbg": [(0.5, "sbg-a"), (1.5, "sbg-b")]}
    assert method_names({"train": train}) == ["sbg-a", "sbg-b", "cm", "vanilla"]


def test_bad_metrics_file_is_named(tmp_path):
    bad = tmp_path / "x.json"
    bad.write_text("{not json")
    with pytest.raises(ReportError, match="x.json: not valid JSON"):
        read_metrics(bad)
    with pytest.raises(ReportError, match="not found"):
        read_metrics(tmp_path / "missing.json")


def test_lambda_sweep_picture_from_checkpoints(tmp_path):
    import torch

    from pagstore.models import build_model
    from pagstore.training.checkpoint import save_checkpoint
    from tests.evaluation.tiny import NUM_CLASSES, make_split

    make_split(4).save(tmp_path / "prepared" / "test.npz")
    train = {"methods": {"sbg-lo": {"objective": "pag", "store": "sbg", "lam": 0.5},
                         "sbg-hi": {"objective": "pag", "store": "sbg", "lam": 2.0}}, "plain_methods": {}}
    cfg = {"name": "small-cnn", "num_classes": NUM_CLASSES, "sample_shape": [1, 8, 8], "kwargs": {"width": 4}}
    for seed, method in enumerate(train["methods"]):
        torch.manual_seed(seed)
        model = build_model("small-cnn", NUM_CLASSES, (1, 8, 8), width=4)
        save_checkpoint(tmp_path / "models" / method / "checkpoint.pt", model, cfg, {"method": method})
    params = {**PIPELINE, "train": train,
              "report": {"alignment_metric": "sbg_cos_mean", "robust_metric": "aa_l2",
                         "lambda_sweep": {"image_index": 1, "norm": "L2", "eps_factor": 1.0, "steps": 2}}}
    (tmp_path / "pipeline.yaml").write_text(yaml.safe_dump(params))
    (tmp_path / "eval").mkdir()
    main(["--params", str(tmp_path / "pipeline.yaml"), "--eval-dir", str(tmp_path / "eval"),
          "--models", str(tmp_path / "models"), "--prepared", str(tmp_path / "prepared"),
          "--markdown", str(tmp_path / "results.md"), "--details", str(tmp_path / "report.json"),
          "--plots", str(tmp_path / "plots")])
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["lambda_sweeps"] == ["lambda_sweep_0.png"]
    assert (tmp_path / "plots" / "lambda_sweep_0.png").read_bytes()[:4] == b"\x89PNG"
    assert "](plots/lambda_sweep_0.png)" in (tmp_path / "results.md").read_text()
    assert sorted(report["missing"]) == ["sbg-hi", "sbg-lo"]
