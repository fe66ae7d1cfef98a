"""Worker for test_train_ddp.py, launched by ``torch.distributed.run --nproc_per_node 2``.

Trains a tiny model with the real loop on a real store (gloo), recording which store rows each rank saw.
Usage: python -m torch.distributed.run --nproc_per_node 2 ddp_worker.py <store> <out_dir>
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from pagstore.loaders import stream_batches
from pagstore.models import build_model
from pagstore.training.distributed import broadcast_parameters, init_from_env
from pagstore.training.loop import LoopOptions, fit
from pagstore.training.objectives import ObjectiveSpec


def main() -> None:
    store, out = Path(sys.argv[1]), Path(sys.argv[2])
    torch.set_num_threads(1)
    rank, world = init_from_env()
    torch.manual_seed(rank)  # different init per rank: broadcast must make them equal
    model = build_model("small-cnn", 3, (1, 8, 8), width=4)
    broadcast_parameters(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, [10])
    seen: list[int] = []

    def batches(epoch: int):
        for x, y, g, rows in stream_batches(store, 4, shuffle=True, seed=0, epoch=epoch, with_index=True):
            seen.extend(rows.tolist())
            yield x, y, g

    spec = ObjectiveSpec(objective="pag", store="sbg", lam=1.0)
    fit(model, spec, batches, opt, sched, LoopOptions(crop_pad=1, seed=0), epochs=1, rank=rank)
    flat = torch.cat([t.detach().float().reshape(-1) for t in [*model.parameters(), *model.buffers()]])
    out.mkdir(parents=True, exist_ok=True)
    (out / f"rank{rank}.json").write_text(json.dumps({"world": world, "rows": seen, "params": flat.tolist()}))
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
