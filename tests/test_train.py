"""The stage-1 loop: a short run logs and checkpoints; resume continues; NaN stops cleanly."""

from __future__ import annotations

import pytest
import torch

from comgan_lib.config import load_params
from comgan_lib.errors import UserError
from comgan_lib.rundir import RunDir
from comgan_lib.train import (
    ImageBank,
    TrainingDiverged,
    load_code_classifiers,
    load_generator,
    read_log,
    sample,
    snapshot_name,
    train_generator,
)

TINY = [
    "model.gen_width=32",
    "model.disc_width=8",
    "model.head_blocks=1",
    "train.batch_size=4",
    "train.log_every=2",
    "train.checkpoint_every=4",
]


@pytest.fixture(scope="module")
def params(repo):
    return load_params(repo / "params" / "smoke.yaml", TINY)


@pytest.fixture(scope="module")
def bank():
    torch.manual_seed(0)
    return ImageBank(torch.rand(16, 3, 32, 32) * 2 - 1)


@pytest.mark.parametrize("kind", ["comgan", "pi1", "pi2", "simplegan", "comgan_info", "ds_comgan"])
def test_short_run_writes_log_and_checkpoint(tmp_path, params, bank, kind):
    run = RunDir(tmp_path)
    result = train_generator(params, run, kind=kind, steps=6, bank=bank, progress=False)
    assert result["steps"] == 6
    records = read_log(run, kind)
    assert [r["step"] for r in records] == [2, 4, 6]
    for r in records:
        assert all(v == v for v in r.values() if isinstance(v, float))  # no NaN
    if kind != "simplegan":
        assert {"grad_norm_mask", "grad_norm_fg", "grad_norm_bg", "mask_pixel_grad"} <= set(
            records[-1]
        )
        assert {"frac_empty", "frac_full", "frac_same_layers", "mask_entropy"} <= set(records[-1])
        assert records[-1]["grad_norm_mask"] > 0
    if kind in ("comgan_info", "ds_comgan"):
        assert 0 <= records[-1]["info_acc_f"] <= 1 and records[-1]["loss_info"] > 0
        Q = load_code_classifiers(run, kind)
        assert Q["fg"].classify_code(torch.zeros(2, 3, 32, 32)).shape == (2, params.model.num_codes)
    G = load_generator(run, kind)
    out = sample(G, 5, seed=1, batch_size=2)
    assert out["image"].shape == (5, 3, 32, 32)
    again = sample(G, 5, seed=1, batch_size=5)["image"]
    assert torch.allclose(out["image"], again, atol=1e-5)  # independent of the batch size


def test_interrupted_run_resumes_without_gaps_or_duplicates(tmp_path, params, bank):
    # Reference: 8 uninterrupted steps.
    ref = RunDir(tmp_path / "ref")
    train_generator(params, ref, name="r", kind="comgan", steps=8, bank=bank, progress=False)
    # Interrupted: stop after 6 steps (checkpoint at 4, log lines 2, 4, 6), then resume to 8.
    run = RunDir(tmp_path / "run")
    train_generator(params, run, name="r", kind="comgan", steps=6, bank=bank, progress=False)
    state = torch.load(run.path("checkpoints", "r.pt"), weights_only=False)
    assert state["step"] == 6  # the end of a run is always checkpointed
    # Simulate a kill right after step 6's log line but before a checkpoint at 6: roll the
    # checkpoint back to the one at step 4 by re-running a 4-step run elsewhere and copying it.
    other = RunDir(tmp_path / "other")
    train_generator(params, other, name="r", kind="comgan", steps=4, bank=bank, progress=False)
    run.path("checkpoints", "r.pt").write_bytes(other.path("checkpoints", "r.pt").read_bytes())
    train_generator(params, run, name="r", kind="comgan", steps=8, bank=bank, progress=False)
    steps = [r["step"] for r in read_log(run, "r")]
    assert steps == [2, 4, 6, 8]
    # Same batches and same RNG after resuming: identical weights to the uninterrupted run.
    a = load_generator(ref, "r", ema=False).state_dict()
    b = load_generator(run, "r", ema=False).state_dict()
    for key in a:
        assert torch.allclose(a[key].float(), b[key].float(), atol=1e-5), key


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_a_cuda_run_resumes(tmp_path, params, bank):
    """Checkpoints load onto the run's device, RNG states included, which must go back to the
    CPU before they are restored (a resume on CUDA once failed with "RNG state must be a
    torch.ByteTensor")."""
    from dataclasses import replace

    p = replace(params, run=replace(params.run, device="cuda"))
    run = RunDir(tmp_path)
    train_generator(p, run, name="c", kind="comgan", steps=2, bank=bank, progress=False)
    result = train_generator(p, run, name="c", kind="comgan", steps=4, bank=bank, progress=False)
    assert result["steps"] == 4


def test_ladder_snapshot_freezes_the_run_at_ladder_steps(tmp_path, params, bank):
    from dataclasses import replace

    p = replace(params, train=replace(params.train, ladder_steps=4))
    run = RunDir(tmp_path)
    train_generator(p, run, name="s", kind="comgan", steps=6, bank=bank, progress=False)
    snap = torch.load(run.path("checkpoints", f"{snapshot_name('s', 4)}.pt"), weights_only=False)
    assert snap["step"] == 4
    assert torch.load(run.path("checkpoints", "s.pt"), weights_only=False)["step"] == 6
    assert load_generator(run, snapshot_name("s", 4)).kind == "comgan"


def test_checkpoint_from_before_a_new_spec_key_still_resumes(tmp_path, params, bank):
    run = RunDir(tmp_path)
    train_generator(params, run, name="o", kind="comgan", steps=2, bank=bank, progress=False)
    path = run.path("checkpoints", "o.pt")
    state = torch.load(path, weights_only=False)
    del state["spec"]["head_factor"]  # as written before the key existed
    torch.save(state, path)
    result = train_generator(params, run, name="o", kind="comgan", steps=4, bank=bank)
    assert result["steps"] == 4


def test_finished_run_is_not_retrained_and_other_settings_are_refused(tmp_path, params, bank):
    run = RunDir(tmp_path)
    train_generator(params, run, name="x", kind="comgan", steps=4, bank=bank, progress=False)
    before = run.path("checkpoints", "x.pt").stat().st_mtime_ns
    train_generator(params, run, name="x", kind="comgan", steps=4, bank=None, progress=False)
    assert run.path("checkpoints", "x.pt").stat().st_mtime_ns == before
    with pytest.raises(UserError, match="beta_binary"):
        train_generator(params, run, name="x", kind="comgan", beta_binary=0.5, steps=4, bank=bank)


def test_nan_stops_training_and_keeps_the_last_good_checkpoint(tmp_path, params, bank):
    run = RunDir(tmp_path)
    train_generator(params, run, name="n", kind="comgan", steps=4, bank=bank, progress=False)
    good = run.path("checkpoints", "n.pt").read_bytes()
    poisoned = ImageBank(torch.zeros(4, 3, 32, 32))
    poisoned.images = poisoned.images.float().fill_(float("nan"))  # float NaN images
    poisoned.sample = lambda n, g: torch.full((n, 3, 32, 32), float("nan"))
    with pytest.raises(TrainingDiverged, match="non-finite loss at step 5") as info:
        train_generator(params, run, name="n", kind="comgan", steps=8, bank=poisoned)
    assert "step 4" in str(info.value)
    assert run.path("checkpoints", "n.pt").read_bytes() == good
