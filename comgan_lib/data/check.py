"""Check a dataset folder before a long run: every missing or malformed file, named.

Usage::

    python -m comgan_lib.data.check params/cub.yaml --set data.root=/data/CUB_200_2011
    python -m comgan_lib.data.check params/flowers.yaml --quick      # skip reading file headers

It reads the parameter file like the runner does, scans the dataset folder in its official layout
(docs/DATASETS.md), reads every image's and mask's header (unless ``--quick``): a file that does
not decode, a mask whose size differs from its image, a bounding box outside its image. It prints
where the official distribution comes from, the counts of images, boxes and masks, the splits,
and one line per problem. Exit status: 0 when the dataset is usable, 1 on any problem, 2 on bad
parameters. The runner (``comgan_lib.run``) runs the same check before any notebook.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path

from comgan_lib.config import Params, add_override_argument, load_params
from comgan_lib.data.catalog import CATALOG, missing_root_message
from comgan_lib.data.common import Layout, box_crop_region, rel
from comgan_lib.errors import ConfigError, DatasetError

DEFAULT_MAX_PROBLEMS = 100


@dataclass
class CheckReport:
    """What the check found; ``ok`` when there are no problems."""

    kind: str
    title: str
    root: str | None
    source: str
    counts: dict[str, int] = field(default_factory=dict)
    splits: dict[str, int] = field(default_factory=dict)
    usage: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        """One line: the verdict, the first problem and where to see them all."""
        if self.ok:
            counts = ", ".join(f"{v} {k}" for k, v in self.counts.items())
            return f"data check passed: {self.title} at {self.root} ({counts})"
        n = len(self.problems)
        return (
            f"data check found {n} problem(s) in {self.title} at {self.root or '(unset)'}; "
            f"first: {self.problems[0]}"
            + ("; run `python -m comgan_lib.data.check PARAMS` for the full list" if n > 1 else "")
        )

    def lines(self, max_problems: int = DEFAULT_MAX_PROBLEMS) -> list[str]:
        out = [f"dataset: {self.title} (data.kind {self.kind})", f"folder: {self.root or 'unset'}"]
        out.append(f"official distribution: {self.source}")
        for key, value in self.counts.items():
            out.append(f"  {key}: {value}")
        if self.splits:
            out.append("  splits: " + ", ".join(f"{k} {v}" for k, v in self.splits.items()))
        out += [f"  {u}" for u in self.usage]
        for w in self.warnings:
            out.append(f"warning: {w}")
        shown = self.problems if max_problems <= 0 else self.problems[:max_problems]
        for p in shown:
            out.append(f"problem: {p}")
        if len(shown) < len(self.problems):
            out.append(
                f"problem: ... and {len(self.problems) - len(shown)} more "
                "(--max-problems 0 lists them all)"
            )
        if self.ok:
            out.append("OK: the dataset is complete for this parameter file")
        else:
            out.append(f"FAILED: {len(self.problems)} problem(s); see docs/DATASETS.md")
        return out


def _read_header(path: Path):
    from comgan_lib.data.folder import _check_file

    return _check_file(path)


def _deep_check(layout: Layout, report: CheckReport, with_masks: bool, needs_boxes: bool) -> None:
    """Read every image's (and mask's) header; compare sizes; check boxes against the image."""
    root = layout.root
    for record in layout.records:
        if not record.image.is_file():
            continue  # already a problem of the scan
        size, reason = _read_header(record.image)
        if reason:
            report.problems.append(f"{rel(record.image, root)}: {reason}")
            continue
        if record.size is not None and record.size != size:
            report.warnings.append(
                f"{record.name}: the annotation states size {record.size[0]}x{record.size[1]}, "
                f"the image is {size[0]}x{size[1]}"
            )
        if needs_boxes and record.box is not None:
            left, top, right, bottom = box_crop_region(record.box, *size)
            x, y, w, h = record.box
            if right <= left or bottom <= top or x >= size[0] or y >= size[1]:
                report.problems.append(
                    f"{record.name}: bounding box {tuple(round(v, 1) for v in record.box)} lies "
                    f"outside the {size[0]}x{size[1]} image"
                )
        if with_masks and record.mask is not None and record.mask.is_file():
            mask_size, reason = _read_header(record.mask)
            if reason:
                report.problems.append(f"{rel(record.mask, root)}: {reason}")
            elif mask_size != size:
                report.problems.append(
                    f"{rel(record.mask, root)}: mask size {mask_size[0]}x{mask_size[1]} differs "
                    f"from image size {size[0]}x{size[1]} of {rel(record.image, root)}"
                )


def _absorb(report: CheckReport, layout: Layout, prefix: str = "") -> None:
    report.problems += layout.problems
    report.warnings += layout.warnings
    report.counts.update({f"{prefix}{k}": v for k, v in layout.counts.items()})


def _paper_layouts(params: Params, root: str, deep: bool) -> list[tuple[str, Layout, bool, bool]]:
    """(label, layout, check masks, check boxes) for each layout the run reads."""
    d = params.data
    if d.kind == "cub":
        from comgan_lib.data import cub

        return [("", cub.scan(root, d.split_scheme, d.use_masks), d.use_masks, True)]
    if d.kind == "flowers":
        from comgan_lib.data import flowers

        return [("", flowers.scan(root, d.split_scheme, d.use_masks), d.use_masks, False)]
    if d.kind in ("stanford_dogs", "stanford_cars"):
        from comgan_lib.data import drc

        if d.kind == "stanford_dogs":
            from comgan_lib.data.stanford_dogs import scan
        else:
            from comgan_lib.data.stanford_cars import scan
        layouts = [("", scan(root), False, True)]
        if d.use_masks and drc.present(root):
            layouts.append(("DRC ", drc.scan(root, "DRC processed release"), True, False))
        return layouts
    if d.kind == "class_folders":
        from comgan_lib.data import class_folders

        layout = class_folders.scan(
            root, d.holdout_fraction, d.seed, verify=deep, on_bad_file=d.on_bad_file
        )
        return [("", layout, False, False)]  # its scan already read every header
    raise ValueError(d.kind)


def _check_folder_kind(params: Params, report: CheckReport) -> None:
    """folder and clevr6: the image-folder loader reads every file's header when it is built."""
    from comgan_lib.data import build_dataset

    d = params.data
    try:
        every = build_dataset(params, "all")
        report.counts["images"] = len(every)
        report.counts["masks"] = len(every) if every.has_masks else 0
        report.splits["all"] = len(every)
        for split in {d.train_split, d.eval_split} - {"all"}:  # each build reads every header
            report.splits[split] = len(build_dataset(params, split))
    except DatasetError as e:
        report.problems.append(str(e))
        return
    for key in ("train_split", "eval_split"):
        split = getattr(d, key)
        masks = "with masks" if every.has_masks else "no masks"
        what = "training" if key == "train_split" else "evaluation"
        report.usage.append(f"{what} reads {split!r}: {report.splits[split]} images, {masks}")
    if d.kind == "clevr6":
        if d.use_masks and not every.has_masks:
            report.problems.append(
                f"{Path(d.root) / 'masks'}: folder missing; the CLEVR6 converter writes images/ "
                "and masks/ (python -m comgan_lib.data.clevr6)"
            )
        _check_clevr6_conversion(Path(d.root), len(every), report)


def _check_clevr6_conversion(root: Path, n_images: int, report: CheckReport) -> None:
    """The converter's conversion.json: finished, and as many scenes kept as images found."""
    import json

    path = root / "conversion.json"
    if not path.is_file():
        report.warnings.append(
            "no conversion.json: this folder was not written by python -m comgan_lib.data.clevr6"
        )
        return
    try:
        info = json.loads(path.read_text())
        complete, kept = info.get("complete"), info.get("counts", {}).get("kept")
    except (OSError, ValueError, AttributeError) as e:
        report.problems.append(f"conversion.json: unreadable ({e})")
        return
    if complete is not True:
        report.problems.append(
            "conversion.json: the conversion did not finish; rerun python -m "
            "comgan_lib.data.clevr6 with the same arguments to continue it"
        )
    elif isinstance(kept, int):
        report.counts["scenes kept (conversion.json)"] = kept
        if kept != n_images:
            report.problems.append(
                f"conversion.json: {kept} scenes kept but images/ holds {n_images} images"
            )


def check_dataset(params: Params, deep: bool = True) -> CheckReport:
    """Scan the dataset of ``params`` and return a report (never raises for data problems)."""
    d = params.data
    info = CATALOG.get(d.kind)
    report = CheckReport(
        d.kind,
        info.title if info else "embedded synthetic dataset",
        d.root,
        info.source if info else "generated in memory by comgan_lib/data/synthetic.py",
    )
    if d.kind == "synthetic":
        from comgan_lib.data import build_dataset

        for split in dict.fromkeys((d.train_split, d.eval_split)):
            report.splits[split] = len(build_dataset(params, split))
        return report
    if not d.root:
        report.problems.append(missing_root_message(d.kind, params.source))
        return report
    if not Path(d.root).is_dir():
        report.problems.append(
            f"'data.root' folder not found: {d.root}; it must be {info.root} (see docs/DATASETS.md)"
        )
        return report
    if d.kind in ("folder", "clevr6"):
        _check_folder_kind(params, report)
        return report

    layouts = _paper_layouts(params, d.root, deep)
    for prefix, layout, with_masks, with_boxes in layouts:
        _absorb(report, layout, prefix)
        report.splits.update({f"{prefix}{k}": len(v) for k, v in layout.splits.items()})
        if deep and d.kind != "class_folders":
            _deep_check(layout, report, with_masks, with_boxes)
    _usage(params, layouts, report)
    return report


def _usage(params: Params, layouts, report: CheckReport) -> None:
    """What this run reads: the training and evaluation splits, their sizes, masks or not."""
    from comgan_lib.data import EVAL_CROPS

    d = params.data
    main = layouts[0][1]
    drc_layout = next((lay for p, lay, _, _ in layouts if p == "DRC "), None)
    for key, purpose in (("train_split", "train"), ("eval_split", "eval")):
        split = getattr(d, key)
        layout = drc_layout if (purpose == "eval" and drc_layout is not None) else main
        size = len(layout.splits.get(split, []))
        if split not in layout.splits:
            report.problems.append(f"data.{key} {split!r}: {layout.title} has no such split")
            continue
        if size == 0 and not layout.problems:
            report.problems.append(f"data.{key} {split!r}: the split is empty")
        masks = "with masks" if (layout.has_masks and d.use_masks) else "no masks"
        crop = ""
        if d.kind == "cub":
            crop = ", crop box" if purpose == "train" else f", crop {EVAL_CROPS[d.eval_protocol]}"
        source = " (DRC processed release)" if layout is drc_layout else ""
        report.usage.append(
            f"{'training' if purpose == 'train' else 'evaluation'} reads {split!r}{source}: "
            f"{size} images, {masks}{crop}"
        )
    if d.kind in ("stanford_dogs", "stanford_cars") and drc_layout is None:
        report.warnings.append(
            "no DRC processed release (data_mrcnn/) in the dataset folder: no masks, so the run "
            "reports generation metrics only"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m comgan_lib.data.check",
        description="Check the dataset folder of a parameter file before a long run.",
    )
    parser.add_argument("params", help="parameter file, e.g. params/cub.yaml")
    add_override_argument(parser)
    parser.add_argument(
        "--quick", action="store_true", help="only check that files exist (no header reads)"
    )
    parser.add_argument(
        "--max-problems",
        type=int,
        default=DEFAULT_MAX_PROBLEMS,
        metavar="N",
        help=f"problems to print (default {DEFAULT_MAX_PROBLEMS}; 0 = all)",
    )
    args = parser.parse_args(argv)
    try:
        params = load_params(args.params, args.overrides)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        report = check_dataset(params, deep=not args.quick)
    except DatasetError as exc:  # a loader refusing the folder outright
        print(f"problem: {exc}")
        return 1
    print(f"checking {args.params}")
    for line in report.lines(args.max_problems):
        print(line)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
