"""The effective configuration: a dataset profile's recipe deep-merged under the stage sections.

A profile (``datasets.<name>`` in pipeline.yaml) carries ``recipe:``, whose sections mirror the stage
sections that change with the dataset (:data:`RECIPE_SECTIONS`): the diffusion preset, SBG's t and the
distillation batch sizes, the classifier recipe and every method's lambda. The stage sections keep only
profile-independent keys. The effective section is the recipe with the stage section merged over it, so a key
set explicitly in the stage section wins (even ``null``). AT / TRADES methods without an ``eps`` (or with
``eps: null``) train at the profile's evaluation budget of their norm, as the paper trains AT at the eps it
evaluates.

Every stage loads its parameters through :func:`load_effective`, and ``pagstore config`` prints
:func:`effective_params`, so both see the same thing. The DVC ``params:`` of each stage name the recipe
section it reads (``datasets.${profile}.recipe.<section>``), so changing a recipe reruns the right stages;
DVC fails on a missing params key, hence every profile must carry every recipe section.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, TypeVar

from pagstore.config import ConfigError, from_dict, read_yaml

T = TypeVar("T")

# Stage sections a recipe may hold; each is a `params:` entry of the stages that read it in dvc.yaml.
RECIPE_SECTIONS = ("train_diffusion", "distill", "train")
# Objectives whose PGD radius defaults to the profile's evaluation budget.
ADVERSARIAL = ("at", "trades")
_DEFAULT_NORM = "linf"  # ObjectiveSpec's default norm


def merge_under(recipe: Any, section: Any) -> Any:
    """``recipe`` with ``section`` merged over it: mappings merge key by key, any other value of ``section`` wins."""
    if isinstance(recipe, dict) and isinstance(section, dict):
        out = copy.deepcopy(recipe)
        for key, value in section.items():
            out[key] = merge_under(recipe[key], value) if key in recipe else copy.deepcopy(value)
        return out
    return copy.deepcopy(section)


def profile_name(data: dict[str, Any], where: str) -> str:
    """The ``profile`` key of a parsed pipeline.yaml, checked to name an entry of ``datasets``."""
    name = data.get("profile")
    if not isinstance(name, str):
        raise ConfigError(f"{where}:profile: expected the name of a dataset profile, got {name!r}")
    datasets = data.get("datasets")
    if not isinstance(datasets, dict) or name not in datasets:
        known = sorted(datasets) if isinstance(datasets, dict) else []
        raise ConfigError(f"{where}:profile: '{name}' is not a key of 'datasets' (known: {known})")
    return name


def _recipe(data: dict[str, Any], name: str, where: str) -> dict[str, Any]:
    entry = data["datasets"][name]
    key = f"{where}:datasets.{name}.recipe"
    recipe = entry.get("recipe") if isinstance(entry, dict) else None
    if not isinstance(recipe, dict):
        raise ConfigError(f"{key}: missing; expected a mapping with sections {', '.join(RECIPE_SECTIONS)}")
    unknown = sorted(set(recipe) - set(RECIPE_SECTIONS))
    if unknown:
        raise ConfigError(f"{key}: unknown section(s) {', '.join(map(repr, unknown))}; "
                          f"allowed sections are {', '.join(RECIPE_SECTIONS)}")
    missing = [s for s in RECIPE_SECTIONS if not isinstance(recipe.get(s), dict)]
    if missing:
        # DVC reads datasets.<profile>.recipe.<section> as a stage param and fails if it is absent.
        raise ConfigError(f"{key}: missing section(s) {', '.join(missing)} (each must be a mapping, {{}} if empty)")
    return recipe


def _only_defined_methods(recipe_train: dict[str, Any], train: dict[str, Any], key: str) -> dict[str, Any]:
    """The recipe's ``train`` with only the methods the stage section defines (DVC makes one stage per
    stage-section method; a profile may tune methods a trimmed pipeline dropped). A misspelt method name
    leaves its method without a lam, which the method's own check reports."""
    out = dict(recipe_train)
    for group in ("methods", "plain_methods"):
        if group not in recipe_train:
            continue
        tuned = recipe_train[group]
        if not isinstance(tuned, dict):
            raise ConfigError(f"{key}.{group}: expected a mapping of method name to keys, got {tuned!r}")
        defined = train.get(group) if isinstance(train.get(group), dict) else {}
        out[group] = {name: spec for name, spec in tuned.items() if name in defined}
    return out


def _check_distill_keys(recipe_distill: dict[str, Any], distill: dict[str, Any], key: str) -> None:
    """``distill`` is loaded part by part (common, sources.<name>, test, plots), so a stray recipe key would
    be read by no one: refuse keys and sources the stage section does not have."""
    unknown = sorted(set(recipe_distill) - set(distill))
    if unknown:
        raise ConfigError(f"{key}: unknown key(s) {', '.join(map(repr, unknown))}; "
                          f"allowed keys are {', '.join(sorted(distill))}")
    sources = recipe_distill.get("sources", {})
    defined = distill.get("sources") if isinstance(distill.get("sources"), dict) else {}
    extra = sorted(set(sources) - set(defined)) if isinstance(sources, dict) else ["<not a mapping>"]
    if extra:
        raise ConfigError(f"{key}.sources: unknown source(s) {', '.join(map(repr, extra))}; "
                          f"distill.sources has {', '.join(sorted(defined))}")


def _fill_eps(train: dict[str, Any], budget: dict[str, Any], key: str) -> None:
    """AT / TRADES methods without an eps train at the evaluation budget of their norm (in place)."""
    for group in ("methods", "plain_methods"):
        for name, spec in (train.get(group) or {}).items():
            if not isinstance(spec, dict) or spec.get("objective") not in ADVERSARIAL or spec.get("eps") is not None:
                continue
            norm = spec.get("norm", _DEFAULT_NORM)
            eps = budget.get(f"eps_{norm}") if isinstance(budget, dict) else None
            if eps is None:
                raise ConfigError(f"{key}.eval: no eps_{norm} for train.{group}.{name} (eps null = this budget)")
            spec["eps"] = eps


def effective_from_data(data: dict[str, Any], where: str = "pipeline.yaml") -> dict[str, Any]:
    """The whole parsed pipeline.yaml with the selected profile's recipe merged under the stage sections.

    ``datasets`` and the other keys are returned unchanged; ``where`` names the file in error messages. A
    file with neither ``profile`` nor ``datasets`` (stage sections only, e.g. one stage run by hand outside
    the pipeline) has no recipe to merge and is returned as it is.
    """
    if "profile" not in data and "datasets" not in data:
        return copy.deepcopy(data)
    name = profile_name(data, where)
    recipe = _recipe(data, name, where)
    out = copy.deepcopy(data)
    for section in RECIPE_SECTIONS:
        stage = data.get(section, {})
        if not isinstance(stage, dict):
            raise ConfigError(f"{where}:{section}: expected a mapping, got {type(stage).__name__}")
        under = recipe[section]
        if section == "distill":
            _check_distill_keys(under, stage, f"{where}:datasets.{name}.recipe.distill")
        if section == "train":
            under = _only_defined_methods(under, stage, f"{where}:datasets.{name}.recipe.train")
        out[section] = merge_under(under, stage)
    _fill_eps(out["train"], data["datasets"][name].get("eval"), f"{where}:datasets.{name}")
    return out


def effective_params(params_path: str | Path, profile: str | None = None) -> dict[str, Any]:
    """Read ``params_path`` and return its effective configuration (``profile`` replaces the file's profile)."""
    data = read_yaml(params_path)
    if profile is not None:
        data["profile"] = profile
    return effective_from_data(data, where=str(params_path))


def effective_section(params_path: str | Path, section: str) -> Any:
    """The effective value of the dotted ``section`` (e.g. ``"train"``, ``"distill.common"``)."""
    data: Any = effective_params(params_path)
    for part in section.split("."):
        if not isinstance(data, dict) or part not in data:
            raise ConfigError(f"{params_path}: section '{section}' not found (missing key '{part}')")
        data = data[part]
    return data


def load_effective(params_path: str | Path, section: str, cls: type[T]) -> T:
    """Load the effective ``section`` of ``params_path`` strictly into the dataclass ``cls``.

    Raises:
        ConfigError: naming the file and key when the section, the profile or its recipe is missing, or a
            key (from the stage section or the recipe) is unknown, missing or mistyped.
    """
    value = effective_section(params_path, section)
    top = section.split(".")[0]
    where = f"{params_path}:{section}"
    name = read_yaml(params_path).get("profile")
    if top in RECIPE_SECTIONS and isinstance(name, str):
        where += f" (with datasets.{name}.recipe.{section})"
    return from_dict(cls, value, where=where)
