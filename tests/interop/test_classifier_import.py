"""Official PAG-ROB classifiers -> our checkpoint: same logits, a card, refusals."""

from __future__ import annotations

import pytest
import torch

from pagstore.interop import InteropError
from pagstore.interop.classifier_import import import_classifier, map_resnet18_key
from pagstore.training.checkpoint import load_classifier
from tests.interop.fakes import Payload, make_official_classifier


def test_imported_resnet18_gives_the_official_logits_on_unit_images(tmp_path):
    official = make_official_classifier(tmp_path / "c10_sbg_rn18.pt")
    if not torch.cuda.is_available():  # the fake records CUDA storages, like the release
        with pytest.raises(RuntimeError, match="CUDA"):
            torch.load(tmp_path / "c10_sbg_rn18.pt", weights_only=True)
    card = import_classifier(tmp_path / "c10_sbg_rn18.pt", tmp_path / "ckpt.pt", arch="resnet18", num_classes=10)
    model, meta = load_classifier(tmp_path / "ckpt.pt")
    x = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        theirs = official((x - 0.5) / 0.5)  # their evaluation's input
        ours = model(x)
    assert theirs.abs().max() > 0.5 and (theirs[0] - theirs[1]).abs().max() > 1e-3  # non-trivial, input-dependent
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-5)
    assert meta["external"] == card and card["external"] is True and card["arch"] == "resnet18"
    import json
    assert json.loads((tmp_path / "ckpt.card.json").read_text()) == card
    import hashlib
    assert card["source_sha256"] == "sha256:" + hashlib.sha256((tmp_path / "c10_sbg_rn18.pt").read_bytes()).hexdigest()
    assert card["paper"]["row"] == "SBG" and card["paper"]["aa_l2"] == 55.39  # guessed from the file name


def test_key_mapping_of_every_official_name():
    assert map_resnet18_key("conv1.weight") == "net.stem.0.weight"
    assert map_resnet18_key("bn1.running_var") == "net.stem.1.running_var"
    assert map_resnet18_key("layer1.1.bn2.bias") == "net.layers.1.bn2.bias"
    assert map_resnet18_key("layer4.0.shortcut.1.weight") == "net.layers.6.shortcut.1.weight"
    assert map_resnet18_key("linear.bias") == "net.fc.bias"
    with pytest.raises(InteropError, match="unexpected key 'fc.weight'"):
        map_resnet18_key("fc.weight")


def test_wrong_class_count_hostile_file_and_missing_keys_are_refused(tmp_path, capsys):
    make_official_classifier(tmp_path / "m.pt")
    with pytest.raises(InteropError, match=r"m\.pt: key 'linear.weight' has shape \(10, 512\), our 'net.fc.weight' "
                                           r"has \(100, 512\)"):
        import_classifier(tmp_path / "m.pt", tmp_path / "o.pt", num_classes=100)
    state = torch.load(tmp_path / "m.pt", weights_only=True, map_location="cpu")
    del state["module.layer3.1.conv2.weight"]
    torch.save(state, tmp_path / "short.pt")
    with pytest.raises(InteropError, match=r"short\.pt: key for our 'net.layers.5.conv2.weight' missing"):
        import_classifier(tmp_path / "short.pt", tmp_path / "o.pt")
    torch.save({"module.conv1.weight": Payload()}, tmp_path / "evil.pt")
    with pytest.raises(InteropError, match=r"evil\.pt: not a safe torch.save file"):
        import_classifier(tmp_path / "evil.pt", tmp_path / "o.pt")
    assert "pwned" not in capsys.readouterr().out
    with pytest.raises(InteropError, match=r"--arch 'vit'.*their ViT does not compute our ViT's function"):
        import_classifier(tmp_path / "m.pt", tmp_path / "o.pt", arch="vit")
    assert not (tmp_path / "o.pt").exists()
