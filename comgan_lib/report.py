"""One self-contained page per run: ``outputs/<run>/report.html``.

Usage::

    python -m comgan_lib.report outputs/synthetic      # (re)write outputs/synthetic/report.html

The runner (``comgan_lib.run``) writes it after the notebooks, also when one failed. The page
holds, with nothing to fetch (figures embedded as base64 PNG data URIs, styles inline):
the run's status and what is missing (a failed or skipped notebook, an absent metrics section or
table); the figures in the paper's order (``NN_figK_*.png`` by notebook NN, then paper figure K;
figures without a paper number after); the tables (``tables/*.csv``, Tables 1-4 first); the
diagnostics (every ``metrics.json`` section as tables); and the manifest (parameters, commit,
package versions, device, wall time per notebook). It reads without Jupyter.

This module only gathers what the page shows; the page's layout and wording live in the Jinja2
template ``comgan_lib/templates/report.html.j2``, which escapes every value it is given.
"""

from __future__ import annotations

import base64
import csv
import json
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import jinja2
import yaml

from comgan_lib.rundir import NOT_RUN

REPORT_NAME = "report.html"
TEMPLATE_NAME = "report.html.j2"

# What each notebook leaves in metrics.json (sections) and in tables/ (names), to say what is
# missing when one did not run.
NOTEBOOK_SECTIONS = {
    "00_data": ("data",),
    "01_pi_baselines": ("pi_baselines",),
    "02_comgan": ("comgan",),
    "03_disentanglement": ("disentanglement",),
    "04_segmentation": ("segmentation",),
    "05_tables": (),
    "06_explore": (),
}
NOTEBOOK_TABLES = {"05_tables": ("table1", "table2", "table3", "table4")}

# The paper's figures, for captions.
PAPER_FIGURES = {
    1: "Overview of ComGAN",
    2: "Masks synthesised by Π1, Π2 and ComGAN, β = 0.1 and β = 1",
    3: "Overview of DS-ComGAN",
    4: "Gradient 2-norm of the mask network during training",
    5: "Generation results: images, masks, foregrounds, backgrounds",
    6: "Controllable generation by varying f, b and z",
    7: "Disentanglement of foreground and background",
    8: "Segmentation results: images, ground-truth masks, predicted masks",
}

# Long tables with an "ours" column show the cells with our numbers first, all cells folded.
LONG_TABLE_ROWS = 12

_NOTEBOOK_PREFIX = re.compile(r"^(?P<nb>\d+)_")
_FIG_NUMBER = re.compile(r"(?:^|_)fig(?P<fig>\d+)(?=_|$)", re.IGNORECASE)


# ----------------------------------------------------------------------------------------------
# Reading the run folder


def _read_json(path: Path) -> tuple[dict, str | None]:
    """The file's JSON object, or {} and why it could not be read."""
    if not path.exists():
        return {}, f"{path.name} not found"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        return {}, f"{path.name} unreadable: {exc}"
    return (data, None) if isinstance(data, dict) else ({}, f"{path.name} is not an object")


def figure_order(path: Path) -> tuple:
    """Sort key: figures with a paper figure number first, by notebook then figure number;
    then the others by notebook and name."""
    stem = path.stem
    nb = _NOTEBOOK_PREFIX.match(stem)
    fig = _FIG_NUMBER.search(stem)
    notebook = int(nb["nb"]) if nb else 999
    return (0 if fig else 1, notebook, int(fig["fig"]) if fig else 0, stem)


def paper_figure_number(path: Path) -> int | None:
    fig = _FIG_NUMBER.search(path.stem)
    return int(fig["fig"]) if fig else None


def ordered_figures(root: Path) -> list[Path]:
    return sorted((root / "figures").glob("*.png"), key=figure_order)


def _table_order(path: Path) -> tuple:
    m = re.fullmatch(r"table(\d+)", path.stem)
    return (0, int(m[1]), "") if m else (1, 0, path.stem)


def ordered_tables(root: Path) -> list[Path]:
    """One file per table name: the CSV where there is one, else the Markdown."""
    folder = root / "tables"
    by_name: dict[str, Path] = {}
    for path in sorted(folder.glob("*.md")) + sorted(folder.glob("*.csv")):
        by_name[path.stem] = path  # the CSV wins
    return sorted(by_name.values(), key=_table_order)


def _notebook_entries(manifest: Mapping) -> list[Mapping]:
    return [e for e in manifest.get("notebooks", []) if isinstance(e, Mapping)]


def _csv_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    return (rows[0], rows[1:]) if rows else ([], [])


def _round_text(text: str, digits: int) -> str:
    """A CSV number at full precision, shown rounded."""
    try:
        value = float(text)
    except ValueError:
        return text
    if re.fullmatch(r"-?\d+", text):
        return text
    return f"{value:.{digits}f}"


def _image_data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


# ----------------------------------------------------------------------------------------------
# What the template is given: plain values, never HTML


@dataclass(frozen=True)
class Cell:
    text: str
    css_class: str = ""  # "num", "not-run" or none


@dataclass(frozen=True)
class Table:
    header: list[str]
    rows: list[list[Cell]]


def _cell(value: Any) -> Cell:
    """How one value reads in a table cell, and whether it is a number or a "not run" note."""
    if value is None:
        return Cell(NOT_RUN, "not-run")
    if isinstance(value, bool):
        return Cell(str(value).lower())
    if isinstance(value, float):
        return Cell(f"{value:.4g}", "num")
    if isinstance(value, int):
        return Cell(str(value), "num")
    if isinstance(value, list | tuple):
        return Cell(json.dumps(value, ensure_ascii=False, default=str))
    text = str(value)
    if text.startswith(NOT_RUN):
        return Cell(text, "not-run")
    if re.fullmatch(r"-?\d+(\.\d+)?(e-?\d+)?", text):
        return Cell(text, "num")
    return Cell(text)


def make_table(header: list[Any], rows: list[list[Any]]) -> Table:
    return Table([str(h) for h in header], [[_cell(v) for v in row] for row in rows])


# ----------------------------------------------------------------------------------------------
# The run at a glance


@dataclass(frozen=True)
class RunSummary:
    name: str
    dataset: str
    resolution: str
    model: str
    device: str
    written: str


@dataclass(frozen=True)
class Failure:
    notebook: str
    error: str


@dataclass(frozen=True)
class RunStatus:
    """The banner: ``outcome`` is "all_ran", "finished_with_gaps", "failed" or "unclear"."""

    outcome: str
    not_run: str = ""
    failures: tuple[Failure, ...] = ()
    reason: str = ""


def run_summary(root: Path, manifest: Mapping) -> RunSummary:
    params = manifest.get("params") or {}
    data = params.get("data") or {}
    model = params.get("model") or {}
    return RunSummary(
        name=root.name,
        dataset=str(data.get("kind", "?")),
        resolution=str(data.get("resolution", "?")),
        model=str(model.get("kind", "?")),
        device=str(manifest.get("device", "not recorded")),
        written=datetime.now(UTC).isoformat(timespec="seconds"),
    )


def run_status(manifest: Mapping, manifest_problem: str | None) -> RunStatus:
    status = manifest.get("status") if not manifest_problem else "unknown"
    entries = _notebook_entries(manifest)
    failed = [e for e in entries if e.get("status") == "failed"]
    not_ok = [e for e in entries if e.get("status") != "ok"]
    if status == "ok" and not not_ok:
        return RunStatus("all_ran")
    if status == "ok":
        names = ", ".join(f"{e.get('name')} ({e.get('status')})" for e in not_ok)
        return RunStatus("finished_with_gaps", not_run=names)
    if failed:
        failures = tuple(
            Failure(str(e.get("name")), e.get("error") or "no message") for e in failed
        )
        return RunStatus("failed", failures=failures)
    return RunStatus("unclear", reason=manifest_problem or f"run status: {status}")


# ----------------------------------------------------------------------------------------------
# What is missing


def missing_items(manifest: Mapping, metrics: Mapping, root: Path) -> list[str]:
    """Plain sentences: notebooks that did not finish, and what they would have written."""
    params = manifest.get("params") or {}
    selected = list((params.get("run") or {}).get("notebooks") or [])
    entries = {e.get("name"): e for e in _notebook_entries(manifest)}
    stopped = manifest.get("status") in ("failed", "interrupted")
    items = []
    for name in selected or list(entries):
        entry = entries.get(name)
        lacking = [s for s in NOTEBOOK_SECTIONS.get(name, ()) if s not in metrics]
        lacking_tables = [
            t for t in NOTEBOOK_TABLES.get(name, ()) if not (root / "tables" / f"{t}.csv").exists()
        ]
        if entry is not None:
            status = entry.get("status", "")
        elif stopped:
            status = "not reached: an earlier notebook stopped the run"
        else:
            # Not in the last runner call (--only); its results may be from an earlier call.
            has_outputs = name in NOTEBOOK_SECTIONS and (
                NOTEBOOK_SECTIONS[name] or NOTEBOOK_TABLES.get(name)
            )
            if has_outputs and not lacking and not lacking_tables:
                continue
            status = "not run in the last runner call"
        if status == "ok":
            continue
        what = []
        if lacking:
            what.append("metrics section " + ", ".join(f"'{s}'" for s in lacking))
        if lacking_tables:
            what.append("tables " + ", ".join(lacking_tables))
        suffix = f"; missing: {'; '.join(what)}" if what else ""
        items.append(f"{name}: {status}{suffix}")
    return items


# ----------------------------------------------------------------------------------------------
# Figures


@dataclass(frozen=True)
class Figure:
    stem: str
    file_name: str
    data_uri: str
    paper_number: int | None
    paper_title: str
    pdf_name: str | None


def figure_entry(path: Path) -> Figure:
    number = paper_figure_number(path)
    pdf = path.with_suffix(".pdf")
    return Figure(
        stem=path.stem,
        file_name=path.name,
        data_uri=_image_data_uri(path),
        paper_number=number,
        paper_title=PAPER_FIGURES.get(number, "") if number is not None else "",
        pdf_name=pdf.name if pdf.exists() else None,
    )


def figure_entries(root: Path) -> tuple[list[Figure], list[Figure]]:
    """(the paper's figures, the other figures), each in the page's order."""
    figures = [figure_entry(path) for path in ordered_figures(root)]
    paper = [f for f in figures if f.paper_number is not None]
    others = [f for f in figures if f.paper_number is None]
    return paper, others


# ----------------------------------------------------------------------------------------------
# Tables


@dataclass(frozen=True)
class PaperTableNote:
    number: int
    caption: str
    protocol: str
    printed: Table


@dataclass(frozen=True)
class OursSummary:
    n_ours: int
    n_cells: int
    table: Table | None  # the cells with one of our numbers; None when there is none


@dataclass(frozen=True)
class TableEntry:
    name: str
    paper: PaperTableNote | None = None
    markdown: str | None = None  # a table that exists only as Markdown, shown as written
    table: Table | None = None
    ours: OursSummary | None = None


def _paper_numbers() -> tuple[Any, dict[str, int]]:
    """(the paper's numbers, digits per table), or (None, {}) when they cannot be loaded."""
    try:
        from comgan_lib.paper_tables import TABLE_DIGITS, load_paper_numbers

        return load_paper_numbers(), TABLE_DIGITS
    except Exception:  # the report must not fail over its captions
        return None, {}


def paper_tables_status(root: Path, manifest: Mapping) -> str | None:
    """Notebook 05_tables' status when Tables 1-4 are not all written, else None."""
    written = {p.stem for p in ordered_tables(root)}
    if set(NOTEBOOK_TABLES["05_tables"]) <= written:
        return None
    entries = _notebook_entries(manifest)
    return str(next((e.get("status") for e in entries if e.get("name") == "05_tables"), "not run"))


def _paper_table_note(name: str, paper: Any) -> PaperTableNote:
    from comgan_lib.paper_tables import paper_layout

    table = paper.tables[name]
    printed = paper_layout(name)
    return PaperTableNote(
        number=table.number,
        caption=table.caption,
        protocol=table.protocol,
        printed=make_table(list(printed[0]), [list(r.values()) for r in printed]),
    )


def _ours_summary(header: list[str], rows: list[list[str]]) -> OursSummary | None:
    if "ours" not in header or len(rows) <= LONG_TABLE_ROWS:
        return None
    column = header.index("ours")
    ours = [row for row in rows if not row[column].startswith(NOT_RUN)]
    return OursSummary(len(ours), len(rows), make_table(header, ours) if ours else None)


def table_entry(path: Path, paper: Any, digits: Mapping[str, int]) -> TableEntry:
    name = path.stem
    note = _paper_table_note(name, paper) if paper is not None and name in paper.tables else None
    if path.suffix == ".md":
        return TableEntry(name, note, markdown=path.read_text(encoding="utf-8"))
    header, rows = _csv_rows(path)
    shown = [[_round_text(c, digits.get(name, 3)) for c in row] for row in rows]
    return TableEntry(
        name, note, table=make_table(header, shown), ours=_ours_summary(header, shown)
    )


def table_entries(root: Path) -> list[TableEntry]:
    tables = ordered_tables(root)
    if not tables:
        return []
    paper, digits = _paper_numbers()
    return [table_entry(path, paper, digits) for path in tables]


# ----------------------------------------------------------------------------------------------
# Diagnostics: metrics.json sections as tables


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _flatten(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """Leaves of nested dicts as (dotted key, value); lists of scalars stay one value."""
    if isinstance(value, Mapping):
        out = []
        for k, v in value.items():
            out += _flatten(v, f"{prefix}.{k}" if prefix else str(k))
        return out
    if isinstance(value, list) and not all(_is_scalar(v) for v in value):
        return [(f"{prefix}[{i}]" if prefix else f"[{i}]", v) for i, v in enumerate(value)]
    return [(prefix, value)]


def _is_records(value: Any) -> bool:
    """A dict of at least two dicts: shown as a matrix (one row per entry)."""
    return (
        isinstance(value, Mapping)
        and len(value) >= 2
        and all(isinstance(v, Mapping) and v for v in value.values())
    )


def _records_table(path: str, records: Mapping) -> Table:
    """One row per record, one column per flattened key (in order of first appearance)."""
    flat = {key: dict(_flatten(record)) for key, record in records.items()}
    columns = list(dict.fromkeys(column for record in flat.values() for column in record))
    rows = [[key, *(record.get(c, "—") for c in columns)] for key, record in flat.items()]
    return make_table([path, *columns], rows)


def _collect_metrics(
    section: Mapping, prefix: str, scalars: list[list[Any]], matrices: list[Table]
) -> None:
    for key, value in section.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if _is_records(value):
            matrices.append(_records_table(path, value))
        elif isinstance(value, Mapping) and value:
            _collect_metrics(value, path, scalars, matrices)
        else:
            scalars.extend([k, v] for k, v in _flatten(value, path))


def metrics_section_tables(section: Any) -> list[Table]:
    """One metrics.json section as tables: scalars as key/value rows first, then dicts of dicts
    as matrices (e.g. one row per predictor or per model). Empty for an empty section."""
    if not isinstance(section, Mapping):
        return [make_table(["value"], [[section]])]
    scalars: list[list[Any]] = []
    matrices: list[Table] = []
    _collect_metrics(section, "", scalars, matrices)
    return ([make_table(["key", "value"], scalars)] if scalars else []) + matrices


# ----------------------------------------------------------------------------------------------
# Manifest


@dataclass(frozen=True)
class ManifestView:
    run: Table
    notebooks: Table | None
    versions: Table | None
    parameters: str | None  # the parameters as YAML


def _run_facts(manifest: Mapping) -> Table:
    git = manifest.get("git") or {}
    commit = git.get("commit", "not recorded")
    if git.get("dirty"):
        commit = f"{commit} (uncommitted changes)"
    facts = [
        ["status", manifest.get("status")],
        ["parameter file", manifest.get("params_file")],
        ["overrides", " ".join(manifest.get("overrides") or []) or "none"],
        ["git commit", commit],
        ["device", manifest.get("device")],
        ["started", manifest.get("started")],
        ["finished", manifest.get("finished")],
        ["wall time (s)", manifest.get("wall_s")],
    ]
    return make_table(["", "value"], facts)


def _notebook_runs(root: Path, manifest: Mapping) -> Table | None:
    rows = []
    for e in _notebook_entries(manifest):
        html_copy = root / "notebooks" / f"{e.get('name')}.html"
        rows.append(
            [
                e.get("name"),
                e.get("status"),
                e.get("wall_s") if e.get("wall_s") is not None else "—",
                e.get("error") or "",
                f"notebooks/{html_copy.name}" if html_copy.exists() else "",
            ]
        )
    if not rows:
        return None
    return make_table(["notebook", "status", "wall time (s)", "error", "executed copy"], rows)


def manifest_view(root: Path, manifest: Mapping) -> ManifestView:
    packages = manifest.get("packages") or {}
    params = manifest.get("params")
    return ManifestView(
        run=_run_facts(manifest),
        notebooks=_notebook_runs(root, manifest),
        versions=make_table(["package", "version"], list(packages.items())) if packages else None,
        parameters=yaml.safe_dump(params, sort_keys=False, allow_unicode=True) if params else None,
    )


# ----------------------------------------------------------------------------------------------
# The page


@cache
def _template() -> jinja2.Template:
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("comgan_lib", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,  # a misspelt name in the template fails, not blanks
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    return environment.get_template(TEMPLATE_NAME)


def report_context(root: Path) -> dict[str, Any]:
    """Everything the template shows, for one run folder."""
    manifest, manifest_problem = _read_json(root / "manifest.json")
    metrics, metrics_problem = _read_json(root / "metrics.json")
    paper_figures, other_figures = figure_entries(root)
    return {
        "run": run_summary(root, manifest),
        "status": run_status(manifest, manifest_problem),
        "missing": missing_items(manifest, metrics, root) if manifest else [],
        "manifest_problem": manifest_problem,
        "paper_figures": paper_figures,
        "other_figures": other_figures,
        "paper_tables_status": paper_tables_status(root, manifest),
        "tables": table_entries(root),
        "metrics_problem": metrics_problem,
        "metrics_sections": [
            (str(name), metrics_section_tables(section)) for name, section in metrics.items()
        ],
        "manifest": manifest_view(root, manifest) if not manifest_problem else None,
    }


def render_report(run_dir: str | Path) -> str:
    """The report's HTML for one run folder."""
    return _template().render(report_context(Path(run_dir)))


def write_report(run_dir: str | Path) -> Path:
    """Write ``<run_dir>/report.html`` (through a temporary file) and return its path."""
    root = Path(run_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"run folder not found: {root}")
    path = root / REPORT_NAME
    tmp = path.with_name(f".{REPORT_NAME}.tmp")
    tmp.write_text(render_report(root), encoding="utf-8")
    tmp.replace(path)
    return path


def human_size(n_bytes: int) -> str:
    for unit in ("B", "KiB", "MiB"):
        if n_bytes < 1024 or unit == "MiB":
            return f"{n_bytes:.0f} {unit}" if unit == "B" else f"{n_bytes:.1f} {unit}"
        n_bytes /= 1024
    return f"{n_bytes:.1f} MiB"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1 or argv[0].startswith("-"):
        print("usage: python -m comgan_lib.report outputs/<run>", file=sys.stderr)
        return 2
    try:
        path = write_report(argv[0])
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"report: {path} ({human_size(path.stat().st_size)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
