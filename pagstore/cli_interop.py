"""``pagstore import ...``: bring the paper's released files and original diffusion checkpoints in.

    pagstore import pag-rob DATA.pt LABELS.pt --prepared data/prepared --out STORE
    pagstore import classifier FILE --layout pag-rob --arch resnet18 --num-classes 10 --out CKPT
    pagstore import diffusion STATE_DICT.pt --out CKPT -- --image_size 32 --num_channels 128 ...

``pagstore export STORE --format pag-rob --out DIR`` (in cli.py) goes the other way for stores.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

import_app = typer.Typer(no_args_is_help=True, add_completion=False,
                         help="Import the paper's released gradients and models, or original diffusion checkpoints.")
out = Console()
err = Console(stderr=True)


def _fail(message: str, code: int = 2) -> None:
    err.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True, markup=False)
    raise typer.Exit(code)


@import_app.command("pag-rob")
def pag_rob(data: Annotated[Path, typer.Argument(help="official *_data.pt: float (N, C+1, ch, H, W)")],
            labels: Annotated[Path, typer.Argument(help="official *_label.pt: int (N,)")],
            prepared: Annotated[Path, typer.Option(help="prepared data (folder with train.npz)")],
            store: Annotated[str, typer.Option("--out", help="gradient store to write (resumed if unfinished)")],
            pixel_space: Annotated[str, typer.Option(help="auto | signed ([-1, 1]) | unit ([0, 1])")] = "auto",
            grad_dtype: Annotated[str, typer.Option(help="float16 | float32")] = "float16",
            samples_per_shard: Annotated[int | None, typer.Option(help="rows per zarr shard")] = None,
            overwrite: Annotated[bool, typer.Option(help="replace an existing store")] = False) -> None:
    """Convert an official gradient set (royg27/PAG-ROB) into a gradient store."""
    from pagstore.interop import InteropError
    from pagstore.interop.pag_rob import import_pag_rob

    if pixel_space not in ("auto", "signed", "unit"):
        _fail(f"--pixel-space {pixel_space!r}: expected auto, signed or unit")
    try:
        r = import_pag_rob(data, labels, prepared, store, pixel_space=pixel_space, grad_dtype=grad_dtype,
                           samples_per_shard=samples_per_shard, overwrite=overwrite)
    except (InteropError, ValueError) as exc:
        _fail(str(exc))
    out.print(f"imported {r.num_rows} rows into {store} ({r.shards_written} shard(s) written; images "
              f"{r.pixel_space}, values [{r.value_range[0]:.3g}, {r.value_range[1]:.3g}]); verified", highlight=False)


@import_app.command("classifier")
def classifier(path: Annotated[Path, typer.Argument(help="DataParallel(model).state_dict() file")],
               ckpt: Annotated[Path, typer.Option("--out", help="our classifier checkpoint to write")],
               layout: Annotated[str, typer.Option(help="layout of the file")] = "pag-rob",
               arch: Annotated[str, typer.Option(help="architecture")] = "resnet18",
               num_classes: Annotated[int, typer.Option(help="C, the number of logits")] = 10,
               image_size: Annotated[int, typer.Option(help="input height = width")] = 32,
               channels: Annotated[int, typer.Option(help="input channels")] = 3,
               paper_row: Annotated[str | None, typer.Option(help="paper row for the card (default: from the "
                                                                  "file name)")] = None) -> None:
    """Convert an official classifier (royg27/PAG-ROB) into our checkpoint, with a card."""
    from pagstore.interop import InteropError
    from pagstore.interop.classifier_import import import_classifier

    try:
        card = import_classifier(path, ckpt, layout=layout, arch=arch, num_classes=num_classes,
                                 sample_shape=(channels, image_size, image_size), paper_row=paper_row)
    except (InteropError, ValueError) as exc:
        _fail(str(exc))
    out.print(f"wrote {ckpt}: {json.dumps(card, sort_keys=True)}", highlight=False, soft_wrap=True, markup=False)


@import_app.command("diffusion")
def diffusion(path: Annotated[Path, typer.Argument(help="bare improved-diffusion state_dict")],
              flags: Annotated[list[str] | None, typer.Argument(help="original flags, after --")] = None,
              ckpt: Annotated[Path, typer.Option("--out", help="our diffusion checkpoint to write")] = Path(),
              num_classes: Annotated[int | None, typer.Option(help="check the label count")] = None) -> None:
    """Convert an original improved-diffusion checkpoint, described by its original flags (after --)."""
    from pagstore.interop import InteropError
    from pagstore.interop.diffusion_import import import_diffusion

    if ckpt == Path():
        _fail("--out is required")
    try:
        info = import_diffusion(path, ckpt, list(flags or []), num_classes=num_classes)
    except InteropError as exc:
        _fail(str(exc))
    out.print(f"wrote {ckpt}: {json.dumps(info['config'], sort_keys=True)}", highlight=False, soft_wrap=True,
              markup=False)


def export_pag_rob_command(store: str, fmt: str, out_dir: Path | None) -> None:
    """``pagstore export STORE --format pag-rob --out DIR`` (registered on ``export`` in cli.py)."""
    from pagstore.interop import InteropError
    from pagstore.interop.pag_rob import export_pag_rob
    from pagstore.spec import SpecError
    from pagstore.store import StoreDataError, StoreError

    if fmt != "pag-rob":
        _fail(f"--format {fmt!r}: expected webdataset or pag-rob")
    if out_dir is None:
        _fail("--format pag-rob needs --out DIR")
    try:
        data, labels = export_pag_rob(store, out_dir)
    except StoreDataError as exc:
        _fail(str(exc), code=1)
    except (InteropError, StoreError, SpecError) as exc:
        _fail(str(exc))
    out.print(f"wrote {data} and {labels}", highlight=False)
