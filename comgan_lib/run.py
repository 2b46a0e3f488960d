"""Runner: execute the workbook's notebooks in order with papermill for one parameter file.

Usage::

    python -m comgan_lib.run params/synthetic.yaml
    python -m comgan_lib.run params/smoke.yaml --only 00_data --set data.train_size=64

Writes ``outputs/<run>/`` (see ``comgan_lib.rundir``): the resolved ``params.yaml``, each
executed notebook and its HTML copy, ``figures/``, ``tables/``, ``metrics.json``,
``manifest.json`` and, after the notebooks (also when one failed), ``report.html``
(``comgan_lib.report``). Exit status: 0 when every notebook ran; 1 when a notebook failed (the
message names the notebook and the cell, and the partial executed notebook is kept); 2 for a user
error (bad parameters, missing file), reported as one line without a traceback.

Several GPUs: the runner itself runs one process. Train the stage-1 runs first with
``torchrun --nproc_per_node=N -m comgan_lib.train PARAMS --kind K --beta B`` (same parameter file
and ``--set`` overrides); the notebooks then find them finished and only reload them
(docs/PAPER_SCALE.md lists the runs).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from comgan_lib.config import NOTEBOOKS, Params, add_override_argument, load_params, save_params
from comgan_lib.errors import ConfigError, UserError
from comgan_lib.rundir import RunDir, run_dir_for, write_json_atomic
from comgan_lib.runtime import (
    PROJECT_ROOT,
    device_description,
    git_commit,
    package_versions,
    pick_device,
)

NOTEBOOK_DIR = PROJECT_ROOT / "notebooks"


class NotebookFailed(Exception):
    """A notebook raised during execution; the message names it and the failing cell."""


def select_notebooks(params: Params, only: list[str] | None) -> list[str]:
    """The notebooks to run: ``run.notebooks`` narrowed by ``--only`` (names or prefixes)."""
    chosen = list(params.run.notebooks)
    if not only:
        return chosen
    selected = []
    for token in only:
        matches = [n for n in NOTEBOOKS if n == token or n.startswith(token)]
        if len(matches) != 1:
            raise ConfigError(
                f"--only {token}: {'ambiguous' if matches else 'no such notebook'}; "
                f"choose from {', '.join(NOTEBOOKS)}"
            )
        if matches[0] not in selected:
            selected.append(matches[0])
    return [n for n in NOTEBOOKS if n in selected]


def check_data(params: Params) -> None:
    """Check the dataset folder before any notebook runs (``comgan_lib.data.check``: every
    listed file present and readable, masks the size of their images, boxes inside them), so a
    bad dataset is one clear line (a DatasetError naming the first problem) instead of a failure
    deep inside a notebook."""
    from comgan_lib.data.check import check_dataset
    from comgan_lib.errors import DatasetError

    report = check_dataset(params)
    if not report.ok:
        raise DatasetError(report.summary())


def execute_notebook(source: Path, target: Path, parameters: dict, html: bool) -> float:
    """Run one notebook with papermill; returns wall seconds. Raises NotebookFailed."""
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    # Figures must render inline in the executed notebook whatever backend the caller's shell set.
    os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    start = time.perf_counter()
    try:
        pm.execute_notebook(
            str(source),
            str(target),
            parameters=parameters,
            kernel_name="python3",
            cwd=str(source.parent),
            progress_bar=True,
            log_output=False,
        )
    except PapermillExecutionError as exc:
        first_line = next((ln for ln in exc.source.splitlines() if ln.strip()), "").strip()
        raise NotebookFailed(
            f"notebook {source.name} failed in cell {exc.cell_index + 1} of the executed notebook "
            f"(`{first_line[:60]}`): {exc.ename}: {exc.evalue}; "
            f"the partial executed notebook is kept at {target}"
        ) from None
    finally:
        if html and target.exists():
            write_html(target)
    return time.perf_counter() - start


def write_html(notebook: Path) -> Path:
    """An HTML copy beside the executed notebook (figures embedded)."""
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_filename(str(notebook))
    out = notebook.with_suffix(".html")
    out.write_text(body, encoding="utf-8")
    return out


def run_workbook(
    params_file: str | Path,
    overrides: list[str] = (),
    only: list[str] | None = None,
    notebook_dir: Path = NOTEBOOK_DIR,
) -> Path:
    """Execute the selected notebooks for one parameter file; returns the run folder."""
    params = load_params(params_file, overrides)
    notebook_dir = Path(notebook_dir)
    if not notebook_dir.is_dir():
        raise UserError(f"notebook folder not found: {notebook_dir}")
    names = select_notebooks(params, only)
    check_data(params)
    device = pick_device(params.run.device)
    run = RunDir(run_dir_for(params))
    resolved = run.root / "params.yaml"
    save_params(params, resolved)

    manifest = {
        "params_file": str(params_file),
        "overrides": list(overrides),
        "params": params.to_dict(),
        "git": git_commit(),
        "packages": package_versions(),
        "device": device_description(device),
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "status": "running",
        "notebooks": [],
    }
    manifest_path = run.root / "manifest.json"
    write_json_atomic(manifest_path, manifest)
    print(f"run folder: {run.root}  (device {manifest['device']})", flush=True)

    t0 = time.perf_counter()
    try:
        for i, name in enumerate(names, 1):
            entry = {"name": name, "status": "running", "wall_s": None}
            manifest["notebooks"].append(entry)
            source = notebook_dir / f"{name}.ipynb"
            if not source.exists():
                entry["status"] = "not in this checkout"
                print(f"[{i}/{len(names)}] {name}: not in this checkout, skipped", flush=True)
                continue
            target = run.path("notebooks", f"{name}.ipynb")
            entry["output"] = str(target.relative_to(run.root))
            print(f"[{i}/{len(names)}] {name}", flush=True)
            start = time.perf_counter()
            try:
                parameters = {"params_path": str(resolved), "run_dir": str(run.root)}
                entry["wall_s"] = round(
                    execute_notebook(source, target, parameters, params.output.html), 2
                )
            except BaseException as exc:
                entry["wall_s"] = round(time.perf_counter() - start, 2)
                entry["status"] = "failed" if isinstance(exc, NotebookFailed) else "interrupted"
                if isinstance(exc, NotebookFailed):
                    entry["error"] = str(exc)
                raise
            entry["status"] = "ok"
            print(f"[{i}/{len(names)}] {name}: done in {entry['wall_s']:.1f} s", flush=True)
        manifest["status"] = "ok"
    except NotebookFailed:
        manifest["status"] = "failed"
        raise
    except BaseException:
        manifest["status"] = "interrupted"
        raise
    finally:
        manifest["wall_s"] = round(time.perf_counter() - t0, 2)
        manifest["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
        write_json_atomic(manifest_path, manifest)
        write_report_safely(run.root)
    return run.root


def write_report_safely(run_root: Path) -> Path | None:
    """Write the run's report.html and print its path and size. Runs after the notebooks, also
    when one failed (the report then names it); a failure here is one warning line and never
    hides a notebook's error."""
    try:
        from comgan_lib.report import human_size, write_report

        path = write_report(run_root)
    except Exception as exc:  # the notebook's outcome matters more than the page
        print(f"warning: report not written: {type(exc).__name__}: {exc}", file=sys.stderr)
        return None
    print(f"report: {path} ({human_size(path.stat().st_size)})", flush=True)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m comgan_lib.run",
        description="Execute the workbook's notebooks with papermill for one parameter file.",
    )
    parser.add_argument("params", help="parameter file, e.g. params/synthetic.yaml")
    parser.add_argument(
        "--only",
        nargs="+",
        metavar="NAME",
        help="run only these notebooks (names or prefixes, e.g. 00_data or 00); commas also work",
    )
    add_override_argument(parser)
    parser.add_argument(
        "--notebook-dir",
        type=Path,
        default=NOTEBOOK_DIR,
        help=f"folder holding the notebooks (default: {NOTEBOOK_DIR})",
    )
    args = parser.parse_args(argv)
    only = [t for token in args.only or [] for t in token.split(",") if t]
    try:
        run_root = run_workbook(args.params, args.overrides, only or None, args.notebook_dir)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except NotebookFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; the partial run folder is kept", file=sys.stderr)
        return 130
    print(f"finished: {run_root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
