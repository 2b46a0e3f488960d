"""The segment check command: trains S over seeds on one generator, resumes between step counts,
writes JSON rows with S's held-out scores beside the training-free predictors'."""

from __future__ import annotations

import json

from comgan_lib import segment_check
from comgan_lib.config import load_params
from comgan_lib.metrics.masks import TRAINING_FREE_PREDICTORS
from comgan_lib.rundir import RunDir
from comgan_lib.train import train_generator

TINY = ["segment.checkpoint_every=2", "segment.log_every=1", "segment.self_train_steps=2"]


def test_rows_for_every_seed_and_step_on_one_linked_generator(repo, tmp_path):
    params_path = str(repo / "params" / "smoke.yaml")
    gen_run = RunDir(tmp_path / "gen")
    train_generator(load_params(params_path), gen_run, name="ds_comgan_beta1", kind="ds_comgan",
                    steps=2, progress=False)  # fmt: skip
    out = tmp_path / "out"
    rows = segment_check.check(
        params_path, TINY, gen_run.root, [0, 1], [2, 3], "tiny", out, samples=8
    )
    assert [(r["seed"], r["steps"]) for r in rows] == [(0, 2), (0, 3), (1, 2), (1, 3)]
    written = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    assert written == json.loads(json.dumps(rows, default=str))
    for r in rows:
        assert 0 <= r["iou"] <= 1 and 0 <= r["gen_s_vs_generator"] <= 1
        assert r["best_training_free"] in TRAINING_FREE_PREDICTORS
        assert abs(r["margin"] - (r["iou"] - r["best_training_free_iou"])) < 1e-9
        assert 0 <= r["iou_colour_em"] <= 1
        refined_margin = r["iou_colour_em"] - r["best_training_free_iou"]
        assert abs(r["margin_colour_em"] - refined_margin) < 1e-9
        assert r["self_train_steps"] == 2 and 0 <= r["iou_self_trained"] <= 1
        self_margin = r["iou_self_trained"] - r["best_training_free_iou"]
        assert abs(r["margin_self_trained"] - self_margin) < 1e-9
    # The seeds differ (S's initialisation), the generator is the same linked file.
    assert (
        rows[1]["iou"] != rows[3]["iou"]
        or rows[1]["gen_s_vs_generator"] != rows[3]["gen_s_vs_generator"]
    )
    link = out / "tiny" / "seed1" / "checkpoints" / "ds_comgan_beta1.pt"
    assert link.is_symlink() and link.resolve() == (gen_run.root / "checkpoints" /
                                                    "ds_comgan_beta1.pt").resolve()  # fmt: skip
    log = (out / "tiny" / "seed1" / "logs" / "segmenter.jsonl").read_text().splitlines()
    assert [json.loads(x)["step"] for x in log] == [1, 2, 3]  # resumed from 2 to 3
    summary = segment_check.summarise(rows)
    assert {(s["steps"], s["seeds"]) for s in summary} == {(2, 2), (3, 2)}
    assert all(s["iou_colour_em_min"] <= s["iou_colour_em_median"] for s in summary)
    assert "| tiny | 0 | 2 |" in segment_check.markdown(rows)


def test_command_line_says_when_the_generator_is_missing(repo, tmp_path, capsys):
    status = segment_check.main(
        [str(repo / "params" / "smoke.yaml"), "--generator-run", str(tmp_path), "--out",
         str(tmp_path / "out")]
    )  # fmt: skip
    assert status == 2 and "no generator checkpoint" in capsys.readouterr().err
