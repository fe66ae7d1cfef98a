"""The restricted unpickler: numpy arrays in, everything else (os.system, eval, ...) refused."""

from __future__ import annotations

import builtins
import os
import pickle

import numpy as np
import pytest
from tests.data.data_fakes import py2_pickle

from pagstore.data import RawDataError
from pagstore.data.safe_pickle import RestrictedUnpickler, restricted_loads


def test_loads_python2_style_numpy_batch() -> None:
    x = np.arange(2 * 3072, dtype=np.uint8).reshape(2, 3072)
    blob = py2_pickle({b"data": x, b"labels": [3, 4], b"batch_label": b"test batch"})
    assert b"cnumpy.core.multiarray\n_reconstruct" in blob  # the numpy 1.x spelling real files carry
    out = restricted_loads(blob, "batch")
    np.testing.assert_array_equal(out[b"data"], x)
    assert out[b"labels"] == [3, 4] and out[b"batch_label"] == b"test batch"


def test_loads_numpy2_spelling() -> None:
    x = np.arange(12, dtype=np.uint8).reshape(3, 4)
    out = restricted_loads(pickle.dumps({"data": x}, protocol=4), "batch")
    np.testing.assert_array_equal(out["data"], x)


class _Call:
    def __init__(self, fn, *args) -> None:  # noqa: ANN001
        self.fn, self.args = fn, args

    def __reduce__(self):  # noqa: ANN204
        return (self.fn, self.args)


@pytest.mark.parametrize("fn", [os.system, builtins.exec, builtins.eval])
def test_refuses_other_globals(tmp_path, fn) -> None:  # noqa: ANN001
    marker = tmp_path / "ran"
    arg = f"touch {marker}" if fn is os.system else f"open({str(marker)!r}, 'w')"
    blob = pickle.dumps(_Call(fn, arg), protocol=2)
    refused = rf"where: unsafe or malformed pickle \(refusing global '\w+\.{fn.__name__}'"
    with pytest.raises(RawDataError, match=refused):
        restricted_loads(blob, "where")
    assert not marker.exists()


def test_find_class_admits_only_array_reconstruction() -> None:
    up = RestrictedUnpickler.__new__(RestrictedUnpickler)
    assert up.find_class("numpy", "ndarray") is np.ndarray
    old = up.find_class("numpy.core.multiarray", "_reconstruct")
    new = up.find_class("numpy._core.multiarray", "_reconstruct")
    assert old is new and callable(old)
    for module, name in [("numpy", "load"), ("numpy.lib.npyio", "load"), ("builtins", "list"), ("os", "system")]:
        with pytest.raises(pickle.UnpicklingError, match="refusing global"):
            up.find_class(module, name)


def test_truncated_pickle_is_clear() -> None:
    blob = py2_pickle({b"data": np.zeros((1, 3072), np.uint8)})
    with pytest.raises(RawDataError, match="member-x: .*(truncated|malformed)"):
        restricted_loads(blob[: len(blob) // 2], "member-x")
