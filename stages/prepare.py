"""Stage ``prepare``: read the selected dataset profile with its reader and write the prepared splits.

Outputs (one directory, replaced atomically): ``<out>/train.npz``, ``<out>/test.npz`` (see
:mod:`pagstore.data.prepared`) and ``<out>/meta.json`` (profile, reader, options, fingerprints, sizes,
class names). Relative paths in the reader options are resolved against the params file's directory.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from pathlib import Path
from typing import Any

from pagstore.errors import user_errors
from pagstore.atomic import atomic_dir, write_json
from pagstore.config import ConfigError
from pagstore.data.prepared import PreparedDataError
from pagstore.data.profile import load_profile
from pagstore.data.raw import RawDataError
from pagstore.data.registry import parse_options, read_dataset

log = logging.getLogger("stages.prepare")


def prepare(params_path: str | Path, out: str | Path) -> dict[str, Any]:
    """Run the profile named by ``profile`` in ``params_path`` and write its splits to ``out``; return meta."""
    params_path = Path(params_path)
    name, profile = load_profile(params_path)
    where = f"{params_path}:datasets.{name}.options"
    options = parse_options(profile.reader, profile.options, where)
    log.info("reading profile %r with reader %r", name, profile.reader)
    splits = read_dataset(profile.reader, profile.options, base_dir=params_path.parent, where=where)
    train = splits["train"]
    meta = {
        "profile": name,
        "reader": profile.reader,
        "options": dataclasses.asdict(options),
        "class_names": list(train.class_names),
        "num_classes": train.num_classes,
        "sample_shape": list(train.sample_shape),
        "pixel_space": train.pixel_space,
        "sizes": {k: len(s) for k, s in splits.items()},
        "fingerprints": {k: s.fingerprint() for k, s in splits.items()},
    }
    with atomic_dir(out) as tmp:
        for split, data in splits.items():
            data.save(tmp / f"{split}.npz")
        write_json(tmp / "meta.json", meta)
    log.info("wrote %s: %s", out, meta["sizes"])
    return meta


@user_errors("prepare")
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, required=True, help="pipeline.yaml")
    parser.add_argument("--out", type=Path, required=True, help="output directory (data/prepared)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    try:
        prepare(args.params, args.out)
    except (ConfigError, RawDataError, PreparedDataError) as exc:
        # Bad parameters or raw files: the message names the key or file; a traceback would only bury it.
        raise SystemExit(f"prepare: {exc}") from None


if __name__ == "__main__":
    main()
