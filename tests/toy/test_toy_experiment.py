"""The toy experiment end to end on tiny settings: declared outputs, checkpoints, and the PAG effect itself."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml

from pagstore.config import ConfigError, from_dict, load_section
from pagstore.data.prepared import PreparedSplit
from pagstore.models import build_model
from pagstore.store import open_store
from pagstore.toy.config import ToyParams
from pagstore.toy.evaluate import accuracy
from pagstore.toy.experiment import run_toy
from stages import toy as toy_stage

TINY = {
    "data": {"seed": 0, "points_per_mode": 20, "test_size": 12},
    "nn": {"subset_size": 0},
    "epochs": 2,
    "seeds": [3],
    "plot_seed": 3,
    "grid": {"angles": 12, "radii": 3},
}


def write_params(tmp_path, toy: dict) -> object:
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump({"profile": "digits", "toy": toy}))
    return path


def test_tiny_run_writes_every_declared_output(tmp_path):
    params = write_params(tmp_path, TINY)
    out, metrics_path, plots = tmp_path / "runs/toy", tmp_path / "metrics/toy.json", tmp_path / "plots/toy"
    toy_stage.run(params, out, metrics_path, plots, workers=1)

    metrics = json.loads(metrics_path.read_text())
    assert metrics["seeds"] == [3] and metrics["params"]["epochs"] == 2 and metrics["params"]["lam"] == 1.0
    assert metrics["paper"]["nn-pag"]["robust"] == 75.5
    for name in ("vanilla", "nn-pag"):
        m = metrics[name]
        for key in ("clean", "robust", "robust_grid", "line_alignment"):
            assert len(m[f"{key}_per_seed"]) == 1 and m[f"{key}_std"] == 0.0
        assert 0.0 <= m["robust_mean"] <= m["clean_mean"] <= 100.0
    assert (plots / "decision_boundaries.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    store = open_store(out / "stores/nn-seed3")
    assert store.is_complete() and store.num_samples == 120 and store.spec.source["name"] == "nn"
    assert store.spec.dataset.fingerprint == metrics["dataset"]["train_fingerprint"]

    # Checkpoints load without pickle and give back the reported clean accuracy.
    ck = torch.load(out / "models/nn-pag-seed3.pt", weights_only=True)
    model = build_model(ck["model"], ck["num_classes"], tuple(ck["sample_shape"]), **ck["model_kwargs"])
    model.load_state_dict(ck["state_dict"])
    from pagstore.data.registry import read_dataset

    test = read_dataset("toy2d", TINY["data"])["test"]
    xt, yt = torch.from_numpy(test.as_float()), torch.from_numpy(test.labels)
    assert accuracy(model, xt, yt) == pytest.approx(metrics["nn-pag"]["clean_mean"])
    assert sorted(p.name for p in out.iterdir()) == ["models", "stores"]  # nothing undeclared beside them


def test_bad_toy_params_are_errors_naming_the_key(tmp_path):
    with pytest.raises(ConfigError, match=r"toy.*'epoch'"):
        load_section(write_params(tmp_path, {**TINY, "epoch": 3}), "toy", ToyParams)
    with pytest.raises(ConfigError, match="plot_seed"):
        from_dict(ToyParams, {**TINY, "plot_seed": 7}, where="toy")
    with pytest.raises(ConfigError, match="lam"):
        from_dict(ToyParams, {**TINY, "lambda_sweep": [0.5, -1.0]}, where="toy")
    with pytest.raises(ConfigError, match=r"toy\.attack\.eps"):
        from_dict(ToyParams, {**TINY, "attack": {"eps": "big"}}, where="toy")


def alternating_line(seed: int, per_mode: int) -> PreparedSplit:
    """Four modes on x2 = 2 x1 with alternating classes: curved vanilla boundaries, fast to fit (x1 ~ +-15)."""
    rng = np.random.default_rng(seed)
    x1 = np.concatenate([rng.normal(c, 1.0, per_mode) for c in (-15.0, -5.0, 5.0, 15.0)])
    y = np.repeat([0, 1, 0, 1], per_mode).astype(np.int64)
    return PreparedSplit(np.stack([x1, 2 * x1], 1).astype(np.float32), y, ("0", "1"), {"dataset": "line"})


def test_nn_pag_input_gradients_follow_the_data_line_vanilla_ones_do_not(tmp_path):
    params = from_dict(ToyParams, {"nn": {"subset_size": 0}, "epochs": 15, "batch_size": 32, "seeds": [0, 1],
                                   "grid": {"angles": 0, "radii": 1}}, where="toy")
    result = run_toy(params, alternating_line(0, 100), alternating_line(1, 20), tmp_path / "stores")
    vanilla, pag = result.metrics["vanilla"], result.metrics["nn-pag"]
    assert vanilla["clean_mean"] == pag["clean_mean"] == 100.0
    # Cosine with the line: NN gradients all lie on it, so the PAG term pulls the model's gradient onto it.
    assert pag["line_alignment_mean"] > 0.95
    assert pag["line_alignment_mean"] > vanilla["line_alignment_mean"] + 0.2
    assert all(p > v for p, v in zip(pag["line_alignment_per_seed"], vanilla["line_alignment_per_seed"]))
