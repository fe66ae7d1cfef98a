"""train.common.channels_last: the PAG term keeps the layout through its repeated leaf and gives the same
loss as the contiguous path (up to float rounding); the loop feeds channels_last batches; off by default."""

from __future__ import annotations

import torch

from pagstore.config import load_section
from pagstore.loss import _repeat_rows, pag_alignment_loss
from pagstore.models import build_model
from pagstore.training.config import TrainSection
from pagstore.training.loop import LoopOptions, train_epoch
from pagstore.training.objectives import ObjectiveSpec

CL = torch.channels_last


def test_repeated_rows_keep_the_memory_format() -> None:
    x = torch.rand(3, 2, 4, 4)
    assert _repeat_rows(x, 5).is_contiguous()
    rep = _repeat_rows(x.contiguous(memory_format=CL), 5)
    assert rep.is_contiguous(memory_format=CL) and not rep.is_contiguous()
    assert torch.equal(rep, x.repeat_interleave(5, 0))


def test_channels_last_pag_loss_matches_contiguous() -> None:
    torch.manual_seed(0)
    model = build_model("small-cnn", 4, (2, 8, 8), width=4).eval()
    x, g = torch.rand(3, 2, 8, 8), torch.randn(3, 4, 2, 8, 8)
    ref = pag_alignment_loss(model, x, g)
    ref.backward()
    ref_grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    model = model.to(memory_format=CL)
    ours = pag_alignment_loss(model, x.contiguous(memory_format=CL), g)
    ours.backward()
    assert torch.allclose(ours, ref, rtol=1e-5)
    for a, b in zip(ref_grads, (p.grad for p in model.parameters())):
        assert torch.allclose(a, b, rtol=1e-3, atol=1e-6)


def test_loop_feeds_channels_last_batches() -> None:
    torch.manual_seed(0)
    model = build_model("small-cnn", 3, (2, 8, 8), width=4).to(memory_format=CL)
    seen = []
    model.register_forward_pre_hook(lambda m, args: seen.append(args[0].is_contiguous(memory_format=CL)))
    batches = [(torch.rand(4, 2, 8, 8), torch.randint(0, 3, (4,)), torch.randn(4, 3, 2, 8, 8))]
    spec = ObjectiveSpec(objective="pag", store="sbg", lam=1.0, pag_bn="frozen")
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    terms = train_epoch(model, batches, spec, opt, LoopOptions(augment=False, channels_last=True),
                        torch.Generator().manual_seed(0), show_progress=False)
    assert seen and all(seen)  # the clean forward and the repeated PAG rows
    assert torch.isfinite(torch.tensor(terms["loss"]))
    assert model.net[0].weight.is_contiguous(memory_format=CL)


def test_options_defaults_and_load_from_yaml(tmp_path) -> None:
    """pag_bn defaults to frozen (issue 18's choice), batch is one key away; channels_last loads from yaml."""
    cfg = tmp_path / "p.yaml"
    cfg.write_text(
        "train:\n  common: {model: small-cnn, epochs: 1, batch_size: 4, channels_last: true}\n"
        "  methods: {a: {objective: pag, store: sbg, lam: 1.0, pag_bn: batch},\n"
        "            b: {objective: pag, store: sbg, lam: 1.0}}\n"
        "  plain_methods: {}\n"
    )
    section = load_section(cfg, "train", TrainSection)
    assert section.common.channels_last and section.methods["a"].pag_bn == "batch"
    assert section.methods["b"].pag_bn == "frozen"
