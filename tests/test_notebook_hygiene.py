"""Committed notebooks carry no outputs; the strip tool cleans a dirty one."""

from __future__ import annotations

import shutil

import nbformat

from comgan_lib.notebook_hygiene import dirty_reasons, main, strip


def test_committed_notebooks_are_clean(repo):
    paths = sorted((repo / "notebooks").glob("*.ipynb"))
    assert paths
    for path in paths:
        assert dirty_reasons(nbformat.read(path, as_version=4)) == [], path.name


def test_committed_notebooks_have_a_parameters_cell_and_narrative(repo):
    for path in sorted((repo / "notebooks").glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1, path.name
        assert "params_path" in tagged[0].source and "run_dir" in tagged[0].source
        assert nb.cells[0].cell_type == "markdown", path.name


def test_check_flags_and_strip_cleans(tmp_path, repo):
    target = tmp_path / "nb"
    target.mkdir()
    shutil.copy(repo / "notebooks" / "00_data.ipynb", target / "a.ipynb")
    nb = nbformat.read(target / "a.ipynb", as_version=4)
    code = next(c for c in nb.cells if c.cell_type == "code")
    code.outputs = [nbformat.v4.new_output("stream", name="stdout", text="hi\n")]
    code.execution_count = 3
    nb.metadata["papermill"] = {"duration": 1.0}
    nbformat.write(nb, target / "a.ipynb")
    assert main(["check", str(target)]) == 1
    assert main(["strip", str(target)]) == 0
    assert main(["check", str(target)]) == 0
    cleaned = nbformat.read(target / "a.ipynb", as_version=4)
    assert dirty_reasons(cleaned) == [] and dirty_reasons(strip(cleaned)) == []
    assert [c.source for c in cleaned.cells] == [c.source for c in nb.cells]
