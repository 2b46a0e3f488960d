"""Run-folder helpers: metrics merge by section, missing numbers say "not run"."""

from __future__ import annotations

import json
import math

from comgan_lib.rundir import NOT_RUN, RunDir, format_cell, markdown_table


def test_update_metrics_keeps_other_sections(tmp_path):
    run = RunDir(tmp_path / "run")
    run.update_metrics("data", {"a": 1})
    run.update_metrics("comgan", {"b": 2.5})
    run.update_metrics("data", {"a": 3})
    assert json.loads(run.metrics_path.read_text()) == {"data": {"a": 3}, "comgan": {"b": 2.5}}


def test_non_finite_numbers_become_null_not_invalid_json(tmp_path):
    run = RunDir(tmp_path / "run")
    run.update_metrics("x", {"fid": math.nan, "nested": [math.inf, 1.0]})
    assert json.loads(run.metrics_path.read_text()) == {"x": {"fid": None, "nested": [None, 1.0]}}


def test_tables_show_not_run_for_missing_values(tmp_path):
    run = RunDir(tmp_path / "run")
    rows = [{"model": "ComGAN", "FID": None}, {"model": "SimpleGAN", "FID": 21.23456}]
    md = run.save_table("t", rows, digits=2).read_text()
    assert f"| ComGAN | {NOT_RUN} |" in md
    assert "| SimpleGAN | 21.23 |" in md
    assert (tmp_path / "run" / "tables" / "t.csv").read_text().splitlines()[0] == "model,FID"
    assert format_cell(math.nan) == NOT_RUN
    assert markdown_table([]) == "(empty table)\n"
