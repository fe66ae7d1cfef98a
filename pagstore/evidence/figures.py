"""PNG figures of the evidence report: the lambda sweeps (the paper's Fig. 5 analogue) and the SBG-t sweep."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def sweep_plot(rows: list[dict[str, Any]], x_key: str, path: Path, title: str, attack: str,
               log_x: bool = False) -> None:
    """Clean and attacked accuracy (%) against ``x_key`` (one line each) -> ``path`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from pagstore.atomic import atomic_path

    rows = sorted(rows, key=lambda r: r[x_key])
    xs = [r[x_key] for r in rows]
    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    ax.plot(xs, [r["clean"] for r in rows], "o-", label="clean")
    ax.plot(xs, [r["apgd"] for r in rows], "s-", label=attack)
    if log_x and min(xs) > 0:
        ax.set_xscale("log")
    ax.set_xlabel(x_key)
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
