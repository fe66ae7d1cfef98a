"""Classifier training: objectives (CE, PAG, AT-PGD, TRADES and their sums) plugged into one loop.

Entry points: :func:`pagstore.training.run.train_method` (a whole method, as the ``train`` stage runs it),
:func:`pagstore.training.loop.fit` (the loop), :func:`pagstore.training.checkpoint.load_classifier`.
"""

from pagstore.training.checkpoint import load_classifier, save_checkpoint
from pagstore.training.objectives import ObjectiveSpec, objective_loss

__all__ = ["ObjectiveSpec", "load_classifier", "objective_loss", "save_checkpoint"]
