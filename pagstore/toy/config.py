"""Parameters of the toy experiment: the ``toy`` section of ``pipeline.yaml`` as frozen dataclasses."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from pagstore.data.toy2d import Toy2dOptions
from pagstore.sources.heuristics import NNParams


@dataclass(frozen=True)
class ToyAttack:
    """L2 PGD of Appendix G.1: ``steps`` steps of ``step_size`` inside the L2 ball of radius ``eps``.

    ``random_start``: start from a random point of the ball (what foolbox's L2 PGD, which the paper used,
    does by default); no clamping, the toy data are unbounded.
    """

    eps: float = 15.0
    steps: int = 10
    step_size: float = 2.0
    random_start: bool = True

    def validate(self) -> None:
        if self.eps < 0 or self.steps < 0 or self.step_size < 0:
            raise ValueError(
                f"attack eps, steps, step_size must be >= 0, got {self.eps}, {self.steps}, {self.step_size}"
            )


@dataclass(frozen=True)
class ToyGrid:
    """Exhaustive check of the PGD number: the eps-disk around each test point searched on a polar grid of
    ``angles`` directions x ``radii`` rings (``angles: 0`` skips it)."""

    angles: int = 180
    radii: int = 30

    def validate(self) -> None:
        if self.angles < 0 or self.radii < 1:
            raise ValueError(f"grid needs angles >= 0 and radii >= 1, got {self.angles}, {self.radii}")


@dataclass(frozen=True)
class ToyParams:
    """``toy`` in pipeline.yaml.

    Attributes:
        data: toy2d reader options (seed, points_per_mode, test_size).
        nn: NN gradient-source parameters (candidates per class; 0 = the whole class).
        hidden: MLP hidden width (2 -> hidden -> 2, ReLU).
        epochs, batch_size, lr: Adam at a constant learning rate.
        lam: PAG weight of the NN-PAG model.
        seeds: one training seed per repetition (model init, batch order, NN candidates, PGD start); both
            models of a repetition share it.
        attack: the L2 PGD evaluation.
        grid: exhaustive search of the same eps-disk (a check of the attack, not a replacement).
        lambda_sweep: extra PAG weights trained and evaluated with the same seeds (empty = none).
        grad_dtype: dtype of the stored NN gradients.
        plot_seed: which seed's models the decision-boundary figure shows (must be in ``seeds``).
        device, precision: where training and evaluation run (pagstore.devices); models come back on the CPU.
    """

    data: Toy2dOptions = field(default_factory=Toy2dOptions)
    nn: NNParams = field(default_factory=NNParams)
    hidden: int = 32
    epochs: int = 100
    batch_size: int = 128
    lr: float = 0.01
    lam: float = 1.0
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    attack: ToyAttack = field(default_factory=ToyAttack)
    grid: ToyGrid = field(default_factory=ToyGrid)
    lambda_sweep: tuple[float, ...] = ()
    grad_dtype: Literal["float16", "float32"] = "float32"
    plot_seed: int = 0
    device: str = "auto"
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"

    def validate(self) -> None:
        from pagstore.devices import check_device

        check_device(self.device)
        if self.hidden < 1 or self.epochs < 1 or self.batch_size < 1:
            raise ValueError(
                f"hidden, epochs, batch_size must be >= 1, got {self.hidden}, {self.epochs}, {self.batch_size}"
            )
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if not self.lam > 0 or any(not lam > 0 for lam in self.lambda_sweep):
            raise ValueError(f"lam and every lambda_sweep value must be > 0, got {self.lam}, {list(self.lambda_sweep)}")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be a non-empty list of distinct integers, got {list(self.seeds)}")
        if self.plot_seed not in self.seeds:
            raise ValueError(f"plot_seed {self.plot_seed} is not one of seeds {list(self.seeds)}")
