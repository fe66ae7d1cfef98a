"""Stores addressed by fsspec URLs: a real S3-compatible server (moto, server mode, on loopback) and memory://."""

from __future__ import annotations

import json
import logging

import fsspec
import numpy as np
import pytest
import torch
from store_fixtures import expected, filled_store, new_store, write_shards
from typer.testing import CliRunner

from pagstore.cli import app
from pagstore.loaders import ZarrGradientDataset, stream_batches
from pagstore.shards import export_webdataset
from pagstore.store import open_store
from pagstore.verify import verify_store


@pytest.fixture(scope="module")
def s3_endpoint():
    moto_server = pytest.importorskip("moto.server")
    pytest.importorskip("s3fs")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one access-log line per request otherwise
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    saved = dict(fsspec.config.conf.get("s3", {}))
    # Credentials are dummies: the server is the local moto process, nothing leaves this machine.
    fsspec.config.conf["s3"] = {"key": "testing", "secret": "testing", "client_kwargs": {"endpoint_url": endpoint}}
    fsspec.filesystem("s3", skip_instance_cache=True).mkdir("pagstore-test")
    yield endpoint
    fsspec.config.conf["s3"] = saved
    server.stop()


def _round_trip(url: str) -> None:
    store = new_store(url, num_samples=20, samples_per_shard=8)
    write_shards(store, [2, 0])  # out of order, then resumed
    assert open_store(url, "a").missing_shards() == [1]
    write_shards(open_store(url, "r+"), [1])
    exp = expected(20, 8, (1, 4, 4))
    export_webdataset(url, samples_per_tar=6)
    report = verify_store(url)
    assert report.ok and report.export_checked, report.to_dict()
    streamed = list(stream_batches(url, 5, shuffle=False, seed=0, epoch=0))
    labels = torch.cat([b[1] for b in streamed]).numpy()
    np.testing.assert_array_equal(labels, exp["labels"])
    x, y, g = ZarrGradientDataset(url).read_batch(np.arange(20))
    np.testing.assert_array_equal(g.numpy(), exp["grads"].astype(np.float16).astype(np.float32))
    np.testing.assert_array_equal(torch.cat([b[2] for b in streamed]).numpy(), g.numpy())
    result = CliRunner().invoke(app, ["inspect", url, "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["shards_done"] == 3 and info["stored_bytes"] > 0 and info["export_bytes"] > 0


def test_s3_round_trip(s3_endpoint) -> None:
    _round_trip("s3://pagstore-test/stores/a")
    fs = fsspec.filesystem("s3")
    assert fs.exists("pagstore-test/stores/a/shards/index.json")
    assert fs.exists("pagstore-test/stores/a/grads/c/2/0/0/0/0")


def test_s3_verify_reports_corrupt_tar(s3_endpoint) -> None:
    url = "s3://pagstore-test/stores/b"
    filled_store(url, num_samples=10, samples_per_shard=5)
    export_webdataset(url, samples_per_tar=5)
    fs = fsspec.filesystem("s3")
    fs.pipe_file("pagstore-test/stores/b/shards/grads-000001.tar", b"garbage")
    result = CliRunner().invoke(app, ["verify", url])
    assert result.exit_code == 1 and "grads-000001.tar" in result.output


def test_memory_and_file_urls(tmp_path) -> None:
    _round_trip("memory://pagstore-test/stores/m")
    _round_trip(f"file://{tmp_path}/f")
    assert (tmp_path / "f" / "zarr.json").is_file()
