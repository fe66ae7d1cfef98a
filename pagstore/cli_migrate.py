"""``pagstore migrate STORE``: rewrite a format-v1 store as format v2 (pagstore.migrate)."""

from __future__ import annotations

from typing import Annotated

import typer


def migrate(path: Annotated[str, typer.Argument(help="local store directory (format v1)")],
            grad_codec: Annotated[str, typer.Option("--grad-codec", help="raw (lossless) or int8")] = "raw") -> None:
    """Rewrite a v1 store as v2 in place (same gradients; classes 0..C-1; no created_at); re-export if exported."""
    from pagstore.migrate import migrate_store
    from pagstore.spec import SpecError
    from pagstore.store import StoreError

    try:
        attrs = migrate_store(path, grad_codec=grad_codec)
    except (StoreError, SpecError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"{path}: migrated to format_version {attrs['format_version']} (grad_codec {attrs['grad_codec']}, "
               f"{attrs['num_target_classes']} classes per sample)")


def register(app: typer.Typer) -> None:
    app.command("migrate")(migrate)
