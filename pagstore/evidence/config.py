"""The ``evidence:`` section of an evidence params file (``evidence/params.yaml``), as frozen dataclasses.

The experiment reuses the default pipeline's recipe: ``base_params`` (pipeline.yaml) gives ``train.common``,
the dataset profile and its attack budgets, and ``distill`` (for the SBG t-sweep stores). Methods are
written with the keys of ``train.methods`` (ObjectiveSpec), controls included; every method trains with
every seed of ``seeds`` (``train.common.seed`` replaced).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from pagstore.training.objectives import ObjectiveSpec


@dataclass(frozen=True)
class EvidencePaths:
    """Inputs made by the default pipeline (``upstream`` stages) and this experiment's outputs."""

    prepared: str = "data/prepared"
    stores: str = "stores"
    diffusion: str = "models/diffusion/checkpoint.pt"
    sbg_test: str = "stores/sbg-test"
    toy: str = "metrics/toy.details.json"
    noisy_metrics: str = "metrics/noisy_classifier.json"
    work: str = "evidence/run"
    report: str = "reports/evidence.md"
    figures: str = "reports/evidence"


@dataclass(frozen=True)
class EvidenceEval:
    """AutoAttack on the first ``num_images`` of a seeded permutation of the test split, for every model;
    alignment metrics on the first ``metric_images`` of the SBG test store; local PCA with k / dim."""

    num_images: int = 200
    subset_seed: int = 0
    norms: tuple[str, ...] = ("L2",)
    metric_images: int = 100
    manifold_k: int = 50
    manifold_dim: int = 10
    n_boot: int = 2000
    batch_size: int = 250

    def validate(self) -> None:
        if self.num_images < 1 or self.metric_images < 1 or self.n_boot < 100:
            raise ValueError("need num_images >= 1, metric_images >= 1 and n_boot >= 100")
        bad = [n for n in self.norms if n not in ("L2", "Linf")]
        if bad or not self.norms:
            raise ValueError(f"norms: expected a non-empty subset of ['L2', 'Linf'], got {list(self.norms)}")


@dataclass(frozen=True)
class GradnormCalibration:
    """Pick ``method``'s lam among ``lams`` (trained at seed ``seed``) so that its held-out input-gradient
    norm ratio to ``reference`` matches ``match``'s ratio (closest in log ratio)."""

    method: str = "gradnorm"
    lams: tuple[float, ...] = (0.01, 0.03, 0.1, 0.3, 1.0)
    match: str = "pag-sbg"
    reference: str = "vanilla"
    seed: int = 0


@dataclass(frozen=True)
class Sweeps:
    """Lambda sweeps per method and the SBG-t sweep, one seed, APGD-CE (``apgd_iter``) on the AA subset."""

    seed: int = 0
    apgd_iter: int = 20
    norm: str = "L2"
    lam: dict[str, tuple[float, ...]] = field(default_factory=dict)
    sbg_t: tuple[int, ...] = ()
    sbg_t_method: str = "pag-sbg"


@dataclass(frozen=True)
class AttackChecks:
    """Checks on the most robust of ``pag_candidates`` (mean AA over seeds) and its AT counterpart ``at``."""

    at: str = "at-l2"
    pag_candidates: tuple[str, ...] = ("pag-sbg",)
    norm: str = "L2"
    seed: int = 0
    apgd_iter: int = 100
    apgd_restarts: int = 5
    square_queries: int = 5000
    pgd_steps: int = 100
    tolerance: float = 2.0


@dataclass(frozen=True)
class Comparison:
    """One claim: ``a`` > ``b`` in AA robust accuracy (the first norm), stated only if intervals separate."""

    claim: str
    a: str
    b: str


@dataclass(frozen=True)
class EvidenceParams:
    """The whole ``evidence`` section."""

    base_params: str
    seeds: tuple[int, ...]
    methods: dict[str, ObjectiveSpec]
    upstream: tuple[str, ...] = ()
    paths: EvidencePaths = field(default_factory=EvidencePaths)
    eval: EvidenceEval = field(default_factory=EvidenceEval)
    gradnorm: GradnormCalibration | None = None
    sweeps: Sweeps = field(default_factory=Sweeps)
    attack_checks: AttackChecks | None = None
    comparisons: tuple[Comparison, ...] = ()

    def validate(self) -> None:
        if len(self.seeds) < 1 or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be distinct and non-empty, got {list(self.seeds)}")
        names = set(self.methods)
        if self.gradnorm is not None:
            names.add(self.gradnorm.method)
            for key in ("match", "reference"):
                if getattr(self.gradnorm, key) not in self.methods:
                    raise ValueError(f"gradnorm.{key}: {getattr(self.gradnorm, key)!r} is not in methods")
        for c in self.comparisons:
            for side in (c.a, c.b):
                if side not in names:
                    raise ValueError(f"comparisons: {c.claim!r} names {side!r}, not a method of this experiment")
        for m in self.sweeps.lam:
            if m not in self.methods:
                raise ValueError(f"sweeps.lam: {m!r} is not in methods")
        if self.sweeps.sbg_t and self.sweeps.sbg_t_method not in self.methods:
            raise ValueError(f"sweeps.sbg_t_method: {self.sweeps.sbg_t_method!r} is not in methods")
        if self.attack_checks is not None:
            for m in (self.attack_checks.at, *self.attack_checks.pag_candidates):
                if m not in names:
                    raise ValueError(f"attack_checks: {m!r} is not a method of this experiment")

    def gradnorm_spec(self, lam: float) -> ObjectiveSpec:
        """The gradnorm control at ``lam``: the ``gradnorm.reference`` method's settings (recipe keys such
        as ``pag_bn``), with ``objective: gradnorm`` and no store."""
        if self.gradnorm is None:
            raise ValueError("gradnorm_spec: this experiment has no gradnorm section")
        ref = self.methods[self.gradnorm.reference]
        return dataclasses.replace(ref, objective="gradnorm", store=None, lam=float(lam), targets="store")

    def all_methods(self, gradnorm_lam: float | None = None) -> dict[str, ObjectiveSpec]:
        """methods plus the calibrated gradnorm method (once its lam is known)."""
        out = dict(self.methods)
        if self.gradnorm is not None and gradnorm_lam is not None:
            out[self.gradnorm.method] = self.gradnorm_spec(gradnorm_lam)
        return out
