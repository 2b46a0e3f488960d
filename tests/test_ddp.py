"""Two processes on the CPU (gloo) train one stage-1 run with DistributedDataParallel: both ranks
end with identical weights, each drew its own batches, only rank 0 wrote the checkpoint and the log,
and a resumed run continues on both ranks. One torchrun launch per phase (tests/ddp_worker.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings

import pytest
import torch

from comgan_lib import distributed
from comgan_lib.errors import UserError
from comgan_lib.train import read_log

TEARDOWN = "terminate called without an active exception"
TINY = [
    "run.device=cpu",
    "model.kind=comgan",
    "model.gen_width=32",
    "model.disc_width=8",
    "train.batch_size=8",  # the global batch: 4 per rank
    "train.log_every=1",
    "train.checkpoint_every=2",
    "data.train_size=16",
]


def launch(repo, tmp_path, run_dir, out, steps: int) -> list[dict]:
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(repo)}
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        str(repo / "tests" / "ddp_worker.py"), str(repo / "params" / "smoke.yaml"),
        str(run_dir), str(out), str(steps), *TINY,
    ]  # fmt: skip
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    reports = [out / f"rank{r}.json" for r in (0, 1)]
    if proc.returncode != 0 and all(p.exists() for p in reports) and TEARDOWN in proc.stderr:
        # Both ranks finished and reported; gloo then aborted while tearing down (seen once in
        # CI, not reproduced in 16 local runs). The reports are what this test checks.
        warnings.warn(f"torchrun exited {proc.returncode} in gloo teardown", stacklevel=2)
    else:
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return [json.loads(p.read_text()) for p in reports]


def test_two_ranks_train_identical_weights_and_only_rank0_writes(repo, tmp_path):
    run_dir = tmp_path / "run"
    r0, r1 = launch(repo, tmp_path, run_dir, tmp_path / "a", steps=3)
    assert (r0["world_size"], r1["world_size"]) == (2, 2)
    assert r0["steps"] == r1["steps"] == 3
    for net in ("G", "D", "G_ema"):
        assert r0[net] == r1[net], f"{net} differs between the ranks"
    assert r0["batch_sums"] != r1["batch_sums"]  # each rank drew its own batches
    assert r1["written"] == []
    assert any(p.endswith("checkpoints/ddp.pt") for p in r0["written"])
    assert any(p.endswith("logs/ddp.jsonl") for p in r0["written"])
    state = torch.load(run_dir / "checkpoints" / "ddp.pt", weights_only=False)
    assert state["step"] == 3 and state["world_size"] == 2 and len(state["rng_ranks"]) == 2
    assert state["spec"]["batch_size"] == 8

    # Resume to 5 steps: both ranks load the rank-0 checkpoint and continue in step.
    r0, r1 = launch(repo, tmp_path, run_dir, tmp_path / "b", steps=5)
    assert r0["steps"] == r1["steps"] == 5
    assert len(r0["batch_sums"]) == len(r1["batch_sums"]) == 2  # steps 4 and 5 only
    for net in ("G", "D", "G_ema"):
        assert r0[net] == r1[net], f"{net} differs between the ranks after resuming"
    assert r1["written"] == []
    from comgan_lib.rundir import RunDir

    assert [r["step"] for r in read_log(RunDir(run_dir), "ddp")] == [1, 2, 3, 4, 5]


def test_global_batch_must_divide_over_ranks():
    ctx = distributed.DistContext(rank=0, world_size=3)
    assert distributed.local_batch(90, ctx) == 30
    with pytest.raises(UserError, match="multiple of 3"):
        distributed.local_batch(32, ctx)


def test_sync_batchnorm_needs_cuda():
    ctx = distributed.DistContext(rank=0, world_size=2)
    net = torch.nn.Sequential(torch.nn.BatchNorm2d(4))
    with pytest.raises(UserError, match="needs CUDA"):
        distributed.convert_sync_batchnorm(net, torch.device("cpu"), ctx)
    assert distributed.convert_sync_batchnorm(net, torch.device("cpu"), distributed.SINGLE) is net


def test_rank0_keeps_the_single_process_seed():
    assert distributed.rank_seed(123, distributed.SINGLE) == 123
    assert distributed.rank_seed(123, distributed.DistContext(rank=1, world_size=2)) != 123


def test_train_command_line_trains_the_run_the_notebooks_name(repo, tmp_path, capsys):
    from comgan_lib.train import main

    args = [str(repo / "params" / "smoke.yaml"), "--kind", "comgan", "--beta", "0.1"]
    args += ["--steps", "2", "--run-dir", str(tmp_path), "--quiet"]
    args += [x for s in TINY for x in ("--set", s)]
    assert main(args) == 0
    assert (tmp_path / "checkpoints" / "comgan_beta0.1.pt").exists()  # run_name("comgan", 0.1)
    assert "comgan_beta0.1: 2 steps" in capsys.readouterr().out
    assert main([*args, "--set", "train.lr=7"]) == 2  # a bad value: one line, exit 2
    assert "train.lr" in capsys.readouterr().err
