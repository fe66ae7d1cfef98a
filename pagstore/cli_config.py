"""``pagstore config``: the effective configuration every stage sees, with the profile's recipe applied.

    pagstore config [--profile NAME] [--json] [--params pipeline.yaml]

Prints the same sections and keys as pipeline.yaml (``train.common.model``, ``train.methods.<name>.lam``,
``train_diffusion.preset``, ...), computed by :func:`pagstore.profiles.effective_params`, the function the
stages load their parameters with. The recipe-bearing sections are also loaded strictly into the dataclasses
the stages use, so an unknown or mistyped key fails here exactly as it would in ``dvc repro``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from pagstore.errors import user_errors


def effective_config(params: Path, profile: str | None = None) -> dict[str, Any]:
    """The effective configuration of ``params`` (``profile`` overrides the file's), checked strictly.

    Returns a mapping with ``profile``, ``datasets: {<profile>: {reader, options, eval}}`` (its recipe is
    already merged into the stage sections) and every stage section of the file.
    """
    from pagstore.config import from_dict
    from pagstore.profiles import effective_params
    from pagstore.sources import params_class

    data = effective_params(params, profile)
    name = data["profile"]
    entry = {k: v for k, v in data["datasets"][name].items() if k != "recipe"}
    out: dict[str, Any] = {"profile": name, "datasets": {name: entry}}
    out.update({k: v for k, v in data.items() if k not in ("profile", "datasets")})
    checks = dict(_section_classes())
    checks.update({f"distill.sources.{s}": params_class(s) for s in out.get("distill", {}).get("sources", {})})
    for dotted, cls in checks.items():
        value: Any = out
        for part in dotted.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if value is not None:
            from_dict(cls, value, where=f"{params}:{dotted} (profile {name})")
    return out


def _section_classes() -> dict[str, type]:
    """The strict dataclass each stage loads its section (or part of it) into."""
    from pagstore.distill.config import DistillCommon, DistillPlots, DistillTest
    from pagstore.evaluation.params import EvaluateParams
    from pagstore.improved_diffusion.recipe import TrainDiffusionParams
    from pagstore.training.config import TrainSection

    return {"train_diffusion": TrainDiffusionParams, "train": TrainSection, "distill.common": DistillCommon,
            "distill.test": DistillTest, "distill.plots": DistillPlots, "evaluate": EvaluateParams}


@user_errors("pagstore config")
def config(
    profile: Annotated[str | None, typer.Option("--profile", help="a key of datasets (default: the file's profile)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of YAML")] = False,
    params: Annotated[Path, typer.Option("--params", help="the pipeline parameters file")] = Path("pipeline.yaml"),
) -> None:
    """Print the effective configuration of every stage, the dataset profile's recipe applied."""
    import yaml

    out = effective_config(params, profile)
    if as_json:
        print(json.dumps(out, indent=2))
    else:
        print(yaml.safe_dump(out, sort_keys=False, default_flow_style=None), end="")
