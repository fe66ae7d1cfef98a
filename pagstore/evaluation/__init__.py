"""Evaluation of trained classifiers: AutoAttack, APGD eps sweeps, targeted PGD pictures, non-norm-bounded
corruptions and gradient-alignment metrics.

Submodules are imported on demand (``from pagstore.evaluation.autoattack import run_autoattack``) so that
``import pagstore`` never pulls in pyautoattack or matplotlib.
"""
