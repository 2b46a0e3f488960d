"""The runner executes notebooks with papermill and writes a complete run folder."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import nbformat
import pytest
import torch

from comgan_lib import paper_tables as pt
from comgan_lib.run import NotebookFailed, run_workbook


def run_cli(repo, args: list[str], timeout: int) -> subprocess.CompletedProcess:
    """``python -m comgan_lib.run ARGS`` from the repository, output captured."""
    return subprocess.run(
        [sys.executable, "-m", "comgan_lib.run", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory, repo):
    """One real run of 00_data on params/smoke.yaml, shared by the checks below."""
    out = tmp_path_factory.mktemp("outputs")
    result = run_cli(
        repo,
        [
            str(repo / "params" / "smoke.yaml"),
            "--only",
            "00_data",
            "--set",
            f"output.root={out}",
        ],
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return out / "smoke", result


def test_run_folder_is_complete(smoke_run):
    run, result = smoke_run
    for sub in ("notebooks", "figures", "tables", "checkpoints", "logs"):
        assert (run / sub).is_dir()
    assert (run / "params.yaml").is_file()
    assert (run / "notebooks" / "00_data.ipynb").is_file()
    html = (run / "notebooks" / "00_data.html").read_text()
    assert "<html" in html and "data:image/png;base64" in html
    figures = sorted(p.name for p in (run / "figures").glob("*.png"))
    assert {"00_assumption1.png", "00_data_grid.png", "00_training_free_predictors.png"} <= set(
        figures
    )
    assert all((run / "figures" / f).stat().st_size > 1000 for f in figures)
    assert (run / "tables" / "00_training_free_predictors.md").read_text().count("|") > 10
    assert "[1/1] 00_data" in result.stdout  # progress is visible
    assert (run / "figures" / "00_data_grid.pdf").is_file()  # figures also as PDF, for print
    report = (run / "report.html").read_text()  # the run's one-page report, figures embedded
    assert f"report: {run / 'report.html'}" in result.stdout
    assert "data:image/png;base64" in report and "fig-00_data_grid" in report


def test_manifest_records_what_a_reproducer_needs(smoke_run):
    run, _ = smoke_run
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "ok"
    assert manifest["params"]["data"]["kind"] == "synthetic"
    assert manifest["params"]["output"]["root"] == str(run.parent)
    assert {"torch", "torchvision", "papermill", "python"} <= set(manifest["packages"])
    assert manifest["device"].startswith(("cpu", "cuda"))
    assert "commit" in manifest["git"]
    (entry,) = manifest["notebooks"]
    assert entry["name"] == "00_data" and entry["status"] == "ok" and entry["wall_s"] > 0


def test_metrics_hold_the_training_free_predictor_scores(smoke_run):
    run, _ = smoke_run
    data = json.loads((run / "metrics.json").read_text())["data"]
    assert data["train_images"] == 64 and data["test_images"] == 32
    assert data["composition_residual"] == 0.0
    scores = data["training_free_predictors"]
    assert set(scores) == {"all_foreground", "centred_disc", "border_otsu", "centre_colour_em"}
    for s in scores.values():
        assert 0 <= s["foreground"]["iou"] <= s["max_flip"]["iou"] <= 1
    assert scores["all_foreground"]["max_flip"]["iou"] == pytest.approx(
        data["coverage"]["test"]["mean"], abs=1e-6
    )


def test_executed_notebook_has_outputs_and_no_errors(smoke_run):
    run, _ = smoke_run
    nb = nbformat.read(run / "notebooks" / "00_data.ipynb", as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in code)
    outputs = [o for c in code for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any(o.get("data", {}).get("image/png") for o in outputs)


def _notebook(path, sources):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("params_path = None\nrun_dir = None")]
    nb.cells[0].metadata["tags"] = ["parameters"]
    nb.cells += [nbformat.v4.new_code_cell(s) for s in sources]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, path)


def test_failing_notebook_stops_the_run_and_keeps_the_partial_notebook(tmp_path, repo):
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    _notebook(notebooks / "00_data.ipynb", ["x = 1", "raise ValueError('broken on purpose')"])
    _notebook(notebooks / "01_pi_baselines.ipynb", ["y = 2"])
    params = repo / "params" / "smoke.yaml"
    with pytest.raises(NotebookFailed) as info:
        run_workbook(params, [f"output.root={tmp_path / 'out'}"], None, notebooks)
    message = str(info.value)
    assert (
        "00_data.ipynb" in message
        and "cell 4 of the executed notebook (`raise ValueError" in message
        and "broken on purpose" in message
    )
    run = tmp_path / "out" / "smoke"
    partial = nbformat.read(run / "notebooks" / "00_data.ipynb", as_version=4)
    assert any(o.output_type == "error" for c in partial.cells for o in c.get("outputs", []))
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "failed"
    assert [n["status"] for n in manifest["notebooks"]] == ["failed"]  # 01 never started
    assert not (run / "notebooks" / "01_pi_baselines.ipynb").exists()


def test_failing_notebook_exit_code_and_one_line_message(tmp_path, repo):
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    _notebook(notebooks / "00_data.ipynb", ["1 / 0"])
    result = run_cli(
        repo,
        [
            str(repo / "params" / "smoke.yaml"),
            "--notebook-dir",
            str(notebooks),
            "--set",
            f"output.root={tmp_path / 'out'}",
            "--only",
            "00",
        ],
        timeout=300,
    )
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(
        "error: notebook 00_data.ipynb failed in cell 3 of the executed notebook (`1 / 0`)"
    )
    assert "ZeroDivisionError" in last


def test_notebooks_missing_from_the_checkout_are_reported_not_faked(tmp_path, repo):
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    shutil.copy(repo / "notebooks" / "00_data.ipynb", notebooks)
    _notebook(notebooks / "00_data.ipynb", ["z = 3"])
    root = run_workbook(
        repo / "params" / "smoke.yaml",
        [
            f"output.root={tmp_path / 'out'}",
            "run.notebooks=[00_data, 05_tables]",
            "output.html=false",
        ],
        None,
        notebooks,
    )
    manifest = json.loads((root / "manifest.json").read_text())
    assert [n["status"] for n in manifest["notebooks"]] == ["ok", "not in this checkout"]
    assert not (root / "notebooks" / "00_data.html").exists()
    assert "05_tables: not in this checkout" in (root / "report.html").read_text()


def test_a_corrupt_dataset_file_stops_the_run_before_any_notebook(tmp_path, repo):
    from PIL import Image

    root = tmp_path / "data"
    (root / "images").mkdir(parents=True)
    for i in range(4):
        Image.new("RGB", (40, 30), (i * 40, 10, 10)).save(root / "images" / f"ok{i}.png")
    (root / "images" / "broken.jpg").write_bytes(b"not a jpeg")
    params = tmp_path / "mine.yaml"
    params.write_text(f"data: {{kind: folder, root: {root}}}\noutput: {{root: {tmp_path / 'o'}}}\n")
    result = run_cli(repo, [str(params)], timeout=120)
    assert result.returncode == 2
    assert "broken.jpg" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o" / "mine").exists()


def test_comgan_notebook_runs_on_smoke_and_records_its_section(tmp_path, repo):
    root = run_workbook(
        repo / "params" / "smoke.yaml",
        [f"output.root={tmp_path}", "output.html=false"],
        ["02_comgan"],
    )
    metrics = json.loads((root / "metrics.json").read_text())["comgan"]
    assert metrics["steps"] == 4
    assert set(metrics["diagnostics"]) >= {"frac_empty", "frac_full", "frac_same_layers"}
    assert metrics["fidelity"]["orientation"] in ("mask", "inverse")
    assert set(metrics["fidelity"]["layer_gap"]) == {"object", "spill", "miss", "background"}
    # Three oracle steps cannot make a trustworthy instrument, so no verdict is claimed.
    assert metrics["oracle_trustworthy"] is False and metrics["meets_bar"] is False
    figures = {p.name for p in (root / "figures").glob("*.png")}
    assert {
        "02_fig5_rows.png",
        "02_training_curves.png",
        "02_coverage.png",
        "02_spill_rows.png",
    } <= figures
    assert (root / "checkpoints" / "comgan_beta1.pt").exists()


def test_pi_baselines_notebook_runs_on_smoke(tmp_path, repo):
    root = run_workbook(
        repo / "params" / "smoke.yaml",
        [f"output.root={tmp_path}", "output.html=false", "train.baseline_steps=2"],
        ["01_pi_baselines"],
    )
    section = json.loads((root / "metrics.json").read_text())["pi_baselines"]
    assert section["runs_total"] == 6 and section["steps"] == 2
    assert 0 <= section["agree_with_paper"] <= 6
    for row in section["runs"].values():
        assert row["verdict"] in ("trivial", "non-trivial")
    # Every diagnostic named as separating does rank ComGAN ahead of both Π wirings at each β.
    signs = {"binariness": 1, "frac_same_layers": -1, "frac_empty": -1, "frac_full": -1}
    runs = section["runs"]
    for key in section["separating_diagnostics"]:
        for beta in ("0.1", "1"):
            ours = runs[f"ComGAN beta={beta}"][key]
            for pi in ("Π1", "Π2"):
                assert signs[key] * (ours - runs[f"{pi} beta={beta}"][key]) > 0
    figures = {p.name for p in (root / "figures").glob("*.png")}
    assert {"01_fig2_masks.png", "01_fig4_grad_norms.png", "01_lemma1_saturation.png"} <= figures
    assert len(list((root / "checkpoints").glob("*_beta*.pt"))) == 6


def test_disentanglement_segmentation_tables_and_explorer_run_on_smoke(tmp_path, repo):
    """03 → 06 in one run (03 trains the whole Table 2 ladder, so 04 and 06 find DS-ComGAN); the
    oracle 02 would train is made first, so 04 also checks the generator against it."""
    from comgan_lib.config import load_params
    from comgan_lib.oracle import train_oracle
    from comgan_lib.rundir import RunDir

    overrides = [f"output.root={tmp_path}", "output.html=false", "train.ladder_steps=2"]
    overrides.append("train.ds_trunk_from=comgan_beta1")  # as the embedded default
    params = load_params(repo / "params" / "smoke.yaml", overrides)
    train_oracle(params, RunDir.for_params(params), steps=params.eval.oracle_steps, progress=False)
    root = run_workbook(
        repo / "params" / "smoke.yaml",
        overrides,
        ["03_disentanglement", "04_segmentation", "05_tables", "06_explore"],
    )
    metrics = json.loads((root / "metrics.json").read_text())
    dis = metrics["disentanglement"]
    assert list(dis["table2"]) == list(pt.TABLE2_ROWS)
    for cells in dis["table2"].values():
        by_features = {c["features"]: c for c in cells}
        assert by_features["domain"]["fid"] >= 0 and by_features["domain"]["steps"] == 2
        assert by_features["inception"]["fid"] is None  # no weights on this machine
        assert "eval.inception_weights" in by_features["inception"]["reason"]
    # DS-ComGAN for 04 and 06 starts from ComGAN's Φ; Table 2 scores one trained from scratch.
    ds_cell = {c["features"]: c for c in dis["table2"][pt.ROW_DS_COMGAN]}["domain"]
    assert ds_cell["checkpoint"] == "ds_comgan_scratch_beta1@2"
    main = torch.load(root / "checkpoints" / "ds_comgan_beta1.pt", weights_only=False)
    assert main["spec"]["trunk_from"] == "comgan_beta1" and main["step"] == 4
    assert set(dis["code_recovery"]) == {"comgan_info", "ds_comgan"}
    assert 0 <= dis["leakage"]["ds_comgan"]["b_share_outside_mask"] <= 1
    seg = metrics["segmentation"]
    for split in ("train", "test"):
        assert {"max_flip", "foreground"} <= set(seg[split])
        assert seg[split]["max_flip"]["iou"] >= seg[split]["foreground"]["iou"] - 1e-9
    assert seg["orientation"]["orientation"] in ("mask", "inverse")
    # This workbook's additions, scored beside S: the colour EM and stage 2b (smoke: 2 steps).
    assert 0 <= seg["test"]["colour_em"]["max_flip"]["iou"] <= 1
    assert seg["self_train_steps"] == 2 and 0 <= seg["self_trained"]["test"]["max_flip"]["iou"] <= 1
    margin = seg["self_trained"]["test"]["max_flip"]["iou"] - seg["best_training_free_test_iou"]
    assert seg["margin_self_trained_over_training_free"] == pytest.approx(margin)
    assert (root / "tables" / "04_self_training_scores.md").exists()
    assert metrics["explorer"]["median_ms"] > 0
    figures = {p.name for p in (root / "figures").glob("*.png")}
    assert {
        "03_fig6_vary_z_f_b.png",
        "03_fig7a_vary_b.png",
        "03_fig7b_vary_f.png",
        "04_fig8_segmentation.png",
        "04_generator_masks_vs_oracle.png",
        "06_explorer_initial.png",
    } <= figures
    table4 = (root / "tables" / "table4.md").read_text()
    assert "max-flip" in table4 and "60.7" in table4  # ours labelled; the paper's CUB IoU
    assert "not run" in (root / "tables" / "table2.md").read_text()  # Inception columns
    assert (root / "checkpoints" / "segmenter.pt").exists()


def test_own_image_folder_runs_stage_1_and_stage_2_end_to_end(tmp_path, repo):
    """Nothing in 00 → 04 depends on the embedded dataset: a plain folder of PNGs with masks."""
    import numpy as np
    from PIL import Image

    from comgan_lib.data.synthetic import render_item

    root = tmp_path / "mine"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(40):
        item = render_item(0, "train", i, 32, 3, 3)
        rgb = ((item["image"].permute(1, 2, 0).numpy() + 1) * 127.5).round().astype(np.uint8)
        Image.fromarray(rgb).save(root / "images" / f"photo{i:02d}.png")
        Image.fromarray((item["mask"][0].numpy() * 255).astype(np.uint8)).save(
            root / "masks" / f"photo{i:02d}.png"
        )
    run_root = run_workbook(
        repo / "params" / "my_images.yaml",
        [
            f"output.root={tmp_path / 'out'}",
            f"data.root={root}",
            "output.html=false",
            "model.gen_width=32",
            "model.disc_width=16",
            "model.info_width=8",
            "model.num_codes=3",
            "train.steps=3",
            "train.ladder_steps=2",
            "train.batch_size=8",
            "segment.steps=3",
            "segment.batch_size=8",
            "segment.width=8",
            "segment.orientation_samples=16",
            "eval.fid_samples=16",
            "eval.fidelity_samples=16",
            "eval.oracle_steps=3",
        ],
        ["00_data", "03_disentanglement", "04_segmentation"],
    )
    metrics = json.loads((run_root / "metrics.json").read_text())
    assert metrics["data"]["has_masks"] is True
    seg = metrics["segmentation"]
    assert 0 <= seg["test"]["max_flip"]["iou"] <= 1 and seg["test"]["n_images"] == 4
    domain = {c["features"]: c for c in metrics["disentanglement"]["table2"]["SimpleGAN"]}["domain"]
    assert domain["fid"] is None and "species and scene labels" in domain["reason"]


def test_parity_check_parameter_file_runs_its_notebooks(tmp_path, repo):
    # params/simple.yaml at test size: 00 and 02 on the simple variant, with the parity bar.
    root = run_workbook(
        repo / "params" / "simple.yaml",
        [
            f"output.root={tmp_path}",
            "output.html=false",
            "data.train_size=64",
            "data.test_size=16",
            "model.gen_width=32",
            "model.disc_width=16",
            "train.steps=3",
            "train.batch_size=8",
            "eval.oracle_steps=3",
            "eval.fidelity_samples=16",
            "eval.grid_size=4",
        ],
        None,
    )
    metrics = json.loads((root / "metrics.json").read_text())
    assert set(metrics) >= {"data", "comgan"}
    assert "disentanglement" not in metrics  # run.notebooks: 00 and 02 only
    assert metrics["comgan"]["iou_bar"] == 0.9 and metrics["comgan"]["steps"] == 3
    assert 0.05 < metrics["data"]["coverage"]["train"]["mean"] < 0.2
