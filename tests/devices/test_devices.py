"""pagstore.devices: device / precision resolution, and the CPU fp32 path computing exactly what it did."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pagstore import devices as D
from pagstore.config import ConfigError, from_dict
from pagstore.training.config import TrainCommon


def test_auto_is_the_cpu_without_cuda_and_names_are_checked():
    if torch.cuda.is_available():
        assert D.resolve_device("auto").type == "cuda"
    else:
        assert D.resolve_device("auto") == torch.device("cpu")
        with pytest.raises(ValueError, match="'cuda:1': CUDA is not available"):
            D.resolve_device("cuda:1")
    assert D.resolve_device("cpu") == torch.device("cpu")
    for bad in ("gpu", "cuda:x", "CPU", ""):
        with pytest.raises(ValueError, match="expected auto, cpu, cuda or cuda:N"):
            D.check_device(bad)


def test_bad_device_or_precision_in_a_section_is_one_clear_line():
    with pytest.raises(ConfigError, match=r"train.common: device: expected auto, cpu, cuda or cuda:N, got 'gpu'"):
        from_dict(TrainCommon, {"model": "mlp", "epochs": 1, "batch_size": 2, "device": "gpu"}, where="train.common")
    with pytest.raises(ConfigError, match=r"train.common.precision: expected one of \['fp32', 'bf16', 'fp16'\]"):
        from_dict(TrainCommon, {"model": "mlp", "epochs": 1, "batch_size": 2, "precision": "fp8"},
                  where="train.common")


def test_precision_helpers():
    assert D.grad_scaler("cpu", "fp32") is None and D.grad_scaler("cpu", "bf16") is None
    assert isinstance(D.grad_scaler("cpu", "fp16"), torch.amp.GradScaler)
    with D.autocast("cpu", "bf16"):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16
    with D.autocast("cpu", "fp32"):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32
    assert D.use_channels_last("auto", "cpu") is False and D.use_channels_last("auto", "cuda") is True
    assert D.use_channels_last(True, "cpu") is True
    assert D.dist_backend("cpu") == "gloo" and D.dist_backend("cuda:0") == "nccl"


def test_on_device_wrapper_is_exact_on_cpu_fp32_and_passes_input_gradients():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 6 * 6, 4)).eval()
    x = torch.rand(5, 1, 8, 8, requires_grad=True)
    wrapped = D.OnDevice(model, torch.device("cpu"))
    assert torch.equal(wrapped(x), model(x))
    (g1,) = torch.autograd.grad(wrapped(x)[:, 0].sum(), x)
    (g2,) = torch.autograd.grad(model(x)[:, 0].sum(), x)
    assert torch.equal(g1, g2)
    out = D.OnDevice(model, torch.device("cpu"), "bf16")(x)
    assert out.dtype == torch.float32 and torch.allclose(out, model(x), atol=0.05)


def test_to_device_channels_last_and_prepare_model():
    x = torch.rand(2, 3, 4, 4)
    y = D.to_device(x, torch.device("cpu"), channels_last=True)
    assert y.is_contiguous(memory_format=torch.channels_last) and torch.equal(x, y)
    assert D.to_device(None, torch.device("cpu")) is None
    model = D.prepare_model(nn.Conv2d(3, 2, 1), torch.device("cpu"), channels_last=True)
    assert model.weight.is_contiguous(memory_format=torch.channels_last)


def test_compile_with_a_pag_method_is_refused_before_any_work(tmp_path):
    import dataclasses

    from pagstore.training.objectives import ObjectiveSpec
    from pagstore.training.run import train_method

    common = dataclasses.replace(from_dict(TrainCommon, {"model": "mlp", "epochs": 1, "batch_size": 2}),
                                 compile=True)
    with pytest.raises(ConfigError, match="compile: true cannot train method 'pag-x'.*double backward"):
        train_method("pag-x", ObjectiveSpec("pag", store="sbg", lam=1.0), common, tmp_path / "none",
                     tmp_path, tmp_path / "out", tmp_path / "m.json", tmp_path / "p.csv")


def test_loader_workers_prefetch_store_shards_in_training(tmp_path):
    """train_method with loader_workers: 2 streams the store through DataLoader worker processes and sees
    every sample once per epoch, as with 0 workers."""
    import dataclasses
    import json

    from pagstore.training.objectives import ObjectiveSpec
    from pagstore.training.run import train_method
    from tests.training.train_fixtures import write_prepared, write_store

    train, prep = write_prepared(tmp_path, n=48, classes=3, size=8)
    write_store(tmp_path / "stores" / "cm", train, samples_per_shard=8)
    base = from_dict(TrainCommon, {"model": "small-cnn", "epochs": 1, "batch_size": 16, "milestones": [1],
                                   "model_kwargs": {"width": 4}, "eval_samples": 10, "align_samples": 4})
    spec = ObjectiveSpec("pag", store="cm", lam=0.5)
    for workers in (0, 2):
        common = dataclasses.replace(base, loader_workers=workers)
        out = tmp_path / f"w{workers}"
        final = train_method("pag-cm", spec, common, prep, tmp_path / "stores", out, out / "m.json", out / "p.csv")
        assert json.loads((out / "m.json").read_text())["pag"] == final["pag"] > 0
    from pagstore.training.data import store_batches

    for workers in (0, 2):
        rows = [len(b[1]) for b in store_batches(tmp_path / "stores" / "cm", 16, seed=0, epoch=1, num_workers=workers)]
        assert sum(rows) == 48
    # The run id ignores where and how batches are loaded: the same run, resumable either way.
    from pagstore.training.run import run_id

    fp = {"dataset_fingerprint": "x"}
    assert run_id("m", spec, base, fp) == run_id("m", spec, dataclasses.replace(base, loader_workers=2, device="cpu"), fp)
    assert run_id("m", spec, base, fp) != run_id("m", spec, dataclasses.replace(base, precision="bf16"), fp)


def test_cuda_binds_each_torchrun_rank_to_its_local_rank(monkeypatch):
    """The resolution logic on a (simulated) 4-GPU node: cuda / auto -> cuda:LOCAL_RANK, an index past the
    GPUs is refused. (Simulated: no CUDA here; the GPU check exercises a real device.)"""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    monkeypatch.setenv("LOCAL_RANK", "2")
    assert D.resolve_device("cuda") == torch.device("cuda:2") == D.resolve_device("auto")
    assert D.resolve_device("cuda:1") == torch.device("cuda:1")
    with pytest.raises(ValueError, match="'cuda:5': only 4 CUDA device"):
        D.resolve_device("cuda:5")
    monkeypatch.delenv("LOCAL_RANK")
    assert D.resolve_device("cuda") == torch.device("cuda:0")
    assert D.dist_backend(D.resolve_device("auto")) == "nccl"
