"""Our numbers assembled beside the paper's Tables 1-4, written and rendered (the paper's
numbers themselves: tests/test_paper_numbers.py)."""

from __future__ import annotations

import csv
import json

import pytest

from comgan_lib import paper_tables as pt
from comgan_lib.paper_numbers import PAPER_TABLES
from comgan_lib.rundir import NOT_RUN, NotRun, RunDir, format_cell, html_table, markdown_table

# ----------------------------------------------------------------------------------------------
# The paper's table as printed


def test_paper_layout_reprints_the_table():
    rows = pt.paper_layout("table1")
    last = rows[-1]
    assert last["method"] == "DS-ComGAN§" and last["Sup."] == "Unsup."
    assert last["CUB IS ↑"] == "4.79±0.47" and last["Stanford-Cars FID ↓"] == "34.17"
    t3 = pt.paper_layout("table3")
    assert t3[1]["Flowers FID ↓"] == "\\"
    t4 = pt.paper_layout("table4")
    assert t4[0]["Flowers IoU % ↑"] == "-" and t4[-1]["CUB IoU % ↑"] == "60.7"


# ----------------------------------------------------------------------------------------------
# Our numbers beside the paper's


def _cub_metrics():
    return {
        "data": {"dataset": "cub", "has_masks": True},
        "disentanglement": {
            "table2": {
                pt.ROW_SIMPLEGAN: {
                    "fid": 80.0,
                    "is": 4.0,
                    "features": pt.FEATURES_INCEPTION,
                    "n_samples": 20000,
                },
                pt.ROW_COMGAN: {
                    "fid": None,
                    "is": None,
                    "features": None,
                    "reason": "no Inception weights (eval.inception_weights unset, offline)",
                },
                pt.ROW_INFO: {"fid": None, "is": 4.2, "features": pt.FEATURES_INCEPTION},
                pt.ROW_DS_COMGAN: [
                    {
                        "fid": 20.0,
                        "is": 4.5,
                        "is_std": 0.1,
                        "features": pt.FEATURES_INCEPTION,
                        "n_samples": 20000,
                    },
                    {"fid": 3.0, "is": 2.0, "features": pt.FEATURES_DOMAIN, "n_samples": 2000},
                ],
            }
        },
        "segmentation": {
            "generator": "ds_comgan",
            "train": {
                "max_flip": {"iou": 0.62, "dice": 0.73},
                "foreground": {"iou": 0.5, "dice": 0.6},
                "n_images": 10000,
            },
            "test": {
                "max_flip": {"iou": 0.6, "dice": 0.7},
                "foreground": {"iou": 0.55, "dice": None},
                "n_images": 1000,
            },
        },
    }


def _pick(rows, **match):
    return [r for r in rows if all(r[k] == v for k, v in match.items())]


def _no_blank_cells(rows):
    for row in rows:
        for key, value in row.items():
            if key != "note":
                assert value is not None and value != "", (key, row)


def test_table1_sets_our_number_beside_the_papers_with_its_protocol():
    rows = pt.table1({"cub": _cub_metrics()})
    _no_blank_cells(rows)
    fid = _pick(rows, method="DS-ComGAN", dataset="CUB", metric="FID ↓")
    inception, domain = fid
    assert inception["paper"] == 16.26 and inception["ours"] == 20.0
    assert inception["ours − paper"] == pytest.approx(3.74)
    assert (inception["protocol"], inception["n"], inception["run"]) == ("Inception", 20000, "cub")
    assert inception["split"] == "real: train"
    assert domain["protocol"] == "domain features" and domain["ours"] == 3.0
    assert domain["ours − paper"].startswith("not comparable")
    assert "2,000 samples (paper: 20,000)" in domain["note"]
    (is_row,) = _pick(rows, method="DS-ComGAN", dataset="CUB", metric="IS ↑", protocol="Inception")
    assert is_row["paper ±"] == 0.47 and is_row["ours ±"] == 0.1
    # Methods this workbook does not implement keep the paper's number and say why ours is absent.
    (peer,) = _pick(rows, method="SN-GAN", dataset="CUB", metric="FID ↓")
    assert peer["paper"] == 160.09 and isinstance(peer["ours"], NotRun)
    assert "not implemented" in peer["ours"].reason
    # A dataset no run trained on.
    (fs,) = _pick(rows, method="DS-ComGAN", dataset="FS-100", metric="FID ↓")
    assert "dataset not in this run" in fs["ours"].reason and "FS-100" in fs["ours"].reason


def test_table2_says_why_each_missing_number_is_missing():
    rows = pt.table2({"cub": _cub_metrics()})
    _no_blank_cells(rows)
    (base,) = _pick(rows, method=pt.ROW_SIMPLEGAN, dataset="CUB", metric="FID ↓")
    assert base["ours"] == 80.0 and base["ours − paper"] == pytest.approx(80.0 - 89.87)
    (comgan,) = _pick(rows, method=pt.ROW_COMGAN, dataset="CUB", metric="FID ↓")
    assert comgan["ours"].reason.startswith("no Inception weights")
    assert str(comgan["ours"]).startswith(f"{NOT_RUN}: no Inception weights")
    (info_fid,) = _pick(rows, method=pt.ROW_INFO, dataset="CUB", metric="FID ↓")
    assert "no reason recorded" in info_fid["ours"].reason
    (info_is,) = _pick(rows, method=pt.ROW_INFO, dataset="CUB", metric="IS ↑")
    assert info_is["ours"] == 4.2 and info_is["n"] == "not recorded"
    (gain,) = _pick(rows, method=pt.ROW_IMPROVEMENT, dataset="CUB", metric="FID ↓")
    assert gain["ours"] == pytest.approx(60.0) and gain["paper"] == 73.61
    assert gain["ours − paper"] == pytest.approx(60.0 - 73.61)


def test_a_missing_section_names_the_notebook_that_did_not_run():
    metrics = {"data": {"dataset": "synthetic", "has_masks": True}}
    t2 = pt.table2({"synthetic": metrics})
    (row,) = _pick(t2, method=pt.ROW_SIMPLEGAN, dataset="synthetic", metric="FID ↓")
    assert row["paper"].startswith("not in the paper")
    assert row["ours"].reason.startswith("notebook 03_disentanglement not run")
    assert row["ours − paper"] == pt.DASH
    t4 = pt.table4({"synthetic": metrics})
    (seg,) = _pick(t4, method="DS-ComGAN", dataset="synthetic", metric="IoU % ↑")
    assert "notebook 04_segmentation not run" in seg["ours"].reason
    # With the manifest's word for it, the reason is precise.
    run = pt.Run("synthetic", metrics, notebooks={"04_segmentation": "failed"})
    (seg,) = _pick(pt.table4([run]), method="DS-ComGAN", dataset="synthetic", metric="IoU % ↑")
    assert seg["ours"].reason == "notebook 04_segmentation failed in run synthetic"


def test_table4_in_percent_under_both_protocols_and_every_split():
    rows = pt.table4({"cub": _cub_metrics()})
    _no_blank_cells(rows)
    iou = _pick(rows, method="DS-ComGAN", dataset="CUB", metric="IoU % ↑")
    assert [(r["protocol"], r["split"]) for r in iou] == [
        ("max-flip", "train"),
        ("foreground-only", "train"),
        ("max-flip", "test"),
        ("foreground-only", "test"),
    ]
    assert iou[0]["ours"] == pytest.approx(62.0) and iou[0]["ours − paper"] == pytest.approx(1.3)
    assert iou[0]["n"] == 10000 and "ds_comgan" in iou[0]["note"]
    assert "the paper scored training data" in iou[2]["note"]
    (dice,) = _pick(rows, method="DS-ComGAN", dataset="CUB", metric="Dice % ↑", split="test",
                    protocol="foreground-only")  # fmt: skip
    assert (
        isinstance(dice["ours"], NotRun) and "foreground-only dice missing" in dice["ours"].reason
    )


def test_table4_shows_s_after_the_colour_em_beside_s_and_says_when_it_was_not_scored():
    metrics = _cub_metrics()
    rows = pt.table4({"cub": metrics})
    refined = _pick(rows, method="S + colour EM (this workbook)", metric="IoU % ↑")
    assert refined and all(isinstance(r["ours"], NotRun) for r in refined)
    assert "no colour-EM scores" in refined[0]["ours"].reason
    metrics["segmentation"]["test"]["colour_em"] = {
        "max_flip": {"iou": 0.81, "dice": 0.88},
        "foreground": {"iou": 0.8, "dice": 0.87},
        "n_images": 1000,
    }
    rows = pt.table4({"cub": metrics})
    (row,) = _pick(rows, method="S + colour EM (this workbook)", metric="IoU % ↑", split="test",
                   protocol="max-flip")  # fmt: skip
    assert row["ours"] == pytest.approx(81.0) and "post-hoc" in row["note"]
    assert row["paper"].startswith("not in the paper")
    (self_row, *_) = _pick(rows, method="S after self-training (this workbook)", metric="IoU % ↑")
    assert "self_train_steps is 0" in self_row["ours"].reason
    metrics["segmentation"]["self_trained"] = {
        "test": {"max_flip": {"iou": 0.9, "dice": 0.95}, "n_images": 1000}
    }
    (self_row,) = _pick(pt.table4({"cub": metrics}), method="S after self-training (this workbook)",
                        metric="IoU % ↑", protocol="max-flip")  # fmt: skip
    assert self_row["ours"] == pytest.approx(90.0) and "stage 2b" in self_row["note"]
    # S's own row is unchanged by the refined scores beside it.
    (s_row,) = _pick(rows, method="DS-ComGAN", dataset="CUB", metric="IoU % ↑", split="test",
                     protocol="max-flip")  # fmt: skip
    assert s_row["ours"] == pytest.approx(60.0)


def test_table4_without_masks_and_with_training_free_predictors(tmp_path):
    fs100 = {"data": {"dataset": "class_folders", "has_masks": False}}
    synthetic = json.loads(
        json.dumps(
            {
                "data": {
                    "dataset": "synthetic",
                    "has_masks": True,
                    "training_free_predictors": {
                        "centred_disc": {
                            "max_flip": {"iou": 0.35, "dice": 0.5},
                            "foreground": {"iou": 0.34, "dice": 0.49},
                            "n_images": 500,
                        }
                    },
                }
            }
        )
    )
    runs = {"fs100": fs100, "synthetic": synthetic}
    assert pt.as_runs(runs)["fs100"].dataset == "fs100"  # a class_folders run named after FS-100
    rows = pt.table4(runs)
    disc = _pick(rows, method="training-free: centred_disc", metric="IoU % ↑")
    assert [r["ours"] for r in disc] == pytest.approx([35.0, 34.0])
    assert disc[0]["split"] == "test" and disc[0]["paper"].startswith("not in the paper")
    # FS-100 is in no segmentation table: a Table 1 row says its 03 section is missing instead.
    t1 = pt.table1(runs)
    (fs,) = _pick(t1, method="DS-ComGAN", dataset="FS-100", metric="FID ↓")
    assert fs["run"] == "fs100" and "03_disentanglement" in fs["ours"].reason


def test_write_tables_writes_csv_and_markdown_with_reasons(tmp_path):
    run = RunDir(tmp_path / "cub")
    tables = pt.write_tables(run, {"cub": _cub_metrics()})
    assert set(tables) == set(PAPER_TABLES)
    for name in PAPER_TABLES:
        assert (tmp_path / "cub" / "tables" / f"{name}.csv").is_file()
    md = (tmp_path / "cub" / "tables" / "table2.md").read_text()
    assert f"{NOT_RUN}: no Inception weights" in md
    assert "| 80.00 |" in md  # rounded as the paper prints
    with open(tmp_path / "cub" / "tables" / "table4.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    (row,) = [
        r
        for r in rows
        if r["method"] == "DS-ComGAN"
        and r["dataset"] == "CUB"
        and r["metric"] == "IoU % ↑"
        and r["protocol"] == "max-flip"
        and r["split"] == "train"
    ]
    assert float(row["ours"]) == pytest.approx(62.0) and row["paper"] == "60.7"
    assert all(r["ours"] for r in rows)  # never blank
    summary = pt.summary(tables["table4"])
    assert summary["ours"] == 7 and summary["cells"] == len(tables["table4"])


def test_load_runs_reads_the_manifests_notebook_statuses(tmp_path):
    root = tmp_path / "synthetic"
    root.mkdir()
    (root / "metrics.json").write_text(json.dumps({"data": {"dataset": "synthetic"}}))
    manifest = {
        "status": "failed",
        "params": {"run": {"notebooks": ["00_data", "03_disentanglement", "04_segmentation"]}},
        "notebooks": [
            {"name": "00_data", "status": "ok"},
            {"name": "03_disentanglement", "status": "failed"},
        ],
    }
    (root / "manifest.json").write_text(json.dumps(manifest))
    runs = pt.load_runs([root, root])  # the same folder twice counts once
    assert list(runs) == ["synthetic"]
    run = runs["synthetic"]
    assert run.missing_reason("disentanglement") == (
        "notebook 03_disentanglement failed in run synthetic"
    )
    assert "not reached" in run.missing_reason("segmentation")
    with pytest.raises(FileNotFoundError):
        pt.load_run(tmp_path / "nowhere")


# ----------------------------------------------------------------------------------------------
# Table cells


def test_not_run_cells_carry_their_reason_in_every_format(tmp_path):
    rows = [
        {"model": "A", "FID": NotRun("no Inception weights")},
        {"model": "B", "FID": None},
        {"model": "C|D", "FID": 1.23456},
    ]
    md = RunDir(tmp_path / "r").save_table("t", rows, digits=2).read_text()
    assert "| A | not run: no Inception weights |" in md
    assert f"| B | {NOT_RUN} |" in md and "| C\\|D | 1.23 |" in md
    csv_text = (tmp_path / "r" / "tables" / "t.csv").read_text().splitlines()
    assert csv_text[1:] == ["A,not run: no Inception weights", "B,not run", "C|D,1.23456"]
    assert format_cell(NotRun()) == NOT_RUN
    html = html_table(rows, 2)
    assert '<td class="not-run">not run: no Inception weights</td>' in html
    assert "<td>C|D</td>" in html and markdown_table([]) == "(empty table)\n"
