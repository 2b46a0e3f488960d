"""The run report (one self-contained HTML page), its hook in the runner, figure saving, and
notebook 05_tables on a hand-made run folder."""

from __future__ import annotations

import json
import re
import tomllib
from fnmatch import fnmatch
from html import unescape
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from comgan_lib import paper_tables as pt  # noqa: E402
from comgan_lib import report  # noqa: E402
from comgan_lib import run as runner  # noqa: E402
from comgan_lib.rundir import RunDir  # noqa: E402


def _figure(title: str):
    fig, ax = plt.subplots(figsize=(2, 1.5))
    ax.plot([0, 1], [1, 0])
    ax.set_title(title)
    return fig


def _manifest(status="ok", notebooks=None, selected=None):
    notebooks = notebooks or [{"name": "00_data", "status": "ok", "wall_s": 1.5}]
    return {
        "params_file": "params/smoke.yaml",
        "overrides": ["train.steps=4"],
        "params": {
            "run": {"name": "smoke", "notebooks": selected or [n["name"] for n in notebooks]},
            "data": {"kind": "synthetic", "resolution": 32},
            "model": {"kind": "ds_comgan"},
        },
        "git": {"commit": "abc123", "dirty": False},
        "packages": {"python": "3.11", "torch": "2.x"},
        "device": "cpu: test",
        "started": "2026-01-01T00:00:00+00:00",
        "finished": "2026-01-01T00:01:00+00:00",
        "status": status,
        "wall_s": 60.0,
        "notebooks": notebooks,
    }


@pytest.fixture
def run_folder(tmp_path):
    """A run folder made by hand: figures, a table, metrics and a manifest."""
    run = RunDir(tmp_path / "smoke")
    for name in ("02_fig5_rows", "00_data_grid", "01_fig4_grad_norms", "01_fig2_masks"):
        fig = _figure(name)
        run.save_figure(fig, name, dpi=40, model="ComGAN β=1")
        plt.close(fig)
    run.update_metrics(
        "data",
        {
            "dataset": "synthetic",
            "has_masks": True,
            "coverage": {"train": {"mean": 0.18}, "test": {"mean": 0.17}},
            "training_free_predictors": {
                "all_foreground": {
                    "max_flip": {"iou": 0.18, "dice": 0.3},
                    "foreground": {"iou": 0.18, "dice": 0.3},
                    "n_images": 32,
                },
                "centred_disc": {
                    "max_flip": {"iou": 0.35, "dice": 0.5},
                    "foreground": {"iou": 0.35, "dice": 0.5},
                    "n_images": 32,
                },
            },
        },
    )
    run.save_table("00_training_free_predictors", [{"predictor": "disc", "IoU": 0.35}])
    pt.write_tables(run, pt.load_runs([run.root]))
    (run.root / "manifest.json").write_text(json.dumps(_manifest()))
    return run.root


def test_save_figure_writes_png_and_pdf_stamped_with_run_and_model(tmp_path):
    run = RunDir(tmp_path / "myrun")
    fig = _figure("x")
    png = run.save_figure(fig, "03_fig6_codes", model="DS-ComGAN")
    run.save_figure(fig, "03_fig6_codes", model="DS-ComGAN")  # saving again keeps one stamp
    plt.close(fig)
    assert png.name == "03_fig6_codes.png" and png.stat().st_size > 500
    assert png.read_bytes()[:4] == b"\x89PNG"
    pdf = png.with_suffix(".pdf")
    assert pdf.read_bytes()[:5] == b"%PDF-"
    stamps = [t.get_text() for t in fig.texts if t.get_gid() == "comgan-stamp"]
    assert stamps == ["run myrun · DS-ComGAN"]


def test_paper_style_and_fit_to_paper():
    from comgan_lib import viz

    with viz.paper_style():
        assert matplotlib.rcParams["font.size"] == viz.PAPER_STYLE["font.size"]
        fig, _ = plt.subplots(figsize=(12, 3))
    viz.fit_to_paper(fig)
    assert fig.get_size_inches()[0] == pytest.approx(viz.PAPER_WIDTH_IN)
    plt.close(fig)
    assert viz.figure_title("Fig. 5 rows", model="ComGAN", run="cub") == (
        "Fig. 5 rows — ComGAN (run cub)"
    )


def test_report_is_one_self_contained_page(run_folder):
    path = report.write_report(run_folder)
    assert path == run_folder / "report.html"
    html = path.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>") and html.rstrip().endswith("</html>")
    # Figures are embedded; nothing is fetched from anywhere.
    sources = re.findall(r"""src\s*=\s*["']([^"']*)""", html)
    assert len(sources) == 4 and all(s.startswith("data:image/png;base64,") for s in sources)
    assert "<link" not in html and "<script" not in html and "http://" not in html
    # The paper's figures first, in the paper's order; the others after.
    order = [html.index(f"fig-{name}") for name in ("01_fig2_masks", "01_fig4_grad_norms")]
    order += [html.index(f"fig-{name}") for name in ("02_fig5_rows", "00_data_grid")]
    assert order == sorted(order)
    assert "<b>Fig. 2</b> of the paper" in html
    # Tables: the paper's tables first, then the others; not-run cells say why.
    assert html.index("table-table1") < html.index("table-table4")
    assert html.index("table-table4") < html.index("table-00_training_free_predictors")
    assert "Table 4 of the paper" in html and "<table>" in html
    assert "not run: notebook 04_segmentation" in html
    # Diagnostics: a dict of dicts becomes one matrix.
    assert "<th>training_free_predictors</th><th>max_flip.iou</th>" in html
    # Manifest: commit, versions, wall time per notebook.
    assert "abc123" in html and "<td>torch</td>" in html and "1.5" in html
    assert "Every notebook of the last runner call ran." in html


def test_report_figure_order():
    names = ["02_coverage", "04_fig8_seg", "01_fig4_g", "00_grid", "01_fig2_m", "03_fig6_z", "x"]
    ordered = [p.stem for p in sorted(map(_path, names), key=report.figure_order)]
    assert ordered == [
        "01_fig2_m",
        "01_fig4_g",
        "03_fig6_z",
        "04_fig8_seg",
        "00_grid",
        "02_coverage",
        "x",
    ]


def _path(name):
    return Path(f"figures/{name}.png")


def test_report_of_a_failed_run_names_the_notebook_and_what_is_missing(run_folder):
    manifest = _manifest(
        status="failed",
        notebooks=[
            {"name": "00_data", "status": "ok", "wall_s": 1.0},
            {
                "name": "03_disentanglement",
                "status": "failed",
                "wall_s": 2.0,
                "error": "notebook 03_disentanglement.ipynb failed in cell 5: ValueError: boom",
            },
        ],
        selected=["00_data", "03_disentanglement", "04_segmentation"],
    )
    (run_folder / "manifest.json").write_text(json.dumps(manifest))
    html = report.render_report(run_folder)
    assert "class='banner failed'" in html and "ValueError: boom" in html
    assert "03_disentanglement: failed; missing: metrics section 'disentanglement'" in unescape(
        html
    )
    assert "04_segmentation: not reached: an earlier notebook stopped the run" in html


def test_report_of_a_bare_folder_still_writes(tmp_path):
    (tmp_path / "empty").mkdir()
    html = report.write_report(tmp_path / "empty").read_text()
    assert "manifest.json not found" in html and "No figures" in html


def test_the_page_is_rendered_from_the_template_with_values_escaped(run_folder, tmp_path):
    template = Path(report.__file__).parent / "templates" / report.TEMPLATE_NAME
    heading = "<h2 id='missing'>What is missing</h2>"
    # The heading is written only in the template, so finding it on the page shows who drew it.
    assert heading in template.read_text(encoding="utf-8")
    assert heading not in Path(report.__file__).read_text(encoding="utf-8")
    odd = tmp_path / "<odd> & 'run'"  # a folder name cannot hold a "/", so no closing tag
    run_folder.rename(odd)
    page = report.render_report(odd)
    assert heading in page
    assert "<odd>" not in page
    assert "<title>ComGAN workbook — &lt;odd&gt; &amp; &#39;run&#39;</title>" in page
    assert "<code>&lt;odd&gt; &amp; &#39;run&#39;</code>" in page


def test_the_template_ships_with_the_package(repo):
    pyproject = tomllib.loads((repo / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["comgan_lib"]
    shipped = f"templates/{report.TEMPLATE_NAME}"
    assert (repo / "comgan_lib" / shipped).is_file()
    assert any(fnmatch(shipped, pattern) for pattern in patterns)


def test_report_cli(run_folder, tmp_path, capsys):
    assert report.main([str(run_folder)]) == 0
    out = capsys.readouterr().out
    assert re.fullmatch(r"report: .*report\.html \(\d+\.\d KiB\)\n", out)
    assert report.main([str(tmp_path / "missing")]) == 2
    assert "run folder not found" in capsys.readouterr().err


def _fake_notebooks(tmp_path, names):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    for name in names:
        (folder / f"{name}.ipynb").write_text("{}")
    return folder


def test_runner_writes_the_report_after_a_failed_notebook(tmp_path, repo, monkeypatch, capsys):
    def fail(source, target, parameters, html):
        raise runner.NotebookFailed(f"notebook {source.name} failed in cell 2: ValueError: boom")

    monkeypatch.setattr(runner, "execute_notebook", fail)
    notebooks = _fake_notebooks(tmp_path, ["00_data"])
    overrides = [f"output.root={tmp_path / 'out'}", "run.notebooks=[00_data, 05_tables]"]
    with pytest.raises(runner.NotebookFailed):
        runner.run_workbook(repo / "params" / "smoke.yaml", overrides, None, notebooks)
    page = tmp_path / "out" / "smoke" / "report.html"
    assert f"report: {page}" in capsys.readouterr().out
    html = page.read_text()
    assert "00_data.ipynb failed in cell 2: ValueError: boom" in html
    assert "05_tables: not reached" in html
    manifest = json.loads((tmp_path / "out" / "smoke" / "manifest.json").read_text())
    assert "ValueError: boom" in manifest["notebooks"][0]["error"]


def test_a_report_failure_does_not_hide_the_notebook_error(tmp_path, repo, monkeypatch, capsys):
    def fail(source, target, parameters, html):
        raise runner.NotebookFailed("notebook 00_data.ipynb failed: the real error")

    def broken_report(run_dir):
        raise RuntimeError("report broke")

    monkeypatch.setattr(runner, "execute_notebook", fail)
    monkeypatch.setattr(report, "write_report", broken_report)
    notebooks = _fake_notebooks(tmp_path, ["00_data"])
    overrides = [f"output.root={tmp_path / 'out'}", "run.notebooks=[00_data]"]
    with pytest.raises(runner.NotebookFailed, match="the real error"):
        runner.run_workbook(repo / "params" / "smoke.yaml", overrides, None, notebooks)
    assert "warning: report not written: RuntimeError: report broke" in capsys.readouterr().err


def test_tables_notebook_on_a_hand_made_run(tmp_path, repo):
    """Notebook 05 on params/smoke.yaml needs only metrics.json: a hand-made one here."""
    run = RunDir(tmp_path / "smoke")
    run.update_metrics(
        "data",
        {
            "dataset": "synthetic",
            "has_masks": True,
            "training_free_predictors": {
                "centred_disc": {
                    "max_flip": {"iou": 0.35, "dice": 0.5},
                    "foreground": {"iou": 0.34, "dice": 0.49},
                    "n_images": 32,
                }
            },
        },
    )
    row = {"fid": 12.5, "is": 1.9, "features": pt.FEATURES_DOMAIN, "n_samples": 16}
    run.update_metrics(
        pt.SECTION_DISENTANGLEMENT,
        {"table2": {pt.ROW_SIMPLEGAN: row, pt.ROW_DS_COMGAN: {**row, "fid": 7.25}}},
    )
    root = runner.run_workbook(
        repo / "params" / "smoke.yaml",
        [f"output.root={tmp_path}", "output.html=false"],
        ["05_tables"],
    )
    assert root == run.root
    md = (root / "tables" / "table2.md").read_text()
    assert "| SimpleGAN | synthetic | FID ↓ |" in md and "| 12.50 |" in md and "| 5.25 |" in md
    assert "not run: notebook 04_segmentation" in (root / "tables" / "table4.md").read_text()
    metrics = json.loads((root / "metrics.json").read_text())
    assert metrics["tables"]["table2"]["ours"] == 6
    html = (root / "report.html").read_text()
    assert "Table 2 of the paper" in html and "Every notebook of the last runner call ran" in html
