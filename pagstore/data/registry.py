"""Dataset readers by name: the names users write as ``reader:`` in ``pipeline.yaml``.

Each reader is an options dataclass (loaded strictly from the profile's ``options``) and a function
``read(options, base_dir) -> {"train": PreparedSplit, "test": PreparedSplit}``. ``base_dir`` is the
directory relative paths in the options are resolved against (the directory of ``pipeline.yaml``), so
nothing depends on the working directory.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pagstore.config import ConfigError, from_dict
from pagstore.data import cifar, digits, imagefolder, stl10, toy2d
from pagstore.data.prepared import PreparedSplit

Splits = dict[str, PreparedSplit]


@dataclass(frozen=True)
class Reader:
    """A registered reader: its options dataclass and its read function."""

    name: str
    options: type
    read: Callable[[Any, Path], Splits]


READERS: dict[str, Reader] = {
    r.name: r
    for r in (
        Reader("digits", digits.DigitsOptions, digits.read),
        Reader("toy2d", toy2d.Toy2dOptions, toy2d.read),
        Reader("cifar10", cifar.CifarOptions, cifar.read_cifar10),
        Reader("cifar100", cifar.CifarOptions, cifar.read_cifar100),
        Reader("stl10", stl10.Stl10Options, stl10.read),
        Reader("imagefolder", imagefolder.ImageFolderOptions, imagefolder.read),
    )
}


def get_reader(name: str) -> Reader:
    """The reader registered as ``name``; ConfigError listing the known names otherwise."""
    if name not in READERS:
        raise ConfigError(f"unknown dataset reader {name!r}; known readers: {sorted(READERS)}")
    return READERS[name]


def parse_options(name: str, options: Mapping[str, Any], where: str = "<options>") -> Any:
    """Validate ``options`` strictly against reader ``name``'s options dataclass (ConfigError names the key)."""
    return from_dict(get_reader(name).options, dict(options), where=where)


def read_dataset(name: str, options: Mapping[str, Any], base_dir: str | Path = ".", where: str = "<options>") -> Splits:
    """Run reader ``name`` with ``options``; returns ``{"train": PreparedSplit, "test": PreparedSplit}``.

    Raises:
        ConfigError: bad options. RawDataError: missing or malformed raw files.
    """
    reader = get_reader(name)
    opts = parse_options(name, options, where)
    splits = reader.read(opts, Path(base_dir))
    if set(splits) != {"train", "test"}:
        raise RuntimeError(f"reader {name!r} returned splits {sorted(splits)}, expected train and test")
    train, test = splits["train"], splits["test"]
    if train.class_names != test.class_names or train.sample_shape != test.sample_shape:
        raise RuntimeError(f"reader {name!r}: train and test disagree on class names or sample shape")
    return splits
