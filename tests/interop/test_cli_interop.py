"""The `pagstore import ...` verbs and `pagstore export --format pag-rob` through the real CLI (CliRunner)."""

from __future__ import annotations

import torch
from typer.testing import CliRunner

from pagstore.cli import app
from pagstore.improved_diffusion.checkpoint import load_checkpoint
from tests.interop.fakes import DIFFUSION_FLAGS, Payload, make_diffusion_state, make_gradient_set, make_prepared

runner = CliRunner()


def test_import_pag_rob_refuses_a_hostile_file_in_one_line(tmp_path):
    make_prepared(tmp_path / "prep", n=8)
    torch.save([Payload()], tmp_path / "evil.pt")
    torch.save(torch.zeros(8, dtype=torch.int64), tmp_path / "l.pt")
    res = runner.invoke(app, ["import", "pag-rob", str(tmp_path / "evil.pt"), str(tmp_path / "l.pt"),
                              "--prepared", str(tmp_path / "prep"), "--out", str(tmp_path / "s")])
    assert res.exit_code == 2 and "pwned" not in res.output
    assert "evil.pt: not a safe torch.save file" in " ".join(res.output.split())
    res = runner.invoke(app, ["import", "pag-rob", str(tmp_path / "evil.pt"), str(tmp_path / "l.pt"),
                              "--prepared", str(tmp_path / "prep"), "--out", str(tmp_path / "s"),
                              "--pixel-space", "gray"])
    assert res.exit_code == 2 and "--pixel-space 'gray'" in res.output


def test_export_format_choice_and_default_webdataset(tmp_path):
    split = make_prepared(tmp_path / "prep", n=8)
    d, lab, _, _ = make_gradient_set(tmp_path / "rel", split)
    res = runner.invoke(app, ["import", "pag-rob", str(d), str(lab), "--prepared", str(tmp_path / "prep"),
                              "--out", str(tmp_path / "s")])
    assert res.exit_code == 0, res.output
    assert runner.invoke(app, ["export", str(tmp_path / "s")]).exit_code == 0  # webdataset, as before
    assert (tmp_path / "s/shards/index.json").is_file()
    res = runner.invoke(app, ["export", str(tmp_path / "s"), "--format", "pag-rob"])
    assert res.exit_code == 2 and "--format pag-rob needs --out DIR" in res.output
    res = runner.invoke(app, ["export", str(tmp_path / "s"), "--format", "zip", "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "expected webdataset or pag-rob" in res.output
    res = runner.invoke(app, ["export", str(tmp_path / "s"), "--format", "pag-rob", "--out", str(tmp_path / "o")])
    assert res.exit_code == 0 and (tmp_path / "o/c10_sbg_data.pt").is_file()


def test_import_diffusion_takes_the_original_flags_after_double_dash(tmp_path):
    make_diffusion_state(tmp_path / "sd.pt", num_classes=11)
    res = runner.invoke(app, ["import", "diffusion", str(tmp_path / "sd.pt"), "--out", str(tmp_path / "c.pt"),
                              "--", *DIFFUSION_FLAGS, "--class_cond", "True", "--lr", "1e-4"])
    assert res.exit_code == 0, res.output
    _, _, meta = load_checkpoint(tmp_path / "c.pt")
    assert meta["num_classes"] == 11 and meta["imported_from"]["ignored_flags"] == {"lr": "1e-4"}
    res = runner.invoke(app, ["import", "diffusion", str(tmp_path / "sd.pt"), "--out", str(tmp_path / "c2.pt"),
                              "--", *DIFFUSION_FLAGS, "--class_cond", "True", "--num_classes", "5"])
    assert res.exit_code == 2 and "label_emb.weight" in res.output
