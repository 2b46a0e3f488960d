"""Our runs' numbers beside the paper's Tables 1-4 (Sec. 4.3: Tables 1-3; Sec. 4.4: Table 4):
read each run's ``metrics.json``, assemble one row per table cell, write and render the tables.

No equations: the tables score the method (FID / IS of the stage-1 generator, Sec. 3.1-3.2; IoU /
Dice of the stage-2 segmenter, Sec. 3.3). The paper's own numbers (the transcription, its data
model and the paper's dataset names) are ``comgan_lib.paper_numbers``.

Usage::

    from comgan_lib import paper_tables as pt
    from comgan_lib.paper_numbers import load_paper_numbers

    paper = load_paper_numbers()
    paper.get("table4", "DS-ComGAN", "cub", "iou").value       # 60.7, as printed
    runs = pt.load_runs(["outputs/synthetic", "outputs/cub"])   # run folders (metrics.json)
    rows = pt.table4(runs)                                      # one dict per table cell
    pt.write_tables(RunDir("outputs/synthetic"), runs)          # tables/table{1..4}.{csv,md}

The assembly functions also take plain ``metrics.json`` dicts keyed by run name:
``pt.table2({"synthetic": json.load(open("outputs/synthetic/metrics.json"))})``.

Every row is one cell of a paper table: the method, the dataset, the metric, the paper's number,
ours, ours − paper, and for our number its protocol, split, sample count and run. A number we did
not compute is ``NotRun(reason)`` ("not run: no Inception weights", "not run: notebook
04_segmentation failed", ...), never blank and never made up. IoU and Dice are in percent, as in
the paper. A difference is given only where the dataset and the protocol family match the paper's
(an FID on domain features is not comparable with an Inception FID).

The ``metrics.json`` sections read here (a missing section or value is "not run"):

``data`` (notebook 00)
    ``dataset`` (``data.kind``), ``has_masks``,
    ``training_free_predictors.<name>.{max_flip,foreground}.{iou,dice}`` and ``.n_images``
    (scored on the held-out split).
``disentanglement`` (notebook 03)
    ``table2.<row>`` for the row names ``TABLE2_ROWS`` (import them from here), each
    ``{"fid": x, "is": y, "is_std": s, "features": "inception" | "domain", "n_samples": n,
    "real_split": "train", "reason": "..."}`` (``is_std``, ``real_split`` and ``reason``
    optional; ``reason`` says why a value is null, e.g. "no Inception weights"), or a list of
    such dicts, one per feature set. An optional section-level ``reason`` covers every row.
    Tables 1 and 3 take DS-ComGAN's numbers from the ``ROW_DS_COMGAN`` row.
``segmentation`` (notebook 04)
    ``<split>: {"max_flip": {"iou", "dice"}, "foreground": {"iou", "dice"}, "n_images": n}``
    for each split scored ("train", "test", "all", ...), ``generator`` (the generator whose
    samples trained the segmenter), optional ``reason``. IoU and Dice as fractions in [0, 1].
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from comgan_lib.paper_numbers import (
    PAPER_FID_SAMPLES,
    PaperTable,
    load_paper_numbers,
    paper_dataset,
)
from comgan_lib.rundir import NotRun, RunDir

# ----------------------------------------------------------------------------------------------
# Names shared with the notebooks that write metrics.json

SECTION_DATA = "data"
SECTION_DISENTANGLEMENT = "disentanglement"
SECTION_SEGMENTATION = "segmentation"
SECTION_NOTEBOOK = {
    SECTION_DATA: "00_data",
    SECTION_DISENTANGLEMENT: "03_disentanglement",
    SECTION_SEGMENTATION: "04_segmentation",
}

# Rows of Table 2 (the ablation on CUB), as keys of metrics.json disentanglement.table2.
ROW_SIMPLEGAN = "SimpleGAN"
ROW_COMGAN = "+ independent subnetworks (ComGAN)"
ROW_INFO = "+ L_info"
ROW_DS_COMGAN = "+ global features (DS-ComGAN)"
TABLE2_ROWS = (ROW_SIMPLEGAN, ROW_COMGAN, ROW_INFO, ROW_DS_COMGAN)
ROW_IMPROVEMENT = "Improvement"

# disentanglement.table2.<row>.features, and how the tables label them.
FEATURES_INCEPTION = "inception"
FEATURES_DOMAIN = "domain"
FEATURE_LABELS = {FEATURES_INCEPTION: "Inception", FEATURES_DOMAIN: "domain features"}

# segmentation.<split>.<protocol>, and how the tables label them.
PROTOCOL_MAX_FLIP = "max_flip"
PROTOCOL_FOREGROUND = "foreground"
PROTOCOL_LABELS = {PROTOCOL_MAX_FLIP: "max-flip", PROTOCOL_FOREGROUND: "foreground-only"}
SPLIT_ORDER = ("train", "all", "val", "test")
HELD_OUT_SPLITS = ("val", "test")

METRIC_LABELS = {"fid": "FID ↓", "is": "IS ↑", "iou": "IoU % ↑", "dice": "Dice % ↑"}
DASH = "—"  # a cell that does not apply (no difference, no protocol for a number not run)

# Methods of the paper's tables this workbook implements, and where their numbers come from.
OURS_FIDELITY = {"DS-ComGAN": ROW_DS_COMGAN}  # Tables 1 and 3
OURS_SEGMENTATION = ("DS-ComGAN",)  # Table 4


# ----------------------------------------------------------------------------------------------
# Our runs

_GENERIC_KINDS = ("folder", "class_folders", "", None)


@dataclass
class Run:
    """One run's numbers: its ``metrics.json`` and, when its folder had one, what its
    ``manifest.json`` says about each notebook (``{"04_segmentation": "failed", ...}``)."""

    name: str
    metrics: Mapping[str, Any]
    notebooks: Mapping[str, str] = field(default_factory=dict)
    root: Path | None = None

    @property
    def dataset(self) -> str:
        """The dataset key: ``data.dataset`` (``data.kind``) when it names a paper dataset or
        the embedded one; for a generic folder kind the run's name when that names a paper
        dataset (``fs100`` is a ``class_folders`` run); else the kind, else the run's name."""
        data = self.metrics.get(SECTION_DATA)
        kind = data.get("dataset") if isinstance(data, Mapping) else None
        if kind not in _GENERIC_KINDS:
            return paper_dataset(kind) or str(kind)
        return paper_dataset(self.name) or (str(kind) if kind else self.name)

    def missing_reason(self, section: str) -> str:
        """Why ``section`` is absent from this run's metrics.json, as precisely as known."""
        notebook = SECTION_NOTEBOOK.get(section, section)
        status = self.notebooks.get(notebook)
        if status == "failed":
            return f"notebook {notebook} failed in run {self.name}"
        if status == "ok":
            return f"notebook {notebook} ran but wrote no '{section}' section"
        if status and status != "running":
            return f"notebook {notebook} {status} (run {self.name})"
        return f"notebook {notebook} not run (no '{section}' section in run {self.name})"


def load_run(folder: str | Path) -> Run:
    """A run folder's metrics.json (empty when absent) and its manifest's notebook statuses."""
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"run folder not found: {root}")
    metrics_path = root / "metrics.json"
    metrics = json.loads(metrics_path.read_text()) if metrics_path.exists() else {}
    notebooks = {}
    manifest_path = root / "manifest.json"
    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
        selected = (manifest.get("params") or {}).get("run", {}).get("notebooks") or []
        attempted = {e["name"]: e.get("status", "") for e in manifest.get("notebooks", [])}
        stopped = manifest.get("status") in ("failed", "interrupted")
        for name in selected:
            if name not in attempted:
                notebooks[name] = (
                    "not reached (an earlier notebook stopped the run)"
                    if stopped
                    else "not selected in the last runner call"
                )
        notebooks.update(attempted)
    return Run(name=root.name, metrics=metrics, notebooks=notebooks, root=root)


def load_runs(folders: Iterable[str | Path]) -> dict[str, Run]:
    """Several run folders keyed by run name (a repeated name gets its parent folder's too).
    Relative folders that do not exist from here are looked up in the project root."""
    from comgan_lib.runtime import PROJECT_ROOT

    runs: dict[str, Run] = {}
    for folder in folders:
        path = Path(folder).expanduser()
        if not path.is_absolute() and not path.exists():
            path = PROJECT_ROOT / path
        run = load_run(path)
        if run.root and run.root.resolve() in {r.root.resolve() for r in runs.values() if r.root}:
            continue
        if run.name in runs:
            run.name = f"{path.resolve().parent.name}/{run.name}"
        runs[run.name] = run
    return runs


def as_runs(runs: Mapping[str, Run | Mapping] | Iterable[Run]) -> dict[str, Run]:
    """Accept ``{name: Run}``, ``{name: metrics dict}`` or a list of Runs."""
    if isinstance(runs, Mapping):
        return {
            name: r if isinstance(r, Run) else Run(name=name, metrics=r) for name, r in runs.items()
        }
    return {r.name: r for r in runs}


# ----------------------------------------------------------------------------------------------
# Our numbers, one per cell


@dataclass
class Ours:
    """One of our numbers (or ``NotRun``) with what a reader needs to weigh it."""

    value: float | NotRun
    run: str = DASH
    protocol: str = DASH
    split: str = DASH
    n: int | str = DASH
    std: float | str = DASH
    comparable: bool = True  # same protocol family as the paper's number
    note: str = ""

    @property
    def computed(self) -> bool:
        return not isinstance(self.value, NotRun)


def _number(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _fidelity_entries(run: Run, row_key: str) -> list[Mapping] | NotRun:
    section = run.metrics.get(SECTION_DISENTANGLEMENT)
    if not isinstance(section, Mapping):
        return NotRun(run.missing_reason(SECTION_DISENTANGLEMENT))
    table = section.get("table2")
    entry = table.get(row_key) if isinstance(table, Mapping) else None
    if entry is None:
        return NotRun(
            section.get("reason")
            or f"row '{row_key}' not in disentanglement.table2 of run {run.name} "
            "(notebook 03_disentanglement did not compute it)"
        )
    entries = [e for e in (entry if isinstance(entry, list) else [entry]) if isinstance(e, Mapping)]
    if not entries:
        return NotRun(f"disentanglement.table2['{row_key}'] of run {run.name} is empty")
    return [{"_section_reason": section.get("reason"), **e} for e in entries]


def fidelity_values(run: Run, row_key: str, metric: str) -> list[Ours]:
    """Our FID or IS for one Table 2 row of one run: one ``Ours`` per feature set recorded."""
    entries = _fidelity_entries(run, row_key)
    if isinstance(entries, NotRun):
        return [Ours(entries, run=run.name)]
    out = []
    for e in entries:
        features = e.get("features")
        protocol = FEATURE_LABELS.get(features, features or "features not recorded")
        n = e.get("n_samples")
        value = _number(e.get(metric))
        if value is None:
            reason = (
                e.get("reason")
                or e.get("_section_reason")
                or f"{metric} is null in disentanglement.table2['{row_key}'] (no reason recorded)"
            )
            out.append(Ours(NotRun(reason), run=run.name, protocol=protocol))
            continue
        note = []
        if isinstance(n, int) and n < PAPER_FID_SAMPLES:
            note.append(f"{n:,} samples (paper: {PAPER_FID_SAMPLES:,})")
        std = _number(e.get("is_std")) if metric == "is" else None
        out.append(
            Ours(
                value,
                run=run.name,
                protocol=protocol,
                split=f"real: {e.get('real_split') or 'train'}" if metric == "fid" else DASH,
                n=n if n is not None else "not recorded",
                std=std if std is not None else DASH,
                comparable=features == FEATURES_INCEPTION,
                note="; ".join(note),
            )
        )
    return out


def improvement_values(run: Run, metric: str) -> list[Ours]:
    """Table 2's last line for one run: baseline − DS-ComGAN (FID), DS-ComGAN − baseline (IS),
    from entries of the same feature set."""
    base = {o.protocol: o for o in fidelity_values(run, ROW_SIMPLEGAN, metric) if o.computed}
    final = {o.protocol: o for o in fidelity_values(run, ROW_DS_COMGAN, metric) if o.computed}
    out = []
    for protocol in [p for p in base if p in final]:
        b, f = base[protocol], final[protocol]
        value = b.value - f.value if metric == "fid" else f.value - b.value
        out.append(
            Ours(
                value,
                run=run.name,
                protocol=protocol,
                split=b.split,
                n=b.n if b.n == f.n else f"{b.n} / {f.n}",
                comparable=b.comparable,
            )
        )
    if not out:
        out.append(
            Ours(
                NotRun(
                    f"needs the '{ROW_SIMPLEGAN}' and '{ROW_DS_COMGAN}' rows on one feature set "
                    f"(run {run.name})"
                ),
                run=run.name,
            )
        )
    return out


# Rows of this workbook's additions to stage 2 (neither is the paper's): key -> (method, note).
SEGMENTER_VARIANTS = {
    "colour_em": (
        "S + colour EM (this workbook)",
        "S's masks after the per-image colour EM (post-hoc, not the paper's)",
    ),
    "self_trained": (
        "S after self-training (this workbook)",
        "S fine-tuned on real images with its own colour-EM masks (stage 2b, not the paper's)",
    ),
}


def segmentation_values(run: Run, metric: str, variant: str | None = None) -> list[Ours]:
    """Our IoU or Dice (percent) of one run: one ``Ours`` per split and protocol scored; with a
    ``variant`` of ``SEGMENTER_VARIANTS``, S's masks after the colour EM (``colour_em``) or the
    self-trained S (``self_trained``, the section's ``self_trained`` scores)."""
    data = run.metrics.get(SECTION_DATA)
    if isinstance(data, Mapping) and data.get("has_masks") is False:
        return [Ours(NotRun("this dataset has no ground-truth masks"), run=run.name)]
    section = run.metrics.get(SECTION_SEGMENTATION)
    if not isinstance(section, Mapping):
        return [Ours(NotRun(run.missing_reason(SECTION_SEGMENTATION)), run=run.name)]
    generator = section.get("generator")
    if variant == "self_trained":
        section = section.get("self_trained") or {
            "reason": f"stage 2b not run in {run.name} (segment.self_train_steps is 0)"
        }
    splits = [
        k
        for k, v in section.items()
        if isinstance(v, Mapping) and any(isinstance(v.get(p), Mapping) for p in PROTOCOL_LABELS)
    ]
    if not splits:
        reason = (
            section.get("reason") or f"no split scores in the segmentation section of {run.name}"
        )
        return [Ours(NotRun(reason), run=run.name)]
    splits.sort(key=lambda s: (SPLIT_ORDER.index(s) if s in SPLIT_ORDER else len(SPLIT_ORDER), s))
    out = []
    for split in splits:
        scores = section[split]
        if variant == "colour_em":
            scores = scores.get("colour_em") or {
                "reason": f"no colour-EM scores for split {split} of run {run.name} (older run)"
            }
        for protocol, label in PROTOCOL_LABELS.items():
            value = _number((scores.get(protocol) or {}).get(metric))
            notes = []
            if generator:
                notes.append(f"S trained on samples of {generator}")
            if variant:
                notes.append(SEGMENTER_VARIANTS[variant][1])
            if split in HELD_OUT_SPLITS:
                notes.append("held-out split; the paper scored training data")
            n = scores.get("n_images")
            if value is None:
                reason = scores.get("reason") or section.get("reason")
                reason = reason or f"{label} {metric} missing for split {split} of run {run.name}"
                out.append(Ours(NotRun(reason), run=run.name, protocol=label, split=split))
                continue
            out.append(
                Ours(
                    100 * value,
                    run=run.name,
                    protocol=label,
                    split=split,
                    n=n if n is not None else "not recorded",
                    note="; ".join(notes),
                )
            )
    return out


def training_free_values(run: Run) -> dict[tuple[str, str], list[Ours]]:
    """The reference predictors of notebook 00 (percent; scored on the held-out split), by
    (predictor, metric)."""
    data = run.metrics.get(SECTION_DATA)
    predictors = data.get("training_free_predictors") if isinstance(data, Mapping) else None
    if not isinstance(predictors, Mapping):
        return {}
    out = {}
    for name, scores in predictors.items():
        if not isinstance(scores, Mapping):
            continue
        for metric in ("iou", "dice"):
            cells = []
            for protocol, label in PROTOCOL_LABELS.items():
                value = _number((scores.get(protocol) or {}).get(metric))
                cells.append(
                    Ours(
                        100 * value if value is not None else NotRun(f"{label} {metric} missing"),
                        run=run.name,
                        protocol=label,
                        split="test",
                        n=scores.get("n_images", "not recorded"),
                    )
                )
            out[(name, metric)] = cells
    return out


# ----------------------------------------------------------------------------------------------
# Table assembly


def _difference(paper_value: float | None, ours: Ours, same_dataset: bool) -> float | str:
    if not ours.computed or paper_value is None or not same_dataset:
        return DASH
    if not ours.comparable:
        return f"not comparable: {ours.protocol} (the paper used Inception)"
    return ours.value - paper_value


def _row(
    table: PaperTable,
    method: str,
    dataset: str,
    metric: str,
    paper_cell: float | str,
    paper_std: float | None,
    ours: Ours,
    difference: float | str,
) -> dict:
    row: dict[str, Any] = {
        "method": method,
        "dataset": load_paper_numbers().dataset_label(dataset),
        "metric": METRIC_LABELS.get(metric, metric),
        "paper": paper_cell,
    }
    with_std = "is" in table.metrics
    if with_std:
        row["paper ±"] = paper_std if paper_std is not None else DASH
    row["ours"] = ours.value
    if with_std:
        row["ours ±"] = ours.std
    row.update(
        {
            "ours − paper": difference,
            "protocol": ours.protocol,
            "split": ours.split,
            "n": ours.n,
            "run": ours.run,
            "note": ours.note,
        }
    )
    return row


def _not_implemented(method: str) -> Ours:
    return Ours(NotRun(f"{method} is not implemented in this workbook (the paper's number only)"))


def _by_dataset(runs: Mapping[str, Run]) -> dict[str, list[Run]]:
    grouped: dict[str, list[Run]] = {}
    for run in runs.values():
        grouped.setdefault(run.dataset, []).append(run)
    return grouped


def _no_run_of(label: str, runs: Mapping[str, Run]) -> Ours:
    names = ", ".join(runs) or "none"
    return Ours(NotRun(f"dataset not in this run: no run of {label} among the runs ({names})"))


def _extra_datasets(runs: Mapping[str, Run]) -> list[str]:
    """Datasets of the runs that are in none of the paper's tables (the embedded one, a user's
    folder): their numbers are shown without a paper number to compare."""
    paper = load_paper_numbers().datasets
    return sorted({r.dataset for r in runs.values()} - set(paper))


def _fidelity_table(name: str, runs: Mapping[str, Run], extras: bool) -> list[dict]:
    table = load_paper_numbers().tables[name]
    grouped = _by_dataset(runs)
    extra = _extra_datasets(runs) if extras else []
    rows = []
    for prow in table.rows:
        row_key = OURS_FIDELITY.get(prow.method)
        for dataset in (*table.datasets, *(extra if row_key else ())):
            in_paper = dataset in table.datasets
            for metric in table.metrics:
                entry = prow.values.get((dataset, metric))
                paper_cell = entry.text() if entry else f"not in the paper (Table {table.number})"
                paper_std = entry.std if entry else None
                paper_value = entry.value if entry else None
                if row_key is None:
                    ours_list = [_not_implemented(prow.method)]
                elif dataset not in grouped:
                    ours_list = [_no_run_of(load_paper_numbers().dataset_label(dataset), runs)]
                else:
                    ours_list = [
                        o for run in grouped[dataset] for o in fidelity_values(run, row_key, metric)
                    ]
                for ours in ours_list:
                    diff = _difference(paper_value, ours, in_paper)
                    rows.append(
                        _row(table, prow.method, dataset, metric, paper_cell, paper_std, ours, diff)
                    )
    return rows


def table1(runs) -> list[dict]:
    """Table 1 (FID, IS on CUB, FS-100, Stanford-Cars) with our DS-ComGAN numbers beside the
    paper's, plus our numbers on datasets none of the paper's tables has (the embedded one)."""
    return _fidelity_table("table1", as_runs(runs), extras=True)


def table3(runs) -> list[dict]:
    """Table 3 (FID, IS on Stanford-Dogs, Flowers, CLEVR6) with our DS-ComGAN numbers."""
    return _fidelity_table("table3", as_runs(runs), extras=False)


def table2(runs) -> list[dict]:
    """Table 2 (the ablation: SimpleGAN, + subnetworks, + L_info, + global features, and the
    improvement) on CUB, and the same rows from every run on another dataset."""
    runs = as_runs(runs)
    table = load_paper_numbers().tables["table2"]
    (paper_dataset_key,) = table.datasets
    grouped = _by_dataset(runs)
    datasets = [paper_dataset_key, *sorted(d for d in grouped if d != paper_dataset_key)]
    rows = []
    for prow in table.rows:
        for dataset in datasets:
            in_paper = dataset == paper_dataset_key
            for metric in table.metrics:
                entry = prow.values[(paper_dataset_key, metric)]
                if in_paper:
                    paper_cell, paper_std = entry.text(), entry.std
                else:
                    paper_cell, paper_std = "not in the paper (Table 2 is on CUB only)", None
                if dataset not in grouped:
                    ours_list = [_no_run_of(load_paper_numbers().dataset_label(dataset), runs)]
                elif prow.key == ROW_IMPROVEMENT:
                    ours_list = [o for r in grouped[dataset] for o in improvement_values(r, metric)]
                else:
                    ours_list = [
                        o for r in grouped[dataset] for o in fidelity_values(r, prow.key, metric)
                    ]
                for ours in ours_list:
                    diff = _difference(entry.value, ours, in_paper)
                    rows.append(
                        _row(table, prow.key, dataset, metric, paper_cell, paper_std, ours, diff)
                    )
    return rows


def table4(runs) -> list[dict]:
    """Table 4 (IoU, Dice in percent on training data) with our DS-ComGAN segmenter's scores
    under both protocols and on each split scored, then this workbook's additions (S + the
    per-image colour EM, S after self-training) and the training-free reference predictors of
    notebook 00 (none of them in the paper) for scale."""
    runs = as_runs(runs)
    table = load_paper_numbers().tables["table4"]
    grouped = _by_dataset(runs)
    extra = _extra_datasets(runs)
    rows = []
    for prow in table.rows:
        ours_row = prow.method in OURS_SEGMENTATION
        for dataset in (*table.datasets, *(extra if ours_row else ())):
            in_paper = dataset in table.datasets
            for metric in table.metrics:
                entry = prow.values.get((dataset, metric))
                paper_cell = entry.text() if entry else "not in the paper (Table 4)"
                if not ours_row:
                    ours_list = [_not_implemented(prow.method)]
                elif dataset not in grouped:
                    ours_list = [_no_run_of(load_paper_numbers().dataset_label(dataset), runs)]
                else:
                    ours_list = [
                        o for r in grouped[dataset] for o in segmentation_values(r, metric)
                    ]
                for ours in ours_list:
                    diff = _difference(entry.value if entry else None, ours, in_paper)
                    rows.append(
                        _row(table, prow.method, dataset, metric, paper_cell, None, ours, diff)
                    )
    for run in runs.values():
        for variant, (method, _) in SEGMENTER_VARIANTS.items():
            for metric in table.metrics:
                for ours in segmentation_values(run, metric, variant):
                    paper = "not in the paper (an addition of this workbook)"
                    rows.append(_row(table, method, run.dataset, metric, paper, None, ours, DASH))
        for (predictor, metric), ours_list in training_free_values(run).items():
            for ours in ours_list:
                rows.append(
                    _row(
                        table,
                        f"training-free: {predictor}",
                        run.dataset,
                        metric,
                        "not in the paper (a reference predictor of this workbook)",
                        None,
                        ours,
                        DASH,
                    )
                )
    return rows


TABLE_FUNCTIONS = {"table1": table1, "table2": table2, "table3": table3, "table4": table4}


def all_tables(runs) -> dict[str, list[dict]]:
    runs = as_runs(runs)
    return {name: fn(runs) for name, fn in TABLE_FUNCTIONS.items()}


# Decimals shown in Markdown, as the paper prints them (the CSV keeps full precision).
TABLE_DIGITS = {"table1": 2, "table2": 2, "table3": 2, "table4": 1}


def write_tables(run_dir: RunDir | str | Path, runs) -> dict[str, list[dict]]:
    """Assemble Tables 1-4 and write ``tables/table{1..4}.{csv,md}`` of ``run_dir``; returns
    the rows by table name."""
    run_dir = run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)
    tables = all_tables(runs)
    for name, rows in tables.items():
        run_dir.save_table(name, rows, digits=TABLE_DIGITS[name])
    return tables


def paper_layout(name: str) -> list[dict]:
    """A paper table as printed: one row per method, one column per (dataset, metric); IS as
    "mean±std"; an empty cell shows the paper's mark."""
    table = load_paper_numbers().tables[name]
    rows = []
    for r in table.rows:
        row: dict[str, Any] = {"method": r.method + "".join(r.marks)}
        if any(x.supervision for x in table.rows):
            row["Sup."] = r.supervision or DASH
        for c in table.columns:
            for metric in table.metrics:
                e = r.values[(c.key, metric)]
                if e.value is None:
                    cell: Any = (table.missing or "").split(" ")[0] or DASH
                elif e.std is not None:
                    cell = f"{e.value:.2f}±{e.std:.2f}"
                else:
                    cell = f"{e.value:.{TABLE_DIGITS[name]}f}"
                row[f"{c.label} {METRIC_LABELS[metric]}"] = cell
        rows.append(row)
    return rows


def computed_rows(rows: Iterable[dict]) -> list[dict]:
    """Only the rows holding one of our numbers."""
    return [r for r in rows if not isinstance(r["ours"], NotRun)]


def summary(rows: Iterable[dict]) -> dict[str, Any]:
    """How many cells hold our number, and the reasons for the rest (reason: count)."""
    rows = list(rows)
    reasons: dict[str, int] = {}
    for r in rows:
        if isinstance(r["ours"], NotRun):
            reasons[r["ours"].reason] = reasons.get(r["ours"].reason, 0) + 1
    return {"cells": len(rows), "ours": len(rows) - sum(reasons.values()), "not_run": reasons}


def table_html(name: str, rows: list[dict]) -> str:
    """One table for a notebook or a page: the paper's caption and protocol, the table as
    printed, the cells holding our numbers, and why the other cells hold none."""
    from html import escape

    from comgan_lib.rundir import html_table

    t = load_paper_numbers().tables[name]
    digits = TABLE_DIGITS[name]
    parts = [
        f"<h3>Table {t.number}: {escape(t.title)}</h3>",
        f"<p><i>Caption</i>: {escape(t.caption)}<br><i>Protocol</i>: {escape(t.protocol)}</p>",
        html_table(paper_layout(name), caption="As printed in the paper"),
    ]
    ours = computed_rows(rows)
    if ours:
        parts.append(html_table(ours, digits, caption="Cells with our numbers (ours − paper)"))
    else:
        parts.append("<p><b>No cell of this table holds one of our numbers yet.</b></p>")
    reasons = summary(rows)["not_run"]
    if reasons:
        why = [{"not run because": k, "cells": v} for k, v in reasons.items()]
        parts.append(html_table(why, caption=f"The other cells ({sum(reasons.values())})"))
    return "\n".join(parts)
