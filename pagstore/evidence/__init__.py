"""The evidence experiment (issue 16): seeds, a fixed AutoAttack subset, bootstrap intervals, controls,
the noise-aware source, lambda / SBG-t sweeps, alignment metrics and attack-strength checks, reported in
``reports/evidence.md``. Entry point: ``make evidence`` (``python -m stages.evidence --params ...``).
"""
