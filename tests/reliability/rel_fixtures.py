"""Small real artifacts for the fault-injection tests: prepared splits, stores, diffusion checkpoints,
params files, and a helper that SIGKILLs a stage subprocess at a chosen point of its progress."""

from __future__ import annotations

import copy
import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from pagstore.data.prepared import PreparedSplit

REPO = Path(__file__).resolve().parents[2]
SUBPROCESS_TIMEOUT = 120


def tiny_split(n: int = 48, classes: int = 3, size: int = 8, seed: int = 0, split: str = "train") -> PreparedSplit:
    """uint8 images (n, 1, size, size): class c is a bright band, plus noise; labels cycle 0..C-1."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n, dtype=np.int64) % classes
    images = rng.integers(0, 60, size=(n, 1, size, size)).astype(np.int64)
    band = max(1, size // classes)
    for i, c in enumerate(labels):
        images[i, 0, c * band:(c + 1) * band] += 180
    return PreparedSplit(images.clip(0, 255).astype(np.uint8), labels, tuple(f"c{c}" for c in range(classes)),
                         {"dataset": "tiny", "split": split})


def write_prepared(root: Path, n: int = 48, classes: int = 3, size: int = 8, seed: int = 0) -> Path:
    """``root/prepared/{train,test}.npz``; returns the prepared directory."""
    d = root / "prepared"
    tiny_split(n, classes, size, seed=seed).save(d / "train.npz")
    tiny_split(max(n // 2, classes), classes, size, seed=seed + 1, split="test").save(d / "test.npz")
    return d


def build_store(path: Path, split: PreparedSplit, samples_per_shard: int = 8, samples_per_tar: int = 8,
                fingerprint: str | None = None) -> Path:
    """A complete float32 store over ``split`` (random finite grads) with its webdataset export."""
    from pagstore.shards import export_webdataset
    from pagstore.store import create_store

    c = split.num_classes
    grads = np.random.default_rng(1).normal(size=(len(split), c, *split.sample_shape)).astype(np.float32)
    store = create_store(
        path, num_samples=len(split), num_classes=c, sample_shape=split.sample_shape, grad_dtype="float32",
        dataset={"name": "tiny", "fingerprint": fingerprint or split.fingerprint(),
                 "class_names": list(split.class_names), "split": "train"},
        source={"name": "random"}, samples_per_shard=samples_per_shard)
    for k in range(store.num_shards):
        sl = store.shard_slice(k)
        store.write_shard(k, split.images[sl], split.labels[sl], grads[sl], np.arange(len(split))[sl])
    export_webdataset(path, samples_per_tar=samples_per_tar)
    return path


def tiny_diffusion_config(num_classes: int, size: int = 8) -> dict[str, Any]:
    """create_model_and_diffusion kwargs: an untrained 8x8 one-channel UNet, 40-step cosine schedule."""
    from pagstore.improved_diffusion import model_and_diffusion_defaults

    cfg = model_and_diffusion_defaults()
    cfg.update(image_size=size, num_channels=32, num_res_blocks=1, channel_mult=[1, 2], attention_resolutions="4",
               num_heads=1, learn_sigma=True, diffusion_steps=40, noise_schedule="cosine", class_cond=True,
               num_classes=num_classes + 1, in_channels=1)
    return cfg


def write_diffusion_checkpoint(path: Path, split: PreparedSplit) -> Path:
    """An untrained but well-formed diffusion checkpoint for ``split`` (SBG only needs a score model)."""
    import torch

    from pagstore.improved_diffusion import create_model_and_diffusion
    from pagstore.improved_diffusion.checkpoint import save_checkpoint

    torch.manual_seed(0)
    cfg = tiny_diffusion_config(split.num_classes, split.sample_shape[-1])
    model, _ = create_model_and_diffusion(**cfg)
    save_checkpoint(path, model, model.state_dict(), None, 0, cfg, split.fingerprint())
    return path


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def write_params(path: Path, overrides: dict[str, Any], drop: tuple[str, ...] = ()) -> Path:
    """The repo's pipeline.yaml deep-merged with ``overrides``; ``drop``: dotted keys to delete."""
    params = deep_merge(yaml.safe_load((REPO / "pipeline.yaml").read_text()), overrides)
    for dotted in drop:
        *parents, leaf = dotted.split(".")
        node = params
        for p in parents:
            node = node[p]
        del node[leaf]
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", DVC_NO_ANALYTICS="1",
               PYTHONUNBUFFERED="1", TQDM_DISABLE="1")
    return env


def run_stage(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """``python -m <args>`` to completion (1 torch thread), output captured."""
    return subprocess.run([sys.executable, "-m", *args], cwd=cwd, env=child_env(), capture_output=True, text=True,
                          timeout=SUBPROCESS_TIMEOUT)


def kill_when(args: list[str], cwd: Path, ready: Callable[[], bool], delay: float) -> bool:
    """Start ``python -m <args>``; once ``ready()`` holds, wait ``delay`` s and SIGKILL it (kill -9).

    Returns True if the process was killed while running, False if it had already exited (then the
    caller's kill point came too late, which the tests treat as a failure of the test set-up).
    """
    proc = subprocess.Popen([sys.executable, "-m", *args], cwd=cwd, env=child_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + SUBPROCESS_TIMEOUT
    try:
        while not ready():
            if proc.poll() is not None:
                raise AssertionError(f"stage exited (rc {proc.returncode}) before the kill point: "
                                     f"{proc.stderr.read().decode()[-2000:]}")
            if time.monotonic() > deadline:
                raise AssertionError("kill point never reached")
            time.sleep(0.002)
        time.sleep(delay)
        alive = proc.poll() is None
        if alive:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        return alive
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        proc.stderr.close()


def rewrite_tar_member(store: Path, t: int, member: str, payload: bytes | None,
                       new_name: str | None = None) -> Path:
    """Replace (payload None: drop; new_name: also rename) one member of tar ``t`` and record the new sha256
    in index.json, as a buggy or hostile exporter would: the checksum alone then cannot catch it."""
    path = store / "shards" / f"grads-{t:06d}.tar"
    with tarfile.open(path) as tf:
        members = [(m, tf.extractfile(m).read()) for m in tf]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        for m, data in members:
            if m.name == member:
                if payload is None:
                    continue
                data, m.name = payload, new_name or m.name
            m.size = len(data)
            tf.addfile(m, io.BytesIO(data))
    path.write_bytes(buf.getvalue())
    index = json.loads((store / "shards" / "index.json").read_text())
    index["shards"][t]["sha256"] = hashlib.sha256(buf.getvalue()).hexdigest()
    (store / "shards" / "index.json").write_text(json.dumps(index))
    return path
