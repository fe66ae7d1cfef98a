"""The ``pagstore`` command: look inside, check, export and picture gradient stores (a thin layer over the API).

    pagstore inspect STORE [--json]      spec, arrays, completeness, size, per-class gradient norms
    pagstore verify STORE [--json]       integrity check; exit 1 naming the failing shard and samples
    pagstore export STORE                zarr -> webdataset shards (STORE/shards/)
    pagstore export STORE --format pag-rob --out DIR   the official PAG-ROB training files
    pagstore import ...                  the paper's released files, original diffusion checkpoints
    pagstore show STORE -o grid.png      image + its C gradients per row (like the paper's Fig. 7)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Inspect, verify, export and show gradient stores.")
out = Console()
err = Console(stderr=True)

StorePath = Annotated[str, typer.Argument(help="store directory or fsspec URL (file://, s3://, memory://)")]
JsonFlag = Annotated[bool, typer.Option("--json", help="print machine-readable JSON instead of tables")]


def _fail(message: str, code: int = 2) -> None:
    err.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _open(path: str) -> Any:
    from pagstore.spec import SpecError
    from pagstore.store import StoreError, open_store

    try:
        return open_store(path, "r")
    except (StoreError, SpecError) as exc:
        _fail(str(exc))


@app.command()
def inspect(path: StorePath, as_json: JsonFlag = False) -> None:
    """Spec, array shapes and dtypes, source parameters, completeness, size, per-class gradient norms."""
    store = _open(path)
    info = _inspect_info(store)
    if as_json:
        print(json.dumps(info, indent=2, sort_keys=True))
        return
    spec = info["spec"]
    t = Table(title=f"gradient store {store.location}", show_header=False)
    for key in ("format_version", "num_samples", "sample_shape", "image_dtype", "grad_dtype", "grad_codec",
                "num_target_classes", "class_selection", "pixel_space", "samples_per_shard", "created_by",
                "created_at"):
        if key in spec:  # v1 has created_at; v2 has the codec and the K-of-C layout
            t.add_row(key, str(spec[key]))
    ds = spec["dataset"]
    t.add_row("dataset", f"{ds['name']} ({ds['split']}), {len(ds['class_names'])} classes, {ds['fingerprint']}")
    t.add_row("source", json.dumps(spec["source"], sort_keys=True))
    t.add_row("complete", f"{info['shards_done']}/{info['num_shards']} shards")
    mib = 2**20
    t.add_row("size on disk", f"{info['stored_bytes'] / mib:.2f} MiB (zarr), export {info['export_bytes'] / mib:.2f} MiB")
    t.add_row("compression", f"{info['compression_ratio']:.3f} of raw bytes (gradient chunks: "
              f"{info['grad_compression'] or 'other codecs'})")
    out.print(t)
    arrays = Table(title="arrays")
    for col in ("name", "shape", "dtype", "chunks", "shards"):
        arrays.add_column(col)
    for name, a in info["arrays"].items():
        arrays.add_row(name, str(tuple(a["shape"])), a["dtype"], str(a["chunks"]), str(a["shards"]))
    out.print(arrays)
    norms = Table(title="gradient L2 norms per class (over written shards)")
    for col in ("class", "name", "mean", "std", "min", "max"):
        norms.add_column(col)
    for row in info["grad_norms"]:
        norms.add_row(str(row["class"]), row["name"], *(f"{row[k]:.4g}" for k in ("mean", "std", "min", "max")))
    out.print(norms)


def _inspect_info(store: Any) -> dict[str, Any]:
    import fsspec

    arrays = {n: {"shape": list(a.shape), "dtype": str(a.dtype), "chunks": list(a.chunks),
                  "shards": list(a.shards) if a.shards else None, "nbytes": int(a.nbytes)}
              for n, a in store.arrays.items()}
    fs, root = fsspec.core.url_to_fs(store.location)
    stored = sum(_du(fs, f"{root}/{n}") for n in arrays)
    raw = sum(a["nbytes"] for a in arrays.values())
    done = store.done_flags()
    return {"spec": store.spec.to_attrs(), "arrays": arrays, "grad_compression": store.grad_compression,
            "num_shards": store.num_shards,
            "shards_done": int(done.sum()), "missing_shards": [int(k) for k in np.flatnonzero(~done)],
            "stored_bytes": stored, "export_bytes": _du(fs, f"{root}/shards"),
            "compression_ratio": stored / raw, "grad_norms": _grad_norms(store, done)}


def _du(fs: Any, path: str) -> int:
    return int(fs.du(path, total=True)) if fs.exists(path) else 0


def _grad_norms(store: Any, done: np.ndarray) -> list[dict[str, Any]]:
    """Per-class gradient norm statistics over the written shards. Read through ``store.read`` so a lost or
    corrupt shard file, NaN/inf or a bad label stops inspect (exit 1) instead of skewing the statistics."""
    from pagstore.store import StoreDataError

    c = store.num_classes
    norms: list[list[np.ndarray]] = [[] for _ in range(c)]
    for k in np.flatnonzero(done):
        try:
            sl = store.shard_slice(int(k))
            g, classes = store.read(sl)[2].astype(np.float32), store.read_classes(sl)
        except StoreDataError as exc:
            _fail(str(exc), code=1)
        n = np.sqrt((g.reshape(g.shape[0], g.shape[1], -1) ** 2).sum(-1))  # (n, K)
        for j in range(c):  # K < C stores: the norms of the samples that hold class j
            norms[j].append(n[classes == j])
    rows = []
    for j, name in enumerate(store.spec.dataset.class_names):
        v = np.concatenate(norms[j]) if norms[j] else np.zeros(0)
        stats = {"mean": v.mean(), "std": v.std(), "min": v.min(), "max": v.max()} if v.size else \
            dict.fromkeys(("mean", "std", "min", "max"), float("nan"))
        rows.append({"class": j, "name": name, **{k: float(x) for k, x in stats.items()}})
    return rows


@app.command()
def verify(path: StorePath, as_json: JsonFlag = False) -> None:
    """Check the spec, completeness, every shard's data and the export checksums; exit 1 on any problem."""
    from pagstore.verify import verify_store

    report = verify_store(path)
    if as_json:
        print(json.dumps(report.to_dict(), indent=2, sort_keys=True))
    elif report.ok:
        export = ", export checksums match and its samples equal the zarr rows" if report.export_checked else ""
        out.print(f"[green]OK[/green] {report.path}: {report.num_samples} samples, {report.shards_checked} shards"
                  f"{export}", highlight=False)
    else:
        # Plain lines, not a table: shard file names must never be folded.
        out.print(f"[red]FAILED[/red] {report.path}: {len(report.problems)} problem(s)", highlight=False)
        for p in report.problems:
            where = f"shard {p.shard} " if p.shard is not None else ""
            rows = f"samples {p.samples[0]}..{p.samples[1]} " if p.samples else ""
            rows += f"sample {p.sample} " if p.sample is not None else ""
            out.print(f"  [{p.kind}] {where}{rows}{p.message}", highlight=False, soft_wrap=True, markup=False)
    if not report.ok:
        raise typer.Exit(1)


@app.command()
def export(path: StorePath,
           samples_per_tar: Annotated[int | None, typer.Option(help="samples per tar (default ~64 MiB)")] = None,
           fmt: Annotated[str, typer.Option("--format", help="webdataset | pag-rob")] = "webdataset",
           out_dir: Annotated[Path | None, typer.Option("--out", help="folder for --format pag-rob")] = None
           ) -> None:
    """Write the webdataset export (STORE/shards/grads-%06d.tar + index.json) of a complete store, or with
    ``--format pag-rob`` the two files the official PAG-ROB training script reads."""
    if fmt != "webdataset":
        from pagstore.cli_interop import export_pag_rob_command

        export_pag_rob_command(path, fmt, out_dir)
        return
    from pagstore.shards import export_webdataset
    from pagstore.spec import SpecError
    from pagstore.store import StoreDataError, StoreError

    try:
        index = export_webdataset(path, samples_per_tar=samples_per_tar)
    except StoreDataError as exc:  # damaged data: like `verify`, exit 1 (2 = unusable arguments/store)
        _fail(str(exc), code=1)
    except (StoreError, SpecError, ValueError) as exc:
        _fail(str(exc))
    out.print(f"exported {index['num_samples']} samples to {len(index['shards'])} tar(s) in {path}/shards")


@app.command()
def show(path: StorePath,
         output: Annotated[Path, typer.Option("--out", "-o", help="PNG file to write")],
         index: Annotated[list[int] | None, typer.Option("--index", "-i", help="store rows to show")] = None,
         count: Annotated[int, typer.Option(help="rows to show when --index is not given")] = 4) -> None:
    """PNG grid: each row one image and its C gradients, each gradient normalised per image."""
    from pagstore.atomic import atomic_path

    store = _open(path)
    if len(store.sample_shape) != 3:
        _fail(f"{store.location}: show needs image samples (ch, H, W); this store holds {store.sample_shape}")
    rows = list(index) if index else list(range(min(count, store.num_samples)))
    bad = [r for r in rows if not 0 <= r < store.num_samples]
    if bad:
        _fail(f"--index {bad[0]} is outside [0, {store.num_samples})")
    from pagstore.store import StoreDataError

    try:
        images, labels, grads = store.read(np.asarray(rows))
    except StoreDataError as exc:
        _fail(str(exc), code=1)
    names = store.spec.dataset.class_names
    columns = tuple(names[c] for c in store.read_classes(rows[:1])[0])  # row 0's classes (K < C: its own K)
    fig = _grid_figure(images, labels, grads, names, columns)
    with atomic_path(output, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    out.print(f"wrote {output}")


def _grid_figure(images: np.ndarray, labels: np.ndarray, grads: np.ndarray, class_names: tuple[str, ...],
                 columns: tuple[str, ...] | None = None) -> Any:
    """images (n, ch, H, W), grads (n, C, ch, H, W) -> matplotlib figure of n rows x (1 + C) panels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n, c = grads.shape[:2]
    fig, axes = plt.subplots(n, c + 1, figsize=(1.2 * (c + 1), 1.3 * n), squeeze=False)
    for i in range(n):
        img = images[i].astype(np.float32) / (255.0 if images.dtype == np.uint8 else 1.0)
        _panel(axes[i, 0], img, f"y={class_names[labels[i]]}")
        g = grads[i].astype(np.float32)
        lo, hi = g.min(), g.max()  # one scale for the C gradients of this image: relative strength shows
        g = (g - lo) / (hi - lo) if hi > lo else np.full_like(g, 0.5)
        for j in range(c):
            _panel(axes[i, j + 1], g[j], (columns or class_names)[j] if i == 0 else "")
    fig.tight_layout()
    return fig


def _panel(ax: Any, chw: np.ndarray, title: str) -> None:
    hwc = np.clip(chw.transpose(1, 2, 0), 0, 1)
    if hwc.shape[-1] not in (1, 3):  # e.g. 2 or 4 channels: show their mean
        hwc = hwc.mean(-1, keepdims=True)
    ax.imshow(hwc[..., 0] if hwc.shape[-1] == 1 else hwc, cmap="gray", vmin=0, vmax=1)
    ax.set_title(title, fontsize=7)
    ax.axis("off")


# Verbs with their own module (one job per file), registered here.
from pagstore.cli_config import config as _config  # noqa: E402
from pagstore.cli_migrate import register as _register_migrate  # noqa: E402

app.command("config")(_config)
_register_migrate(app)

from pagstore.cli_interop import import_app  # noqa: E402  (the `pagstore import ...` verbs)

app.add_typer(import_app, name="import")

if __name__ == "__main__":
    app()
