"""UNet structure: parameter counts of the presets, the original's state-dict names, shapes, embeddings."""

from __future__ import annotations

import math

import pytest
import torch

from pagstore.improved_diffusion import UNetModel, create_model_and_diffusion, model_and_diffusion_defaults
from pagstore.improved_diffusion.nn import timestep_embedding
from pagstore.improved_diffusion.presets import PRESETS, config_for_dataset, get_preset


def _meta_model(cfg):
    with torch.device("meta"):  # builds the module tree without allocating or initialising weights
        model, _ = create_model_and_diffusion(**cfg)
    return model


def _num_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_cifar10_preset_has_about_52_5m_parameters():
    cfg = config_for_dataset(get_preset("cifar10"), {}, num_classes=10, in_channels=3)
    n = _num_params(_meta_model(cfg))
    assert abs(n - 52.5e6) / 52.5e6 < 0.01, n
    assert cfg["num_classes"] == 11 and cfg["class_cond"] and cfg["image_size"] == 32


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_builds_with_expected_output_channels(name):
    cfg = config_for_dataset(get_preset(name), {}, num_classes=10, in_channels=3 if name != "digits-small" else 1)
    model = _meta_model(cfg)
    assert model.out[2].weight.shape[0] == cfg["in_channels"] * (2 if cfg["learn_sigma"] else 1)
    assert model.label_emb.weight.shape == (11, 4 * cfg["num_channels"])


def test_state_dict_keys_and_shapes_follow_the_original():
    cfg = model_and_diffusion_defaults()
    cfg.update(image_size=32, num_channels=128, num_res_blocks=3, learn_sigma=True, class_cond=True,
               num_classes=11)
    sd = _meta_model(cfg).state_dict()
    expected = {
        "time_embed.0.weight": (512, 128),
        "time_embed.2.weight": (512, 512),
        "label_emb.weight": (11, 512),
        "input_blocks.0.0.weight": (128, 3, 3, 3),
        "input_blocks.1.0.in_layers.0.weight": (128,),
        "input_blocks.1.0.in_layers.2.weight": (128, 128, 3, 3),
        "input_blocks.1.0.emb_layers.1.weight": (256, 512),  # scale and shift
        "input_blocks.1.0.out_layers.3.weight": (128, 128, 3, 3),
        "input_blocks.4.0.op.weight": (128, 128, 3, 3),
        "input_blocks.5.0.skip_connection.weight": (256, 128, 1, 1),
        "input_blocks.5.1.qkv.weight": (768, 256, 1),  # attention at 16x16
        "input_blocks.5.1.proj_out.weight": (256, 256, 1),
        "input_blocks.5.1.norm.weight": (256,),
        "middle_block.0.in_layers.2.weight": (256, 256, 3, 3),
        "middle_block.1.qkv.weight": (768, 256, 1),
        "middle_block.2.out_layers.3.weight": (256, 256, 3, 3),
        "output_blocks.0.0.in_layers.2.weight": (256, 512, 3, 3),
        "output_blocks.3.1.conv.weight": (256, 256, 3, 3),  # 4x4 level: no attention before upsampling
        "output_blocks.7.1.qkv.weight": (768, 256, 1),
        "output_blocks.7.2.conv.weight": (256, 256, 3, 3),
        "output_blocks.15.0.skip_connection.weight": (128, 256, 1, 1),
        "out.0.weight": (128,),
        "out.2.weight": (6, 128, 3, 3),
    }
    for key, shape in expected.items():
        assert tuple(sd[key].shape) == shape, key
    assert len([k for k in sd if k.startswith("output_blocks.") and k.endswith(".0.in_layers.2.weight")]) == 16
    assert not any(k.startswith("input_blocks.1.1") for k in sd)  # no attention at 32x32


def test_original_style_state_dict_loads_strictly(tiny_config):
    cfg = tiny_config()
    a, _ = create_model_and_diffusion(**cfg)
    b, _ = create_model_and_diffusion(**cfg)
    state = {k: torch.randn_like(v) for k, v in a.state_dict().items()}
    b.load_state_dict(state, strict=True)
    with pytest.raises(RuntimeError):
        b.load_state_dict({**state, "extra.weight": torch.zeros(1)}, strict=True)


def test_forward_shape_and_zero_initialised_outputs(tiny):
    model, _ = create_model_and_diffusion(**tiny)
    x = torch.randn(3, 1, 8, 8)
    out = model(x, torch.tensor([0.0, 500.0, 999.0]), torch.tensor([0, 1, 2]))
    assert out.shape == (3, 2, 8, 8)
    assert torch.count_nonzero(out) == 0  # the final conv starts at zero, as in the original
    assert torch.count_nonzero(model.middle_block[1].proj_out.weight) == 0
    with pytest.raises(ValueError, match="class-conditional"):
        model(x, torch.zeros(3))


def test_channel_mult_override_for_unlisted_size(tiny_config):
    cfg = tiny_config(image_size=16, channel_mult=[1, 2, 2], attention_resolutions="4")
    model, _ = create_model_and_diffusion(**cfg)
    assert model.channel_mult == (1, 2, 2) and model.attention_resolutions == (4,)
    assert model(torch.randn(2, 1, 16, 16), torch.zeros(2), torch.zeros(2, dtype=torch.long)).shape == (2, 2, 16, 16)
    with pytest.raises(ValueError, match="no default channel_mult for image_size 48"):
        create_model_and_diffusion(**tiny_config(image_size=48, channel_mult=None, attention_resolutions="12"))


def test_group_norm_needs_multiples_of_32(tiny_config):
    with pytest.raises(ValueError, match="multiple of 32"):
        create_model_and_diffusion(**tiny_config(num_channels=16))


def test_timestep_embedding_is_cos_then_sin():
    t = torch.tensor([0.0, 3.0])
    emb = timestep_embedding(t, 8)
    freqs = torch.exp(-math.log(10000) * torch.arange(4) / 4)
    torch.testing.assert_close(emb[1, :4], torch.cos(3.0 * freqs))
    torch.testing.assert_close(emb[1, 4:], torch.sin(3.0 * freqs))
    assert emb[0, :4].eq(1).all() and emb[0, 4:].eq(0).all()


def test_attention_uses_per_head_interleaved_qkv():
    """Head h reads q, k, v from channels [3*ch*h, 3*ch*(h+1)) of the qkv output, as the original does."""
    torch.manual_seed(0)
    model = UNetModel(1, 32, 1, 1, attention_resolutions=(1,), channel_mult=(1,), num_heads=2)
    block = model.input_blocks[1][1]
    torch.nn.init.normal_(block.proj_out.weight)
    x = torch.randn(2, 32, 3, 3)
    qkv = block.qkv(block.norm(x.reshape(2, 32, 9)))  # (2, 96, 9)
    heads = []
    for h in range(2):
        q, k, v = qkv[:, 48 * h:48 * (h + 1)].split(16, dim=1)
        w = torch.softmax(torch.einsum("bct,bcs->bts", q, k) / math.sqrt(16), dim=-1)
        heads.append(torch.einsum("bts,bcs->bct", w, v))
    expected = x.reshape(2, 32, 9) + block.proj_out(torch.cat(heads, dim=1))
    torch.testing.assert_close(block(x), expected.reshape(2, 32, 3, 3))
