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
"""

from __future__ import annotations

import base64
import csv
import json
import re
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Any

import yaml

from comgan_lib.rundir import NOT_RUN

REPORT_NAME = "report.html"

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

_NOTEBOOK_PREFIX = re.compile(r"^(?P<nb>\d+)_")
_FIG_NUMBER = re.compile(r"(?:^|_)fig(?P<fig>\d+)(?=_|$)", re.IGNORECASE)

_CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif;
       margin: 0 auto; max-width: 1100px; padding: 1em 1.5em 4em; color: #222; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ccc;
     padding-bottom: 0.2em; margin-top: 2em; } h3 { margin-top: 1.5em; }
.meta { color: #555; } .banner { padding: 0.6em 1em; border-radius: 4px; margin: 1em 0; }
.ok { background: #e8f5e9; border: 1px solid #a5d6a7; }
.failed { background: #ffebee; border: 1px solid #ef9a9a; }
.partial { background: #fff8e1; border: 1px solid #ffe082; }
table { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 12.5px; }
th, td { border: 1px solid #ddd; padding: 3px 7px; text-align: left; vertical-align: top; }
th { background: #f3f3f3; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.not-run { color: #8a6d3b; background: #fffbea; }
caption { caption-side: top; text-align: left; font-weight: 600; padding: 0.3em 0; }
figure { margin: 1.5em 0; } figure img { max-width: 100%; height: auto;
         border: 1px solid #eee; } figcaption { color: #444; font-size: 0.95em; }
pre { background: #f7f7f7; padding: 0.8em; overflow-x: auto; font-size: 12px; }
details > summary { cursor: pointer; color: #1a5fb4; margin: 0.3em 0; }
nav a { margin-right: 1em; } code { background: #f3f3f3; padding: 0 3px; }
"""


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


# ----------------------------------------------------------------------------------------------
# HTML pieces


def _cell(value: Any) -> tuple[str, str]:
    """(text, css class) of one value."""
    if value is None:
        return NOT_RUN, "not-run"
    if isinstance(value, bool):
        return str(value).lower(), ""
    if isinstance(value, float):
        return f"{value:.4g}", "num"
    if isinstance(value, int):
        return str(value), "num"
    if isinstance(value, list | tuple):
        return json.dumps(value, ensure_ascii=False, default=str), ""
    text = str(value)
    if text.startswith(NOT_RUN):
        return text, "not-run"
    if re.fullmatch(r"-?\d+(\.\d+)?(e-?\d+)?", text):
        return text, "num"
    return text, ""


def _html_table(header: list[str], rows: list[list[Any]], caption: str | None = None) -> str:
    out = ["<table>"]
    if caption:
        out.append(f"<caption>{escape(caption)}</caption>")
    out.append("<tr>" + "".join(f"<th>{escape(str(h))}</th>" for h in header) + "</tr>")
    for row in rows:
        cells = []
        for value in row:
            text, cls = _cell(value)
            cls_attr = f' class="{cls}"' if cls else ""
            cells.append(f"<td{cls_attr}>{escape(text)}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


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
# Metrics as tables


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


def metrics_section_html(name: str, section: Any) -> str:
    """One metrics.json section as tables: scalars as key/value rows, dicts of dicts as
    matrices (e.g. one row per predictor or per model)."""
    if not isinstance(section, Mapping):
        return _html_table(["value"], [[section]])
    scalars: list[list[Any]] = []
    matrices: list[str] = []

    def walk(value: Mapping, prefix: str) -> None:
        for key, v in value.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            if _is_records(v):
                columns: list[str] = []
                flat = {}
                for row_key, row in v.items():
                    flat[row_key] = dict(_flatten(row))
                    columns += [c for c in flat[row_key] if c not in columns]
                rows = [[rk] + [fr.get(c, "—") for c in columns] for rk, fr in flat.items()]
                matrices.append(_html_table([path, *columns], rows))
            elif isinstance(v, Mapping) and v:
                walk(v, path)
            else:
                scalars.extend([k, val] for k, val in _flatten(v, path))

    walk(section, "")
    parts = []
    if scalars:
        parts.append(_html_table(["key", "value"], scalars))
    parts += matrices
    return "\n".join(parts) or "<p><em>(empty section)</em></p>"


# ----------------------------------------------------------------------------------------------
# What is missing


def missing_items(manifest: Mapping, metrics: Mapping, root: Path) -> list[str]:
    """Plain sentences: notebooks that did not finish, and what they would have written."""
    params = manifest.get("params") or {}
    selected = list((params.get("run") or {}).get("notebooks") or [])
    entries = {e.get("name"): e for e in manifest.get("notebooks", []) if isinstance(e, Mapping)}
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
# The page


def _header(root: Path, manifest: Mapping, manifest_problem: str | None) -> list[str]:
    params = manifest.get("params") or {}
    data = params.get("data") or {}
    model = params.get("model") or {}
    out = [f"<h1>ComGAN workbook — run <code>{escape(root.name)}</code></h1>"]
    facts = [
        f"dataset <b>{escape(str(data.get('kind', '?')))}</b> at {data.get('resolution', '?')} px",
        f"model <b>{escape(str(model.get('kind', '?')))}</b>",
        f"device {escape(str(manifest.get('device', 'not recorded')))}",
        f"report written {datetime.now(UTC).isoformat(timespec='seconds')}",
    ]
    out.append(f"<p class='meta'>{' · '.join(facts)}</p>")
    status = manifest.get("status") if not manifest_problem else "unknown"
    entries = [e for e in manifest.get("notebooks", []) if isinstance(e, Mapping)]
    failed = [e for e in entries if e.get("status") == "failed"]
    skipped = [e for e in entries if e.get("status") != "ok"]
    if status == "ok" and not skipped:
        out.append("<div class='banner ok'>Every notebook of the last runner call ran.</div>")
    elif status == "ok":
        names = ", ".join(f"{e.get('name')} ({e.get('status')})" for e in skipped)
        out.append(f"<div class='banner partial'>The run finished; not run: {escape(names)}.</div>")
    elif failed:
        lines = "".join(
            f"<li><b>{escape(e['name'])}</b> failed: {escape(e.get('error') or 'no message')}</li>"
            for e in failed
        )
        out.append(f"<div class='banner failed'>The run failed.<ul>{lines}</ul></div>")
    else:
        why = manifest_problem or f"run status: {status}"
        out.append(f"<div class='banner partial'>{escape(why)}</div>")
    return out


def _figures_html(root: Path) -> list[str]:
    figures = ordered_figures(root)
    if not figures:
        return ["<p><em>No figures in figures/ (no notebook that draws one ran).</em></p>"]
    out = []
    numbered = [f for f in figures if paper_figure_number(f) is not None]
    others = [f for f in figures if paper_figure_number(f) is None]
    for heading, group in (("The paper's figures", numbered), ("Other figures", others)):
        if not group:
            continue
        out.append(f"<h3>{heading}</h3>")
        for path in group:
            number = paper_figure_number(path)
            caption = f"<code>{escape(path.name)}</code>"
            if number is not None:
                what = PAPER_FIGURES.get(number, "")
                caption = f"<b>Fig. {number}</b> of the paper: {escape(what)} — " + caption
            pdf = path.with_suffix(".pdf")
            if pdf.exists():
                caption += f" (<a href='figures/{escape(pdf.name)}'>PDF</a>)"
            out.append(
                f"<figure id='fig-{escape(path.stem)}'><img alt='{escape(path.stem)}' "
                f"src='{_image_data_uri(path)}'><figcaption>{caption}</figcaption></figure>"
            )
    return out


def _tables_html(root: Path, manifest: Mapping) -> list[str]:
    tables = ordered_tables(root)
    out = []
    names = {p.stem for p in tables}
    wanted = NOTEBOOK_TABLES["05_tables"]
    if not set(wanted) <= names:
        status = next(
            (
                e.get("status")
                for e in manifest.get("notebooks", [])
                if e.get("name") == "05_tables"
            ),
            "not run",
        )
        out.append(
            f"<p class='not-run'><em>Tables 1-4 of the paper: not written (notebook 05_tables "
            f"{escape(str(status))}).</em></p>"
        )
    if not tables:
        return [*out, "<p><em>No tables in tables/.</em></p>"]
    paper, table_digits = None, {}
    try:
        from comgan_lib.paper_tables import TABLE_DIGITS, load_paper_numbers

        paper, table_digits = load_paper_numbers(), TABLE_DIGITS
    except Exception:  # the report must not fail over its captions
        pass
    for path in tables:
        out.append(f"<h3 id='table-{escape(path.stem)}'>{escape(path.stem)}</h3>")
        if paper is not None and path.stem in paper.tables:
            from comgan_lib.paper_tables import paper_layout

            t = paper.tables[path.stem]
            out.append(
                f"<p><b>Table {t.number} of the paper</b>: {escape(t.caption)}<br>"
                f"<span class='meta'>Protocol: {escape(t.protocol)}</span></p>"
            )
            printed = paper_layout(path.stem)
            out.append(
                "<details><summary>The table as printed in the paper</summary>"
                + _html_table(list(printed[0]), [list(r.values()) for r in printed])
                + "</details>"
            )
        if path.suffix == ".md":
            out.append(f"<pre>{escape(path.read_text(encoding='utf-8'))}</pre>")
            continue
        header, rows = _csv_rows(path)
        digits = table_digits.get(path.stem, 3)
        shown = [[_round_text(c, digits) for c in row] for row in rows]
        if "ours" in header and len(rows) > 12:
            i = header.index("ours")
            ours = [r for r in shown if not r[i].startswith(NOT_RUN)]
            out.append(
                f"<p>{len(ours)} of {len(rows)} cells hold one of our numbers; the others say "
                "why not.</p>"
            )
            if ours:
                out.append(_html_table(header, ours, caption="Cells with our numbers"))
            out.append(
                f"<details><summary>All {len(rows)} cells (paper numbers, our numbers, "
                "reasons)</summary>" + _html_table(header, shown) + "</details>"
            )
        else:
            out.append(_html_table(header, shown))
    return out


def _manifest_html(root: Path, manifest: Mapping, problem: str | None) -> list[str]:
    if problem:
        return [f"<p class='not-run'><em>{escape(problem)}: nothing to show.</em></p>"]
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
    out = [_html_table(["", "value"], facts, caption="Run")]
    rows = []
    for e in manifest.get("notebooks", []):
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
    if rows:
        out.append(
            _html_table(
                ["notebook", "status", "wall time (s)", "error", "executed copy"],
                rows,
                caption="Notebooks",
            )
        )
    packages = manifest.get("packages") or {}
    if packages:
        out.append(_html_table(["package", "version"], list(packages.items()), "Versions"))
    params = manifest.get("params")
    if params:
        text = yaml.safe_dump(params, sort_keys=False, allow_unicode=True)
        out.append(f"<h3>Parameters</h3><pre>{escape(text)}</pre>")
    return out


def render_report(run_dir: str | Path) -> str:
    """The report's HTML for one run folder."""
    root = Path(run_dir)
    manifest, manifest_problem = _read_json(root / "manifest.json")
    metrics, metrics_problem = _read_json(root / "metrics.json")
    body = _header(root, manifest, manifest_problem)
    missing = missing_items(manifest, metrics, root) if manifest else []
    body.append(
        "<nav><a href='#missing'>Missing</a><a href='#figures'>Figures</a>"
        "<a href='#tables'>Tables</a><a href='#diagnostics'>Diagnostics</a>"
        "<a href='#manifest'>Manifest</a></nav>"
    )
    body.append("<h2 id='missing'>What is missing</h2>")
    if missing:
        body.append("<ul>" + "".join(f"<li>{escape(m)}</li>" for m in missing) + "</ul>")
    elif manifest_problem:
        body.append(f"<p>Unknown: {escape(manifest_problem)}.</p>")
    else:
        body.append("<p>Nothing: every selected notebook finished.</p>")
    body.append("<h2 id='figures'>Figures</h2>")
    body += _figures_html(root)
    body.append("<h2 id='tables'>Tables</h2>")
    body += _tables_html(root, manifest)
    body.append("<h2 id='diagnostics'>Diagnostics (metrics.json)</h2>")
    if metrics_problem:
        body.append(f"<p class='not-run'><em>{escape(metrics_problem)}.</em></p>")
    for name, section in metrics.items():
        body.append(f"<h3>{escape(str(name))}</h3>")
        body.append(metrics_section_html(name, section))
    body.append("<h2 id='manifest'>Manifest</h2>")
    body += _manifest_html(root, manifest, manifest_problem)
    title = f"ComGAN workbook — {root.name}"
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )


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
