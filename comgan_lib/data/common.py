"""Shared pieces of the paper datasets (CUB, Stanford Dogs, Stanford Cars, Flowers, DRC's release).

Each dataset module *scans* its official layout into a ``Layout``: one ``Record`` per image (the
image file, its mask file and bounding box when the layout has them) plus the named splits, and
every problem found on the way as one line naming the file. The ``Dataset`` classes build on a
scan and refuse a layout with problems; ``comgan_lib.data.check`` prints the same scan as a
report before a long run.

Geometry (``apply_crop``) is the same function for an image and its mask, so a mask always gets
exactly its image's crop and resize; masks are resized bilinearly and thresholded at 0.5.
Crops, with R the output side:

- ``box``: the square of half-side ``r = int(0.75 * max(w, h))`` around the bounding box centre
  (1.5x the box, FineGAN and the released ComGAN), clipped to the image, then the shorter side to
  R and a centre crop R (the aspect ratio is kept when clipping made the crop non-square).
- ``box_stretch``: the same 1.5x box crop stretched to R x R (DRC's evaluation).
- ``full``: the whole image, shorter side to ``round(152 * R / 128)``, centre crop R (the
  released ComGAN's evaluation: Resize(152) + CenterCrop(128) at R = 128).
- ``center``: the whole image, shorter side to R, centre crop R (ReDO's Flowers).
- ``stretch``: the whole image stretched to R x R (DRC's pre-resized release).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision.transforms.v2 import functional as TF

from comgan_lib.data.folder import load_image_rgb
from comgan_lib.errors import DatasetError

CROPS = ("box", "box_stretch", "full", "center", "stretch")
BOX_CROPS = ("box", "box_stretch")
FULL_RESIZE = 152 / 128  # the released ComGAN's evaluation: Resize(152) then CenterCrop(128)
MAX_LISTED = 10  # problems named in one DatasetError


@dataclass
class Record:
    """One image of a layout. ``box`` is (x, y, w, h) in pixels; ``size`` is (w, h) when the
    annotation states the image size (used by the data check only)."""

    name: str
    image: Path
    mask: Path | None = None
    box: tuple[float, float, float, float] | None = None
    size: tuple[int, int] | None = None
    label: int | None = None


@dataclass
class Layout:
    """What a scan of a dataset folder found: records, splits, counts, problems and notes."""

    title: str
    root: Path
    records: list[Record] = field(default_factory=list)
    splits: dict[str, list[int]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    has_masks: bool = False

    def problem(self, text: str) -> None:
        self.problems.append(text)

    def raise_if_problems(self) -> None:
        """One DatasetError line naming the first problems and how many there are."""
        if not self.problems:
            return
        n = len(self.problems)
        listed = "; ".join(self.problems[:MAX_LISTED])
        more = f"; and {n - MAX_LISTED} more" if n > MAX_LISTED else ""
        raise DatasetError(
            f"{self.title} at {self.root}: {n} problem(s): {listed}{more}. "
            "`python -m comgan_lib.data.check PARAMS` lists them all; docs/DATASETS.md shows "
            "the expected layout"
        )

    def select(self, split: str) -> list[Record]:
        if split not in self.splits:
            raise DatasetError(
                f"{self.title} at {self.root} has no {split!r} split "
                f"(available: {', '.join(self.splits)})"
            )
        return [self.records[i] for i in self.splits[split]]


def read_table(path: Path, columns: int, layout: Layout, what: str) -> list[list[str]] | None:
    """Whitespace-separated rows of a text file; a line with fewer than ``columns`` fields is a
    problem naming the file, the line and the expected form ``what``. None if the file is absent
    (the caller reports it)."""
    if not path.is_file():
        return None
    rows = []
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as e:
        layout.problem(f"{rel(path, layout.root)}: cannot be read ({e})")
        return None
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) < columns:
            layout.problem(
                f"{rel(path, layout.root)} line {number}: expected '{what}', got {line.strip()!r}"
            )
            continue
        rows.append(fields[:columns] if columns > 1 else fields)
    return rows


def rel(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` when inside it (for short messages), else as is."""
    try:
        return Path(path).relative_to(root).as_posix()
    except ValueError:
        return str(path)


def box_crop_region(box, width: int, height: int) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of the 1.5x square around the box centre, clipped to the image.

    As FineGAN and the released ComGAN: the box is cast to integers, the centre is
    ``int((2x + w) / 2)``, and the half-side is ``int(0.75 * max(w, h))``.
    """
    x, y, w, h = (int(v) for v in box)
    r = int(0.75 * max(w, h))
    cx, cy = int((2 * x + w) / 2), int((2 * y + h) / 2)
    return max(0, cx - r), max(0, cy - r), min(width, cx + r), min(height, cy + r)


def apply_crop(t: torch.Tensor, crop: str, resolution: int, box=None) -> torch.Tensor:
    """Crop and resize a [C, H, W] float tensor to [C, R, R]; see the module docstring."""
    r = resolution
    if crop in BOX_CROPS:
        if box is None:
            raise ValueError(f"crop {crop!r} needs a bounding box")
        left, top, right, bottom = box_crop_region(box, t.shape[-1], t.shape[-2])
        if right <= left or bottom <= top:
            raise DatasetError(f"bounding box {tuple(box)} lies outside the image")
        t = TF.crop(t, top, left, bottom - top, right - left)
        if crop == "box_stretch":
            return TF.resize(t, [r, r], antialias=True)
        return TF.center_crop(TF.resize(t, r, antialias=True), [r, r])
    if crop == "full":
        return TF.center_crop(TF.resize(t, round(FULL_RESIZE * r), antialias=True), [r, r])
    if crop == "center":
        return TF.center_crop(TF.resize(t, r, antialias=True), [r, r])
    if crop == "stretch":
        return TF.resize(t, [r, r], antialias=True)
    raise ValueError(f"crop must be one of {', '.join(CROPS)}; got {crop!r}")


def check_resolution(resolution) -> None:
    if isinstance(resolution, bool) or not isinstance(resolution, int):
        raise ValueError(f"resolution must be an integer, got {resolution!r}")
    if not 8 <= resolution <= 1024:
        raise ValueError(f"resolution must be in 8..1024, got {resolution}")


class AnnotatedImageDataset(Dataset):
    """Items of one split of a scanned layout, cropped by ``crop``, with masks when the layout
    has them and ``use_masks`` is on.

    Items are dicts: ``"image"`` float32 [3, R, R] in [-1, 1]; ``"mask"`` float32 [1, R, R] of
    0/1 values (only when ``has_masks``); ``"index"`` the item's index. Attributes: ``names``
    (file names relative to the dataset folder), ``labels`` (class indices, or None),
    ``resolution``, ``split``, ``crop``, ``has_masks``.

    Subclasses scan their layout and define ``load_mask(record)``: the mask as a float array
    [H, W] in [0, 1] at the image's size.
    """

    def __init__(self, layout: Layout, resolution: int, split: str, crop: str, use_masks=True):
        check_resolution(resolution)
        if crop not in CROPS:
            raise ValueError(f"crop must be one of {', '.join(CROPS)}; got {crop!r}")
        layout.raise_if_problems()
        self.layout = layout
        self.root = layout.root
        self.resolution = resolution
        self.split = split
        self.crop = crop
        self.records = layout.select(split)
        if not self.records:
            raise DatasetError(f"the {split!r} split of {layout.title} at {layout.root} is empty")
        if crop in BOX_CROPS and any(r.box is None for r in self.records):
            raise DatasetError(f"{layout.title} has no bounding boxes for crop {crop!r}")
        self.has_masks = bool(use_masks and layout.has_masks)
        self.names = [r.name for r in self.records]
        labels = [r.label for r in self.records]
        self.labels = None if any(v is None for v in labels) else labels

    def __len__(self) -> int:
        return len(self.records)

    def load_mask(self, record: Record) -> np.ndarray:
        raise NotImplementedError

    def __getitem__(self, index: int) -> dict:
        index = int(index)
        record = self.records[index]
        image = load_image_rgb(record.image)
        pixels = TF.to_dtype(TF.to_image(image), torch.float32, scale=True)
        item = {
            "image": apply_crop(pixels, self.crop, self.resolution, record.box).clamp(0, 1) * 2 - 1,
            "index": index,
        }
        if self.has_masks:
            soft = self.load_mask(record)
            if soft.shape != (image.height, image.width):
                raise DatasetError(
                    f"mask {record.mask}: size {soft.shape[1]}x{soft.shape[0]} differs from "
                    f"image size {image.width}x{image.height} of {record.image}"
                )
            mask = torch.from_numpy(np.ascontiguousarray(soft, dtype=np.float32))[None]
            mask = apply_crop(mask, self.crop, self.resolution, record.box)
            item["mask"] = (mask > 0.5).to(torch.float32)
        return item


def load_gray(path: Path) -> np.ndarray:
    """A mask file as float values in [0, 1] (grey level / 255), [H, W]."""
    from comgan_lib.data.folder import _load_mask

    return np.asarray(_load_mask(Path(path)), dtype=np.float32) / 255.0


def load_mat(path: Path, layout: Layout) -> dict | None:
    """A MATLAB .mat file via scipy (problem line and None when unreadable)."""
    try:
        from scipy.io import loadmat
    except ImportError:  # pragma: no cover - scipy is a dependency
        layout.problem(f"{rel(path, layout.root)}: reading .mat files needs scipy (pip install)")
        return None
    try:
        return loadmat(str(path), squeeze_me=True, struct_as_record=False)
    except Exception as e:  # scipy raises several types on a corrupt file
        layout.problem(f"{rel(path, layout.root)}: not a readable .mat file ({e})")
        return None


def mat_strings(value) -> list[str]:
    """A MATLAB cell array (or char array) of strings as a Python list of str."""
    arr = np.atleast_1d(np.asarray(value, dtype=object))
    out = []
    for v in arr.ravel():
        while isinstance(v, np.ndarray):
            v = v.ravel()[0] if v.size else ""
        out.append(str(v))
    return out


def mat_numbers(value) -> list[float]:
    return [float(v) for v in np.atleast_1d(np.asarray(value)).ravel()]
