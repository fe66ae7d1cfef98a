"""The evidence experiment (issue 16), one command: ``make evidence`` runs
``python -m stages.evidence --params evidence/params.yaml``.

It first runs ``dvc repro`` of the default pipeline's stages it reads (``evidence.upstream``), then every
unit (resumable: finished units are reused), then writes ``reports/evidence.md`` and its figures.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pagstore.errors import user_errors


@user_errors("evidence")
def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--params", type=Path, required=True, help="evidence params file (evidence/params.yaml)")
    p.add_argument("--root", type=Path, default=Path("."), help="project root the paths are relative to")
    p.add_argument("--skip-upstream", action="store_true", help="do not run `dvc repro` of the upstream stages")
    a = p.parse_args(argv)
    from pagstore.evidence.run import run_experiment

    results = run_experiment(a.params, a.root, skip_upstream=a.skip_upstream)
    print(json.dumps(results["runtime"]))


if __name__ == "__main__":
    main()
