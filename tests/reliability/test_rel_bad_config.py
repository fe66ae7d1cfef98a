"""Bad configuration is refused before any work starts: the stage raises (a process exits non-zero),
the message names the offending key and value, and no output is written.

Each case is one pipeline.yaml edit applied to the repo's file; stages run in-process through their
``main(argv)`` (one subprocess per stage proves the non-zero exit status of the real command).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from rel_fixtures import build_store, run_stage, write_diffusion_checkpoint, write_params, write_prepared

from pagstore.data.prepared import load_split

TINY_TRAIN = {"train": {"common": {"model_kwargs": {"width": 4}, "epochs": 1, "batch_size": 16, "milestones": [1],
                                   "eval_samples": 8, "align_samples": 4, "crop_pad": 1}}}
TINY_DISTILL = {"distill": {"common": {"samples_per_shard": 8, "grad_dtype": "float32", "workers": 1}}}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Prepared data, a matching store, a store of other data, an unfinished store, a diffusion checkpoint."""
    root = tmp_path_factory.mktemp("config")
    prepared = write_prepared(root, n=24)
    split = load_split(prepared / "train.npz")
    build_store(root / "stores" / "cm", split)
    build_store(root / "other" / "cm", split, fingerprint="sha256:" + "0" * 64)
    _unfinished(build_store(root / "incomplete" / "cm", split))
    write_diffusion_checkpoint(root / "diffusion.pt", split)
    return root


def _unfinished(store: Path) -> Path:
    """Clear shard 1's done flag: the store of a distillation that never finished."""
    (store / "done" / "c" / "1").unlink()
    return store


def _stage(stage: str, root: Path, params: Path, out: Path, stores: str = "stores") -> list[str]:
    """argv of ``stage`` reading ``params`` and writing everything under ``out``."""
    if stage == "train_diffusion":
        return [f"stages.{stage}", "--params", str(params), "--train", str(root / "prepared" / "train.npz"),
                "--checkpoint", str(out / "checkpoint.pt"), "--samples", str(out / "s.png"),
                "--loss-csv", str(out / "loss.csv")]
    if stage == "distill":
        return [f"stages.{stage}", "--params", str(params), "--source", "sbg", "--prepared", str(root / "prepared"),
                "--diffusion", str(root / "diffusion.pt"), "--out", str(out / "store"), "--plots", str(out / "plots")]
    if stage == "train":
        return [f"stages.{stage}", "--params", str(params), "--method", "pag-cm", "--prepared",
                str(root / "prepared"), "--stores", str(root / stores), "--out", str(out / "model"),
                "--metrics", str(out / "m.json"), "--plots", str(out / "e.csv")]
    return [f"stages.{stage}", "--params", str(params), "--method", "pag-cm", "--checkpoint",
            str(root / "none.pt"), "--prepared", str(root / "prepared"), "--metrics", str(out / "m.json"),
            "--plots", str(out / "plots")]


# case id: (stage, pipeline.yaml overrides, keys to delete, fragments the error must name, stores dir, bug)
CASES: dict[str, tuple[str, dict[str, Any], tuple[str, ...], tuple[str, ...], str, str | None]] = {
    "diffusion-unknown-key": ("train_diffusion", {"train_diffusion": {"save_evry": 3}}, (), ("save_evry",),
                              "stores", None),
    "diffusion-mistyped-value": ("train_diffusion", {"train_diffusion": {"save_every": "often"}}, (),
                                 ("save_every", "often"), "stores", None),
    "diffusion-missing-key": ("train_diffusion", {}, ("datasets.digits.recipe.train_diffusion.preset",),
                              ("preset",), "stores", None),
    "diffusion-unknown-recipe-key": ("train_diffusion",
                                     {"datasets": {"digits": {"recipe": {"train_diffusion": {"presett": "x"}}}}},
                                     (), ("presett", "recipe.train_diffusion"), "stores", None),
    "diffusion-t-window-outside-schedule": ("train_diffusion", {"train_diffusion": {"t_window": [0, 5000]}}, (),
                                            ("t_window", "5000"), "stores", None),
    "diffusion-negative-uncond-prob": ("train_diffusion", {"train_diffusion": {"uncond_prob": -0.1}}, (),
                                       ("uncond_prob", "-0.1"), "stores", None),
    "distill-unknown-key": ("distill", {"distill": {"common": {"wrokers": 1}}}, (), ("wrokers",), "stores", None),
    "distill-sbg-t-outside-schedule": ("distill", {"distill": {"sources": {"sbg": {"t": 5000}}}}, (),
                                       ("t=5000", "[0, 40)"), "stores", None),
    "distill-negative-t": ("distill", {"distill": {"sources": {"sbg": {"t": -1}}}}, (), ("t", "-1"), "stores", None),
    "distill-negative-workers": ("distill", {"distill": {"common": {"workers": -2}}}, (), ("workers", "-2"),
                                 "stores", None),
    "distill-unknown-grad-compression": ("distill", {"distill": {"common": {"grad_compression": "lz5"}}}, (),
                                         ("grad_compression", "'zstd', 'lz4hc', 'none'", "lz5"), "stores", None),
    "train-unknown-key": ("train", {"train": {"common": {"epochz": 3}}}, (), ("epochz",), "stores", None),
    "train-mistyped-value": ("train", {"train": {"common": {"epochs": "eight"}}}, (), ("epochs", "eight"),
                             "stores", None),
    "train-negative-lambda": ("train", {"train": {"methods": {"pag-cm": {"lam": -0.5}}}}, (), ("lam", "-0.5"),
                              "stores", None),
    "train-negative-eps": ("train", {"train": {"methods": {"pag-cm": {"objective": "at", "eps": -0.5}}}}, (),
                           ("eps", "-0.5"), "stores", None),
    "train-k-greater-than-c": ("train", {"train": {"methods": {"pag-cm": {"k_classes": 10}}}}, (),
                               ("k_classes", "10"), "stores", None),
    "train-store-of-other-dataset": ("train", {}, (), ("sha256:" + "0" * 64, "cm"), "other", None),
    "train-incomplete-store": ("train", {}, (), ("incomplete", "[1]"), "incomplete", None),
    "evaluate-negative-eps": ("evaluate", {"datasets": {"digits": {"eval": {"eps_l2": -1.0}}}}, (),
                              ("eps_l2", "-1.0"), "stores", None),
}


def _cases() -> list:
    return [pytest.param(name, id=name, marks=[pytest.mark.xfail(strict=True, reason=c[5])] if c[5] else [])
            for name, c in CASES.items()]


def _outputs(out: Path) -> list[str]:
    return sorted(str(p.relative_to(out)) for p in out.rglob("*")) if out.exists() else []


@pytest.mark.parametrize("case", _cases())
def test_bad_config_refused_before_work(inputs: Path, tmp_path: Path, case: str) -> None:
    import importlib

    stage, over, drop, fragments, stores, _ = CASES[case]
    params = write_params(tmp_path / "params.yaml", _merge_all(over), drop)
    out = tmp_path / "out"
    argv = _stage(stage, inputs, params, out, stores)
    main = importlib.import_module(argv[0]).main
    with pytest.raises((Exception, SystemExit)) as info:
        main(argv[1:])
    if isinstance(info.value, SystemExit):
        assert info.value.code not in (0, None), "stage exited with status 0"
    message = str(info.value.code if isinstance(info.value, SystemExit) else info.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not named in: {message}"
    assert _outputs(out) == [], f"outputs written before the error: {_outputs(out)}"


def _merge_all(over: dict[str, Any]) -> dict[str, Any]:
    from rel_fixtures import deep_merge

    return deep_merge(deep_merge(TINY_TRAIN, TINY_DISTILL), over)


@pytest.mark.parametrize("stage, case", [("train", "train-store-of-other-dataset"),
                                         ("train_diffusion", "diffusion-unknown-key"),
                                         ("train", "train-unknown-key")])
def test_bad_config_process_exits_nonzero(inputs: Path, tmp_path: Path, stage: str, case: str) -> None:
    """The real command (python -m stages.<stage>) exits non-zero with one line on stderr, no traceback."""
    _, over, drop, fragments, stores, _ = CASES[case]
    params = write_params(tmp_path / "params.yaml", _merge_all(over), drop)
    out = tmp_path / "out"
    result = run_stage(_stage(stage, inputs, params, out, stores), tmp_path)
    assert result.returncode != 0
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr[-2000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"{stage}: ") and all(f in last for f in fragments), result.stderr[-2000:]
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    assert _outputs(out) == []


def test_debug_env_keeps_the_traceback(inputs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _, over, drop, fragments, stores, _ = CASES["train-unknown-key"]
    params = write_params(tmp_path / "params.yaml", _merge_all(over), drop)
    monkeypatch.setenv("PAGSTORE_DEBUG", "1")
    result = run_stage(_stage("train", inputs, params, tmp_path / "out", stores), tmp_path)
    assert result.returncode != 0 and "Traceback" in result.stderr and "ConfigError" in result.stderr
