"""Bare improved-diffusion state_dicts + original flags -> our checkpoint, loadable by load_checkpoint."""

from __future__ import annotations

import pytest
import torch

from pagstore.improved_diffusion.checkpoint import load_checkpoint
from pagstore.interop import InteropError
from pagstore.interop.diffusion_import import import_diffusion, parse_flags
from tests.interop.fakes import DIFFUSION_FLAGS, Payload, make_diffusion_state


def test_original_flags_parse_like_the_original():
    cfg, ignored = parse_flags(["--image_size", "32", "--learn_sigma", "True", "--use_kl=false", "--dropout", "0.3",
                                "--noise_schedule", "cosine", "--lr", "1e-4"])
    assert cfg == {"image_size": 32, "learn_sigma": True, "use_kl": False, "dropout": 0.3, "noise_schedule": "cosine"}
    assert ignored == {"lr": "1e-4"}
    with pytest.raises(InteropError, match="unknown flag --image-size"):
        parse_flags(["--image-size", "32"])
    with pytest.raises(InteropError, match="--learn_sigma expects a boolean, got 'maybe'"):
        parse_flags(["--learn_sigma", "maybe"])


@pytest.mark.parametrize("num_classes", [None, 11])
def test_unconditional_and_conditional_models_load_with_the_same_outputs(tmp_path, num_classes):
    flags = DIFFUSION_FLAGS + (["--class_cond", "True"] if num_classes else [])
    src = make_diffusion_state(tmp_path / "sd.pt", num_classes=num_classes)
    info = import_diffusion(tmp_path / "sd.pt", tmp_path / "ckpt.pt", flags)
    model, diffusion, meta = load_checkpoint(tmp_path / "ckpt.pt")
    assert meta["num_classes"] == num_classes and info["config"]["learn_sigma"] is True
    assert diffusion.num_timesteps == 100 and meta["imported_from"]["file"] == "sd.pt"
    x, t = torch.randn(2, 3, 32, 32), torch.tensor([3.0, 70.0])
    y = torch.tensor([0, 10]) if num_classes else None
    with torch.no_grad():
        torch.testing.assert_close(model(x, t, y), src(x, t, y), rtol=0, atol=0)


def test_flag_state_mismatch_names_the_first_key_and_both_shapes(tmp_path):
    make_diffusion_state(tmp_path / "sd.pt")
    flags = [f if f != "32" or i != 3 else "64" for i, f in enumerate(DIFFUSION_FLAGS)]  # --num_channels 64
    assert flags[2:4] == ["--num_channels", "64"]
    with pytest.raises(InteropError, match=r"sd\.pt: key 'time_embed.0.weight': the file has shape \(128, 32\), "
                                           r"the flags give \(256, 64\)"):
        import_diffusion(tmp_path / "sd.pt", tmp_path / "o.pt", flags)
    with pytest.raises(InteropError, match=r"key 'out.2.weight': the file has shape \(6, 32, 3, 3\), the flags "
                                           r"give \(3, 32, 3, 3\)"):
        no_sigma = [f if f != "True" else "False" for f in DIFFUSION_FLAGS]  # --learn_sigma False
        import_diffusion(tmp_path / "sd.pt", tmp_path / "o.pt", no_sigma)
    make_diffusion_state(tmp_path / "cond.pt", num_classes=5)
    with pytest.raises(InteropError, match=r"cond\.pt: the state_dict has 'label_emb.weight'.*--class_cond True"):
        import_diffusion(tmp_path / "cond.pt", tmp_path / "o.pt", DIFFUSION_FLAGS)
    torch.save({"x": Payload()}, tmp_path / "evil.pt")
    with pytest.raises(InteropError, match=r"evil\.pt: not a safe torch.save file"):
        import_diffusion(tmp_path / "evil.pt", tmp_path / "o.pt", DIFFUSION_FLAGS)
    assert not (tmp_path / "o.pt").exists()
