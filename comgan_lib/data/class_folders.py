"""Class-per-folder datasets (torchvision's ImageFolder layout): FS-100 and the like, no masks.

Layout, either::

    ROOT/<class>/<image>.<jpg|png|...>

or, when the distribution ships its own split::

    ROOT/train/<class>/<image>      ROOT/test/<class>/<image>      (ROOT/val/<class>/... optional)

With split folders the splits are those folders ("all" = all of them). Without, the images are
split like the image-folder loader: a seeded random ``holdout_fraction`` is "test", the rest
"train". Classes are the sorted folder names (``labels`` holds their indices); names are paths
relative to ROOT. Every file's header is read when the dataset is built: an unreadable file is a
problem (``on_bad_file="error"``) or skipped with a warning (``"skip"``). Generation only: these
datasets have no masks. Images reach R x R by ``resize_mode``: "center_crop" (shorter side to R,
centre crop) or "stretch".
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from comgan_lib.data.common import AnnotatedImageDataset, Layout, Record
from comgan_lib.data.folder import IMAGE_EXTENSIONS, _check_file, _list_files

TITLE = "class folders"
SPLIT_FOLDERS = ("train", "val", "test")
RESIZE_CROPS = {"center_crop": "center", "stretch": "stretch"}


def _class_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def scan(
    root,
    holdout_fraction: float = 0.1,
    seed: int = 0,
    verify: bool = True,
    on_bad_file: str = "error",
) -> Layout:
    """List the class folders under ``root``; unreadable files are problems (or skipped)."""
    root = Path(root)
    lay = Layout(TITLE, root)
    if not root.is_dir():
        lay.problem(f"{root}: dataset folder not found")
        return lay
    top = _class_dirs(root)
    split_dirs = [p for p in top if p.name in SPLIT_FOLDERS]
    with_split_folders = {"train", "test"} <= {p.name for p in split_dirs}
    parts = [(p.name, p) for p in split_dirs] if with_split_folders else [(None, root)]

    classes = sorted({c.name for _, folder in parts for c in _class_dirs(folder)})
    if not classes:
        lay.problem(f"{root}: no class folders (expected ROOT/<class>/<image> files)")
        return lay
    index_of = {name: i for i, name in enumerate(classes)}
    by_part: dict[str | None, list[int]] = {}
    skipped = 0
    for part, folder in parts:
        by_part[part] = []
        for class_dir in _class_dirs(folder):
            files = _list_files(class_dir, IMAGE_EXTENSIONS)
            if not files:
                lay.warnings.append(f"{class_dir.relative_to(root).as_posix()}/: no images")
            for path in files:
                name = path.relative_to(root).as_posix()
                if verify:
                    _, reason = _check_file(path)
                    if reason:
                        if on_bad_file == "skip":
                            lay.warnings.append(f"{name}: {reason}; skipped")
                            skipped += 1
                        else:
                            lay.problem(f"{name}: {reason}")
                        continue
                by_part[part].append(len(lay.records))
                lay.records.append(Record(name, path, label=index_of[class_dir.name]))
    if not lay.records and not lay.problems:
        lay.problem(f"{root}: no images in the class folders ({', '.join(IMAGE_EXTENSIONS)})")

    n = len(lay.records)
    lay.splits["all"] = list(range(n))
    if with_split_folders:
        for part, indices in by_part.items():
            lay.splits[part] = indices
    else:
        n_test = min(n - 1, round(holdout_fraction * n)) if n else 0
        if holdout_fraction > 0 and n >= 2:
            n_test = max(1, n_test)
        held_out = set(np.random.default_rng(seed).permutation(n)[:n_test].tolist())
        lay.splits["train"] = [i for i in range(n) if i not in held_out]
        lay.splits["test"] = [i for i in range(n) if i in held_out]
    lay.counts = {"classes": len(classes), "images": n}
    if skipped:
        lay.counts["skipped (unreadable)"] = skipped
    return lay


class ClassFolderDataset(AnnotatedImageDataset):
    """Images of a class-per-folder dataset (see the module docstring).

    Args:
        root: the dataset folder.
        resolution: output side R.
        split: "train", "test", "all" (and "val" when ROOT/val exists beside train and test).
        holdout_fraction, seed: the held-out share and its seed when there are no split folders.
        resize_mode: "center_crop" or "stretch".
        on_bad_file: "error" (one DatasetError naming the bad files) or "skip" (warn, drop).
    """

    def __init__(
        self,
        root,
        resolution: int = 128,
        split: str = "train",
        holdout_fraction: float = 0.1,
        seed: int = 0,
        resize_mode: str = "center_crop",
        on_bad_file: str = "error",
    ):
        if resize_mode not in RESIZE_CROPS:
            raise ValueError(f"resize_mode must be one of {', '.join(RESIZE_CROPS)}")
        if on_bad_file not in ("error", "skip"):
            raise ValueError("on_bad_file must be error or skip")
        layout = scan(root, holdout_fraction, seed, verify=True, on_bad_file=on_bad_file)
        bad = [w for w in layout.warnings if w.endswith("; skipped")]
        if bad:
            warnings.warn(f"skipping {len(bad)} bad file(s): " + "; ".join(bad), stacklevel=2)
        super().__init__(layout, resolution, split, RESIZE_CROPS[resize_mode], use_masks=False)
