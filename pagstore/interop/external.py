"""External classifiers in the pipeline: ``external_models: {name: {checkpoint, layout, arch}}`` in pipeline.yaml.

Each entry is converted with :func:`pagstore.interop.classifier_import.import_classifier` and evaluated like
our own models by the ``evaluate_external@<name>`` stage; the report lists it as "<name> (external)".
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pagstore.interop.classifier_import import ARCHS, LAYOUTS

METRICS_PREFIX = "external-"  # metrics/eval/external-<name>.json: never clashes with a method's file


@dataclass(frozen=True)
class ExternalModel:
    """One ``external_models.<name>`` entry.

    Attributes:
        checkpoint: the released file (e.g. the paper's RN18 SBG ``DataParallel`` state_dict).
        layout: its key layout ("pag-rob").
        arch: our architecture it maps onto ("resnet18").
        paper_row: the paper row its card quotes (a key of ``PAPER_ROWS``; null = guessed from the name).
    """

    checkpoint: str
    layout: str
    arch: str
    paper_row: str | None = None

    def validate(self) -> None:
        if self.layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, got {self.layout!r}")
        if self.arch not in ARCHS:
            raise ValueError(f"arch must be one of {ARCHS} for layout {self.layout!r}, got {self.arch!r}")


def external_names(pipeline: dict[str, Any]) -> list[str]:
    """Names of the ``external_models`` entries, in file order (none when the section is absent or empty)."""
    section = pipeline.get("external_models") or {}
    return [str(k) for k in section] if isinstance(section, dict) else []


def convert_external(name: str, entry: ExternalModel, out: Path, num_classes: int,
                     sample_shape: tuple[int, int, int]) -> dict[str, Any]:
    """Write our checkpoint of external model ``name`` to ``out``; return its card."""
    from pagstore.interop.classifier_import import import_classifier

    return import_classifier(entry.checkpoint, out, layout=entry.layout, arch=entry.arch, num_classes=num_classes,
                             sample_shape=sample_shape, paper_row=entry.paper_row or _guess_row(name), name=name)


def _guess_row(name: str) -> str | None:
    from pagstore.evaluation.paper import PAPER_ROWS, paper_row_for

    row = paper_row_for(name)
    return next((k for k, v in PAPER_ROWS.items() if v == row), None) if row else None
