"""Dataset profiles: the ``datasets.<name>`` entries of ``pipeline.yaml`` selected by ``profile``.

A profile is ``{reader, options, eval}``: ``reader`` names a reader in :mod:`pagstore.data.registry`,
``options`` are that reader's keys (validated strictly against its options dataclass when the reader
runs), and ``eval`` is the attack budget the evaluate stage uses for this dataset.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pagstore.config import ConfigError, from_dict, read_yaml


@dataclass(frozen=True)
class EvalBudget:
    """Attack radii for a dataset, in model space ([0, 1] pixels): the standard and the large-eps budgets."""

    eps_l2: float
    eps_linf: float
    large_eps_l2: float
    large_eps_linf: float

    def validate(self) -> None:
        for name in ("eps_l2", "eps_linf", "large_eps_l2", "large_eps_linf"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")


@dataclass(frozen=True)
class DatasetProfile:
    """One named dataset: which reader, its options (a plain mapping), the evaluation budget and the
    recipe merged under the stage sections (checked by :mod:`pagstore.profiles`)."""

    reader: str
    options: dict[str, Any]
    eval: EvalBudget
    recipe: dict[str, Any] = field(default_factory=dict)


def load_profile(params_path: str | Path) -> tuple[str, DatasetProfile]:
    """Read ``profile`` and ``datasets.<profile>`` from ``params_path``.

    Returns:
        ``(name, profile)``; the reader name is checked to exist, its options are checked when it runs.

    Raises:
        ConfigError: naming the file and key, if ``profile`` is missing or names no entry of ``datasets``,
            or the entry has unknown/missing/mistyped keys or an unknown reader.
    """
    from pagstore.data.registry import READERS  # late: registry imports every reader

    data = read_yaml(params_path)
    name = data.get("profile")
    if not isinstance(name, str):
        raise ConfigError(f"{params_path}:profile: expected the name of a dataset profile, got {name!r}")
    datasets = data.get("datasets")
    if not isinstance(datasets, dict) or name not in datasets:
        known = sorted(datasets) if isinstance(datasets, dict) else []
        raise ConfigError(f"{params_path}:profile: '{name}' is not a key of 'datasets' (known: {known})")
    where = f"{params_path}:datasets.{name}"
    profile = from_dict(DatasetProfile, datasets[name], where=where)
    if profile.reader not in READERS:
        raise ConfigError(f"{where}.reader: unknown reader {profile.reader!r}; known readers: {sorted(READERS)}")
    return name, profile
