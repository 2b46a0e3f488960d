"""The mask check command: trains over seeds, resumes between step counts, writes JSON rows."""

from __future__ import annotations

import json

from comgan_lib import mask_check

TINY = [
    "data.train_size=32",
    "data.test_size=8",
    "model.gen_width=32",
    "model.disc_width=8",
    "train.batch_size=4",
    "train.checkpoint_every=2",
    "eval.oracle_steps=2",
]


def test_rows_for_every_seed_step_and_sampler(repo, tmp_path):
    rows = mask_check.check(
        str(repo / "params" / "simple.yaml"), TINY, [0, 1], [2, 3], "tiny", tmp_path, samples=8
    )
    assert [(r["seed"], r["steps"], r["sampler"]) for r in rows] == [
        (s, n, m) for s in (0, 1) for n in (2, 3) for m in mask_check.SAMPLERS
    ]
    written = [json.loads(x) for x in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert written == json.loads(json.dumps(rows, default=str))
    assert all(0.05 < r["gt_coverage_mean"] < 0.2 for r in rows)
    assert {(r["spec"]["gen_width"], r["spec"]["disc_width"]) for r in rows} == {(32, 8)}
    # One oracle for the dataset, one run folder per seed, resumed from step 2 to step 3.
    assert len(list(tmp_path.glob("oracle-*"))) == 1
    log = (tmp_path / "tiny" / "seed1" / "logs" / "comgan.jsonl").read_text().splitlines()
    assert [json.loads(x)["step"] for x in log] == [2, 3]  # each leg logs its last step
    summary = mask_check.summarise(rows)
    assert {(s["steps"], s["sampler"], s["seeds"]) for s in summary} == {
        (n, m, 2) for n in (2, 3) for m in mask_check.SAMPLERS
    }
    assert "| tiny | 0 | 2 | ema |" in mask_check.markdown(rows)
    # Each seed's layers figure, at its last step count only.
    assert sorted(p.name for p in (tmp_path / "tiny").glob("seed*/layers_*.png")) == [
        "layers_3.png",
        "layers_3.png",
    ]


def test_command_line_reports_user_errors_with_status_2(repo, tmp_path, capsys):
    status = mask_check.main(
        [
            str(repo / "params" / "simple.yaml"),
            "--set",
            "data.variant=plain",
            "--out",
            str(tmp_path),
        ]
    )
    assert status == 2 and "data.variant" in capsys.readouterr().err


def test_command_line_scores_ds_comgan_masks(repo, tmp_path):
    args = [str(repo / "params" / "simple.yaml"), "--kind", "ds_comgan", "--run-name", "ds"]
    args += ["--seeds", "0", "--eval-at", "2", "--samples", "8", "--out", str(tmp_path)]
    for override in TINY:
        args += ["--set", override]
    assert mask_check.main(args) == 0
    rows = mask_check.read_rows(tmp_path / "results.jsonl")
    assert {r["spec"]["kind"] for r in rows} == {"ds_comgan"}
    assert (tmp_path / "default" / "seed0" / "logs" / "ds.jsonl").exists()


def test_ds_comgan_started_from_a_comgan_trains_that_comgan_first(repo, tmp_path):
    overrides = [*TINY, "train.steps=2", "train.ds_trunk_from=comgan_beta1"]
    rows = mask_check.check(
        str(repo / "params" / "simple.yaml"),
        overrides,
        [0],
        [1],
        "warm",
        tmp_path,
        samples=8,
        kind="ds_comgan",
        run_name="ds",
    )
    assert {r["spec"]["trunk_from"] for r in rows} == {"comgan_beta1"}
    log = (tmp_path / "warm" / "seed0" / "logs" / "comgan_beta1.jsonl").read_text().splitlines()
    assert json.loads(log[-1])["step"] == 2  # notebook 02's run, at train.steps
