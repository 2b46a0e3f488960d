"""The run folder ``outputs/<run>/`` and the few ways notebooks write into it.

Layout::

    outputs/<run>/
      params.yaml      the resolved parameters the run used (overrides applied)
      manifest.json    parameters, git commit, package versions, device, wall time per notebook
      metrics.json     every number the notebooks computed, one section per notebook
      notebooks/       executed notebooks (.ipynb) and their HTML copies
      figures/         figures as PNG (shown in notebooks and the report) and PDF (for print)
      tables/          tables as CSV and Markdown
      checkpoints/     model checkpoints
      logs/            training logs (jsonl)
      report.html      one self-contained page: figures, tables, diagnostics, manifest
                       (``comgan_lib.report``)
"""

from __future__ import annotations

import csv
import json
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from comgan_lib.config import Params
from comgan_lib.runtime import PROJECT_ROOT

SUBFOLDERS = ("notebooks", "figures", "tables", "checkpoints", "logs")
NOT_RUN = "not run"


@dataclass(frozen=True)
class NotRun:
    """A table cell that was not computed, and why: rendered as ``not run: <reason>``.

    Tables use it instead of a bare None wherever the reason is known, so a reader never meets a
    blank cell or has to guess what is missing."""

    reason: str = ""

    def __str__(self) -> str:
        return f"{NOT_RUN}: {self.reason}" if self.reason else NOT_RUN


def run_dir_for(params: Params) -> Path:
    """``output.root/run.name``; the default root is the project's own ``outputs/`` folder."""
    root = Path(params.output.root)
    if not root.is_absolute():
        base = PROJECT_ROOT if (PROJECT_ROOT / "pyproject.toml").exists() else Path.cwd()
        root = base / root
    return root / params.run.name


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON through a temporary file and a rename, so a reader never sees half a file."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=2, sort_keys=False, allow_nan=False, default=_json_default)
        f.write("\n")
    os.replace(tmp, path)


def save_torch_atomic(obj: Any, path: Path) -> None:
    """``torch.save`` through a temporary file and a rename: a killed process never leaves half
    a checkpoint."""
    import torch

    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _json_default(obj):
    if hasattr(obj, "item"):  # numpy / torch scalars
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


class RunDir:
    """A run folder. Creating one makes its subfolders."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        for name in SUBFOLDERS:
            (self.root / name).mkdir(parents=True, exist_ok=True)

    @classmethod
    def for_params(cls, params: Params, run_dir: str | Path | None = None) -> RunDir:
        return cls(run_dir or run_dir_for(params))

    def path(self, sub: str, name: str = "") -> Path:
        return self.root / sub / name if name else self.root / sub

    @property
    def metrics_path(self) -> Path:
        return self.root / "metrics.json"

    def read_metrics(self) -> dict:
        if not self.metrics_path.exists():
            return {}
        return json.loads(self.metrics_path.read_text())

    def update_metrics(self, section: str, values: dict) -> dict:
        """Replace one section of metrics.json (other notebooks' sections are kept)."""
        metrics = self.read_metrics()
        metrics[section] = _finite_or_none(values)
        write_json_atomic(self.metrics_path, metrics)
        return metrics

    def save_figure(
        self,
        fig,
        name: str,
        dpi: int = 120,
        *,
        model: str | None = None,
        pdf: bool = True,
        stamp: bool = True,
    ) -> Path:
        """Write ``figures/<name>.png`` (returned; notebooks and the report show it) and, unless
        ``pdf=False``, ``figures/<name>.pdf`` for print. ``stamp`` labels the figure with the run
        and ``model`` (``comgan_lib.viz.stamp``), so a figure lifted out of the run folder still
        says where it came from."""
        if stamp:
            from comgan_lib.viz import stamp as stamp_figure

            stamp_figure(fig, run=self.root.name, model=model)
        path = self.path("figures", f"{name}.png")
        fig.savefig(path, dpi=dpi, bbox_inches="tight")
        if pdf:
            fig.savefig(
                path.with_suffix(".pdf"),
                bbox_inches="tight",
                metadata={"Title": f"{name} ({self.root.name})", "Creator": "comgan_lib"},
            )
        return path

    def save_table(self, name: str, rows: list[dict], digits: int = 3) -> Path:
        """Write ``rows`` (dicts with the same keys) as CSV and as a Markdown table.

        A missing number (None, NaN) is written "not run"; a ``NotRun(reason)`` cell is written
        "not run: <reason>", in both files. The CSV keeps full precision; Markdown rounds to
        ``digits``."""
        columns = list(rows[0]) if rows else []
        with open(self.path("tables", f"{name}.csv"), "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns)
            writer.writeheader()
            writer.writerows({c: csv_cell(row.get(c)) for c in columns} for row in rows)
        md = self.path("tables", f"{name}.md")
        md.write_text(markdown_table(rows, digits))
        return md


def _finite_or_none(obj):
    """JSON has no NaN: a missing number is written as null."""
    if isinstance(obj, dict):
        return {k: _finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite_or_none(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _is_missing(value) -> bool:
    return value is None or (isinstance(value, float) and not math.isfinite(value))


def csv_cell(value):
    """A CSV cell: numbers at full precision, a missing value "not run" (with its reason)."""
    if isinstance(value, NotRun):
        return str(value)
    if _is_missing(value):
        return NOT_RUN
    return value


def format_cell(value, digits: int = 3) -> str:
    """A table cell: numbers rounded, a missing value shown as "not run" (with its reason)."""
    if isinstance(value, NotRun):
        return str(value)
    if _is_missing(value):
        return NOT_RUN
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def markdown_table(rows: list[dict], digits: int = 3) -> str:
    if not rows:
        return "(empty table)\n"
    columns = list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = (format_cell(row.get(c), digits).replace("|", "\\|") for c in columns)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def html_table(rows: list[dict], digits: int = 3, caption: str | None = None) -> str:
    """The same table as HTML (escaped; "not run" cells get the class ``not-run``)."""
    from html import escape

    if not rows:
        return "<p><em>(empty table)</em></p>"
    columns = list(rows[0])
    out = ["<table>"]
    if caption:
        out.append(f"<caption>{escape(caption)}</caption>")
    out.append("<thead><tr>" + "".join(f"<th>{escape(str(c))}</th>" for c in columns) + "</tr>")
    out.append("</thead><tbody>")
    for row in rows:
        cells = []
        for c in columns:
            value = row.get(c)
            text = format_cell(value, digits)
            missing = isinstance(value, NotRun) or _is_missing(value)
            cls = ' class="not-run"' if missing else ""
            cells.append(f"<td{cls}>{escape(text)}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)
