"""Stage 2b (self-training on real images from S's own colour-EM masks): it moves S towards its
targets, writes a checkpoint the stage-2 loaders read, leaves stage 2's checkpoint alone, resumes,
refuses other settings and stops on a non-finite loss keeping the last good checkpoint."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from test_segment import TINY as SEGMENT_TINY

from comgan_lib.config import load_params
from comgan_lib.errors import UserError
from comgan_lib.metrics.colour_em import colour_em
from comgan_lib.nets.segmenter import UNet
from comgan_lib.rundir import RunDir
from comgan_lib.segment_eval import evaluate_segmenter
from comgan_lib.self_train import (
    SELF_TRAINED_NAME,
    pseudo_masks,
    round_names,
    self_train_segmenter,
    self_train_step,
)
from comgan_lib.stage2 import load_segmenter, train_segmenter
from comgan_lib.train import ImageBank, TrainingDiverged, train_generator

# test_segment's tiny sizes, with a log line every step and a checkpoint every second one.
TINY = [*SEGMENT_TINY, "segment.log_every=1", "segment.checkpoint_every=2"]


@pytest.fixture(scope="module")
def params(repo):
    return load_params(repo / "params" / "smoke.yaml", TINY)


@pytest.fixture(scope="module")
def stage2_run(tmp_path_factory, params):
    """A run folder with a 2-step generator and a 2-step stage-2 segmenter."""
    torch.manual_seed(0)
    run = RunDir(tmp_path_factory.mktemp("self_train"))
    bank = ImageBank(torch.rand(12, 3, 32, 32) * 2 - 1)
    train_generator(params, run, name="g", kind="comgan", steps=2, bank=bank, progress=False)
    train_segmenter(params, run, "g", steps=2, bank=bank, progress=False)
    return run, bank


def _copy(run: RunDir, tmp_path) -> RunDir:
    new = RunDir(tmp_path / "run")
    for name in ("g.pt", "segmenter.pt"):
        new.path("checkpoints", name).write_bytes(run.path("checkpoints", name).read_bytes())
    return new


def test_a_step_moves_s_towards_its_refined_masks():
    torch.manual_seed(0)
    images = torch.full((8, 3, 16, 16), -0.6)
    images[:, 0, 4:12, 4:12] = 0.8  # a red square on a dark scene
    blob = torch.zeros(8, 1, 16, 16)
    blob[..., 6:10, 6:10] = 1
    targets = colour_em(images, 0.3 + 0.4 * blob)
    net = UNet(3, 4, 2)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    before = F.binary_cross_entropy_with_logits(net(images), targets).item()
    for _ in range(40):
        self_train_step(net, opt, images, targets)
    after = F.binary_cross_entropy_with_logits(net(images), targets).item()
    assert after < 0.5 * before


def test_writes_a_segmenter_the_loaders_read_and_resumes(stage2_run, params, tmp_path):
    run = _copy(stage2_run[0], tmp_path)
    bank = stage2_run[1]
    base = run.path("checkpoints", "segmenter.pt").read_bytes()
    result = self_train_segmenter(params, run, steps=2, bank=bank, progress=False)
    assert result["steps"] == 2 and result["base"] == "segmenter" and result["generator"] == "g"
    net, info = load_segmenter(run, SELF_TRAINED_NAME)
    assert info["step"] == 2 and info["generator"] == "g"
    assert run.path("checkpoints", "segmenter.pt").read_bytes() == base  # stage 2 untouched
    scores = evaluate_segmenter(params, run, name=SELF_TRAINED_NAME, progress=False)
    assert 0 <= scores["test"]["max_flip"]["iou"] <= 1
    self_train_segmenter(params, run, steps=4, bank=bank, progress=False)
    log = run.path("logs", f"{SELF_TRAINED_NAME}.jsonl").read_text().splitlines()
    assert [json.loads(x)["step"] for x in log] == [1, 2, 3, 4]  # resumed from 2 to 4
    other = load_params(params.source, [*TINY, "segment.lr=0.01"])
    with pytest.raises(UserError, match="lr"):
        self_train_segmenter(other, run, steps=6, bank=bank, progress=False)


def test_nan_stops_and_keeps_the_last_good_checkpoint(stage2_run, params, tmp_path, monkeypatch):
    import comgan_lib.self_train as self_train

    run = _copy(stage2_run[0], tmp_path)
    bank = stage2_run[1]
    self_train_segmenter(params, run, steps=2, bank=bank, progress=False)
    good = run.path("checkpoints", f"{SELF_TRAINED_NAME}.pt").read_bytes()
    monkeypatch.setattr(self_train, "self_train_step", lambda *a: torch.tensor(float("nan")))
    with pytest.raises(TrainingDiverged, match="non-finite loss at step 3") as info:
        self_train_segmenter(params, run, steps=4, bank=bank, progress=False)
    assert "step 2" in str(info.value)
    assert run.path("checkpoints", f"{SELF_TRAINED_NAME}.pt").read_bytes() == good


def test_without_a_stage2_checkpoint_the_error_says_what_to_run(params, tmp_path):
    with pytest.raises(UserError, match="train stage 2 first"):
        self_train_segmenter(params, RunDir(tmp_path), steps=2, progress=False)


def test_rounds_chain_each_from_the_last_and_redraw_their_targets(
    stage2_run, params, tmp_path, monkeypatch
):
    import comgan_lib.self_train as self_train

    run = _copy(stage2_run[0], tmp_path)
    bank = stage2_run[1]
    teachers = []  # the first weight of the S each round draws its targets from
    draw = self_train._quantised_targets

    def spy(net, images, device, **kwargs):
        teachers.append(next(net.parameters()).detach().clone())
        return draw(net, images, device, **kwargs)

    monkeypatch.setattr(self_train, "_quantised_targets", spy)
    result = self_train_segmenter(params, run, steps=2, bank=bank, progress=False, rounds=3)
    names = round_names(SELF_TRAINED_NAME, 3)
    first, second = (f"{SELF_TRAINED_NAME}_round{k}" for k in (1, 2))
    assert names == [first, second, SELF_TRAINED_NAME]
    assert result["rounds"] == 3 and result["base"] == "segmenter" and result["name"] == names[-1]
    for base, name, teacher in zip(["segmenter", *names[:-1]], names, teachers, strict=True):
        state = torch.load(run.path("checkpoints", f"{name}.pt"), weights_only=False)
        assert state["self_train"]["base"] == base and state["step"] == 2
        base_state = torch.load(run.path("checkpoints", f"{base}.pt"), weights_only=False)
        assert torch.equal(teacher, next(iter(base_state["S"].values())))
    with pytest.raises(UserError, match="base"):  # two rounds would end on another chain
        self_train_segmenter(params, run, steps=2, bank=bank, progress=False, rounds=2)
    with pytest.raises(ValueError, match="at least 1"):
        round_names(SELF_TRAINED_NAME, 0)


class _InsideOut(torch.nn.Module):
    """A segmenter stand-in that holds the scene as foreground: high logits off the centre."""

    def __init__(self):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(()))  # predict_masks reads the device off it

    def forward(self, x):
        logits = torch.full_like(x[:, :1], 6.0)
        logits[..., 5:11, 5:11] = -6.0
        return logits


def test_border_flip_turns_an_inside_out_target_round(params, stage2_run, tmp_path):
    images = torch.full((2, 3, 16, 16), -0.6)
    images[:, 0, 5:11, 5:11] = 0.8
    plain = pseudo_masks(_InsideOut(), images)
    flipped = pseudo_masks(_InsideOut(), images, border_flip=True)
    assert plain[..., 0, 0].min() > 0.5 and plain[..., 8, 8].max() < 0.5
    assert flipped[..., 0, 0].max() < 0.5 and flipped[..., 8, 8].min() > 0.5
    # The option is part of the run's spec: a run resumes only under the setting it began with.
    run = _copy(stage2_run[0], tmp_path)
    self_train_segmenter(params, run, steps=2, bank=stage2_run[1], progress=False)
    other = load_params(params.source, [*TINY, "segment.self_train_border_flip=true"])
    with pytest.raises(UserError, match="border_flip"):
        self_train_segmenter(other, run, steps=2, bank=stage2_run[1], progress=False)
