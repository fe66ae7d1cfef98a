"""StoreSpec: the one parser of store attributes."""

from __future__ import annotations

import pytest
from store_fixtures import filled_store

from pagstore.spec import SpecError, StoreSpec


def _attrs(tmp_path) -> dict:
    return filled_store(tmp_path / "s", num_samples=10, samples_per_shard=4).spec.to_attrs()


def test_attrs_round_trip(tmp_path) -> None:
    attrs = _attrs(tmp_path)
    spec = StoreSpec.from_attrs(attrs)
    assert spec.to_attrs() == attrs
    assert spec.num_shards == 3 and spec.shard_slice(2) == slice(8, 10)
    assert spec.grad_shape == (3, 1, 4, 4) and spec.pixel_space == "unit"
    assert attrs["created_by"].startswith("pagstore ") and "direction" in attrs["grad_semantics"]
    with pytest.raises(IndexError, match="shard 3 out of range"):
        spec.shard_slice(3)


@pytest.mark.parametrize("version, hint", [(3, "newer"), (0, ""), ("1", "")])
def test_unsupported_versions_are_named(tmp_path, version, hint) -> None:
    attrs = {**_attrs(tmp_path), "format_version": version}
    with pytest.raises(SpecError, match=rf"format_version {version!r}.*{hint}.*reads format_version 1, 2"):
        StoreSpec.from_attrs(attrs, where="here")


def test_missing_and_bad_keys_are_named(tmp_path) -> None:
    attrs = _attrs(tmp_path)
    with pytest.raises(SpecError, match="not a pagstore gradient store"):
        StoreSpec.from_attrs({})
    with pytest.raises(SpecError, match="missing: grad_dtype, source"):
        StoreSpec.from_attrs({k: v for k, v in attrs.items() if k not in ("grad_dtype", "source")})
    with pytest.raises(SpecError, match="dataset.fingerprint"):
        StoreSpec.from_attrs({**attrs, "dataset": {k: v for k, v in attrs["dataset"].items() if k != "fingerprint"}})
    with pytest.raises(SpecError, match="grad_dtype must be one of.*'bfloat16'"):
        StoreSpec.from_attrs({**attrs, "grad_dtype": "bfloat16"})
    with pytest.raises(SpecError, match="'num_samples' must be an integer"):
        StoreSpec.from_attrs({**attrs, "num_samples": "10"})
    with pytest.raises(SpecError, match="pixel_space 'raw' does not fit image_dtype 'uint8'"):
        StoreSpec.from_attrs({**attrs, "pixel_space": "raw"})
