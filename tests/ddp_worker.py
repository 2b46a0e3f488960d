"""One rank of tests/test_ddp.py, launched by torchrun: trains a tiny stage-1 run with the real
``train_generator`` and writes what this rank saw to ``<out>/rank<r>.json``: digests of its G, D
and EMA parameters after training (batch-norm running statistics are each rank's own: DDP
broadcasts rank 0's before every forward, which then updates them from the rank's batch), the sum
of every real batch it drew, and every file it wrote.

Usage: torchrun --nproc_per_node=2 tests/ddp_worker.py PARAMS RUN_DIR OUT STEPS [KEY=VALUE ...]
"""

from __future__ import annotations

import builtins
import gc
import hashlib
import json
import sys
from pathlib import Path

import torch

from comgan_lib import distributed, train
from comgan_lib.config import load_params
from comgan_lib.rundir import RunDir


def digest(module: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for name, tensor in sorted(module.named_parameters()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def main() -> None:
    params_file, run_dir, out, steps, *overrides = sys.argv[1:]
    ctx = distributed.from_environment()
    written: list[str] = []
    steps_seen: list[train.Stage1Step] = []

    batch_sums: list[float] = []
    real_save, real_open = train.save_torch_atomic, builtins.open
    real_update, real_grads = train.Stage1Step.update, train.Stage1Step.grads

    def save(obj, path):
        written.append(str(path))
        real_save(obj, path)

    def open_(file, mode="r", *args, **kwargs):
        if any(m in mode for m in "wax"):
            written.append(str(file))
        return real_open(file, mode, *args, **kwargs)

    def update(self, step):
        if not steps_seen:
            steps_seen.append(self)
        real_update(self, step)

    def grads(self, real, latents, want_log=False):
        batch_sums.append(float(real.sum()))
        return real_grads(self, real, latents, want_log)

    train.Stage1Step.grads = grads
    train.save_torch_atomic = save
    train.open = open_  # the log file is opened by name inside comgan_lib.train
    train.Stage1Step.update = update
    params = load_params(params_file, overrides)
    try:
        result = train.train_generator(
            params, RunDir(run_dir), name="ddp", steps=int(steps), progress=False, ctx=ctx
        )
        step = steps_seen[0] if steps_seen else None
        report = {
            "rank": ctx.rank,
            "world_size": ctx.world_size,
            "steps": result["steps"],
            "written": written,
            "G": digest(step.G) if step else None,
            "D": digest(step.D) if step else None,
            "G_ema": digest(step.ema.model) if step else None,
            "batch_sums": batch_sums,
        }
        # The report first, so that a crash in the process group's teardown cannot lose it.
        Path(out, f"rank{ctx.rank}.json").write_text(json.dumps(report))
        # Release the DistributedDataParallel wrappers before their process group goes.
        del step
        steps_seen.clear()
        gc.collect()
        ctx.barrier()
    finally:
        distributed.shutdown()


if __name__ == "__main__":
    main()
