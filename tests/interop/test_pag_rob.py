"""Official gradient sets <-> stores: matching, mapping, round trips and refusals."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pagstore.interop import InteropError
from pagstore.interop.pag_rob import export_pag_rob, import_pag_rob
from pagstore.store import open_store
from tests.interop.fakes import Payload, make_gradient_set, make_prepared, official_images


@pytest.fixture
def official(tmp_path):
    split = make_prepared(tmp_path / "data/prepared", n=40)
    data_path, label_path, order, data = make_gradient_set(tmp_path / "release", split)
    return tmp_path, split, data_path, label_path, order, data


def test_import_matches_rows_maps_pixels_and_records_the_source(official):
    tmp, split, data_path, label_path, order, data = official
    r = import_pag_rob(data_path, label_path, tmp / "data/prepared", tmp / "stores/sbg", samples_per_shard=16)
    assert (r.num_rows, r.shards_written, r.pixel_space) == (40, 3, "signed")
    store = open_store(tmp / "stores/sbg")
    images, labels, grads = store.read(slice(None))
    np.testing.assert_array_equal(store.read_index(slice(None)), order)
    np.testing.assert_array_equal(images, split.images[order])
    np.testing.assert_array_equal(labels, split.labels[order])
    # Gradients: their [-1, 1]-space gradient times 2 (chain rule of x = 2 x01 - 1), stored as float16.
    np.testing.assert_array_equal(grads, (2 * data[:, 1:].numpy()).astype(np.float16))
    src = store.spec.source
    assert src["name"] == "imported" and src["realization"] == "sbg" and src["mapping"]["pixel_space"] == "signed"
    assert src["data_file"] == "c10_sbg_data.pt" and src["labels_file"] == "c10_sbg_label.pt"
    import hashlib
    assert src["data_sha256"] == "sha256:" + hashlib.sha256(data_path.read_bytes()).hexdigest()
    assert src["labels_sha256"] == "sha256:" + hashlib.sha256(label_path.read_bytes()).hexdigest()
    assert store.spec.dataset.fingerprint == split.fingerprint()
    assert (tmp / "stores/sbg/shards/index.json").is_file()  # exported: training streams it


def test_export_pair_read_back_equals_the_store_and_reimports_identically(official):
    tmp, split, data_path, label_path, _, _ = official
    import_pag_rob(data_path, label_path, tmp / "data/prepared", tmp / "a", samples_per_shard=16)
    d, lab = export_pag_rob(tmp / "a", tmp / "out")
    assert (d.name, lab.name) == ("c10_sbg_data.pt", "c10_sbg_label.pt")
    data = torch.load(d, weights_only=True)
    labels = torch.load(lab, weights_only=True)
    images, store_labels, grads = open_store(tmp / "a").read(slice(None))
    assert data.dtype == torch.float32 and data.shape == (40, 11, 3, 32, 32) and labels.dtype == torch.int64
    torch.testing.assert_close(data[:, 0], torch.from_numpy(images).float() / 127.5 - 1, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(np.rint((data[:, 0].numpy() + 1) * 127.5).astype(np.uint8), images)
    np.testing.assert_array_equal(data[:, 1:].numpy() * 2, grads.astype(np.float32))
    np.testing.assert_array_equal(labels.numpy(), store_labels)
    import_pag_rob(d, lab, tmp / "data/prepared", tmp / "b", samples_per_shard=16)
    a, b = open_store(tmp / "a"), open_store(tmp / "b")
    for x, y in zip(a.read(slice(None)), b.read(slice(None)), strict=True):
        np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(a.read_index(slice(None)), b.read_index(slice(None)))


def test_an_interrupted_import_resumes_only_missing_shards(official):
    tmp, _, data_path, label_path, _, _ = official
    import_pag_rob(data_path, label_path, tmp / "data/prepared", tmp / "s", samples_per_shard=16)
    store = open_store(tmp / "s", "r+")
    store.arrays["done"][1] = False  # as if killed while writing shard 1
    r = import_pag_rob(data_path, label_path, tmp / "data/prepared", tmp / "s", samples_per_shard=16)
    assert r.shards_written == 1 and open_store(tmp / "s").is_complete()


def test_unmatched_image_is_refused_naming_file_and_row(official):
    tmp, split, _, _, _, _ = official
    bad = split.images.copy()
    bad[7, 0, 0, 0] ^= 1  # one pixel level off: not in the prepared split
    data = torch.cat([official_images(bad)[:, None], torch.zeros(40, 10, 3, 32, 32)], 1)
    torch.save(data, tmp / "d.pt")
    torch.save(torch.from_numpy(split.labels), tmp / "l.pt")
    with pytest.raises(InteropError, match=r"d\.pt: row 7: image not found in the prepared train split"):
        import_pag_rob(tmp / "d.pt", tmp / "l.pt", tmp / "data/prepared", tmp / "s")


def test_off_level_values_and_wrong_labels_name_the_row(official):
    tmp, split, _, _, _, _ = official
    data = torch.cat([official_images(split.images)[:, None], torch.zeros(40, 10, 3, 32, 32)], 1)
    data[3, 0, 1, 2, 2] += 0.3 / 127.5  # a third of a level off
    torch.save(data, tmp / "d.pt")
    torch.save(torch.from_numpy(split.labels), tmp / "l.pt")
    with pytest.raises(InteropError, match=r"d\.pt: row 3: image is not on the 256 pixel levels"):
        import_pag_rob(tmp / "d.pt", tmp / "l.pt", tmp / "data/prepared", tmp / "s")
    data[3, 0, 1, 2, 2] -= 0.3 / 127.5
    torch.save(data, tmp / "d.pt")
    labels = split.labels.copy()
    labels[5] = (labels[5] + 1) % 10
    torch.save(torch.from_numpy(labels), tmp / "l.pt")
    with pytest.raises(InteropError, match=rf"d\.pt: row 5: image is train index 5 with label {split.labels[5]}, "
                                           rf"but the labels file says {labels[5]}"):
        import_pag_rob(tmp / "d.pt", tmp / "l.pt", tmp / "data/prepared", tmp / "s")


@pytest.mark.parametrize("make, match", [
    (lambda: torch.zeros(40, 10, 3, 32, 32), r"expected shape \(N, 11, 3, 32, 32\).*found \(40, 10, 3, 32, 32\)"),
    (lambda: torch.zeros(40, 11, 3, 32, 32, dtype=torch.int64), r"expected a 5-d tensor of float32, float64"),
    (lambda: {"data": torch.zeros(2)}, r"expected a plain tensor .* found dict"),
    (lambda: [Payload()], r"not a safe torch.save file .*UnpicklingError"),
])
def test_malformed_and_hostile_data_files_are_refused(official, make, match, capsys):
    tmp, _, _, label_path, _, _ = official
    torch.save(make(), tmp / "bad.pt")
    with pytest.raises(InteropError, match=r"bad\.pt: " + match):
        import_pag_rob(tmp / "bad.pt", label_path, tmp / "data/prepared", tmp / "s")
    assert "pwned" not in capsys.readouterr().out


def test_hostile_labels_file_and_label_count_are_refused(official):
    tmp, _, data_path, _, _, _ = official
    torch.save(Payload(), tmp / "l.pt")
    with pytest.raises(InteropError, match=r"l\.pt: not a safe torch.save file"):
        import_pag_rob(data_path, tmp / "l.pt", tmp / "data/prepared", tmp / "s")
    torch.save(torch.zeros(39, dtype=torch.int64), tmp / "l.pt")
    with pytest.raises(InteropError, match=r"l\.pt: 39 labels but .*c10_sbg_data\.pt has 40 rows"):
        import_pag_rob(data_path, tmp / "l.pt", tmp / "data/prepared", tmp / "s")


def test_value_range_decides_the_pixel_space_and_ambiguity_is_refused(official):
    tmp, split, _, label_path, _, _ = official
    unit = torch.from_numpy(split.images).float()[:, None] / 255.0  # [0, 1] images: fits both spaces
    torch.save(torch.cat([unit, torch.zeros(40, 10, 3, 32, 32)], 1), tmp / "u.pt")
    torch.save(torch.from_numpy(split.labels), tmp / "l.pt")
    with pytest.raises(InteropError, match=r"u\.pt: image values span \[0, 1\], which fits both .*--pixel-space"):
        import_pag_rob(tmp / "u.pt", tmp / "l.pt", tmp / "data/prepared", tmp / "s")
    r = import_pag_rob(tmp / "u.pt", tmp / "l.pt", tmp / "data/prepared", tmp / "s", pixel_space="unit")
    assert r.pixel_space == "unit"
    np.testing.assert_array_equal(open_store(tmp / "s").read(slice(None))[0], split.images)
    torch.save(torch.cat([unit * 255, torch.zeros(40, 10, 3, 32, 32)], 1), tmp / "raw.pt")
    with pytest.raises(InteropError, match=r"raw\.pt: image values span \[0, 255\], expected \[-1, 1\] or \[0, 1\]"):
        import_pag_rob(tmp / "raw.pt", tmp / "l.pt", tmp / "data/prepared", tmp / "s2")


def test_chunked_reads_follow_the_storage_offset_and_legacy_files_are_refused(tmp_path):
    from pagstore.interop.torch_files import TensorChunks, load_plain_tensor

    big = torch.arange(5 * 2 * 3, dtype=torch.float32).reshape(5, 2, 3)
    torch.save(big[2:], tmp_path / "view.pt")  # saves the whole storage, the tensor starting at row 2
    t = load_plain_tensor(tmp_path / "view.pt", "x", 3, (torch.float32,))
    chunks = TensorChunks(tmp_path / "view.pt", t)
    np.testing.assert_array_equal(chunks.rows(0, 3), big[2:].numpy())
    np.testing.assert_array_equal(chunks.rows(1, 2), big[3:4].numpy())
    np.testing.assert_array_equal(chunks.firsts(0, 3), big[2:, 0].numpy())
    torch.save(big, tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)
    with pytest.raises(InteropError, match=r"legacy\.pt: not a safe torch.save file of x"):
        load_plain_tensor(tmp_path / "legacy.pt", "x", 3, (torch.float32,))
    torch.save(big.transpose(0, 1), tmp_path / "strided.pt")
    with pytest.raises(InteropError, match=r"strided\.pt: the tensor is not stored contiguously"):
        TensorChunks(tmp_path / "strided.pt", load_plain_tensor(tmp_path / "strided.pt", "x", 3, (torch.float32,)))
