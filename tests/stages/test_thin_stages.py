"""Stage modules stay thin wrappers (issue 17): the work lives in pagstore, where other code can import it."""

from __future__ import annotations

from pathlib import Path

STAGES = Path(__file__).resolve().parents[2] / "stages"
MAX_LINES = 120


def test_no_stage_module_is_over_120_lines():
    sizes = {p.name: len(p.read_text().splitlines()) for p in sorted(STAGES.glob("*.py"))}
    assert len(sizes) >= 7, sizes
    over = {name: n for name, n in sizes.items() if n > MAX_LINES}
    assert not over, f"stage modules over {MAX_LINES} lines (move the logic into pagstore): {over}"
