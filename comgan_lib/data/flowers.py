"""Oxford Flowers 102 in its official layout, with the official foreground segmentations.

Layout::

    ROOT/jpg/image_%05d.jpg        8,189 images (102flowers.tgz)
    ROOT/segmim/segmim_%05d.jpg    the same images with the background painted blue
                                   (102segmentations.tgz)
    ROOT/setid.mat                 trnid (1,020), valid (1,020), tstid (6,149): 1-based image ids
    ROOT/imagelabels.mat           optional: labels (1..102), one per image

Splits: ``split_scheme="official"`` reads the names as they are (train = trnid, val = valid,
test = tstid). ``"redo"`` follows ReDO (and IEM, which scores ReDO's "test"), whose names are
swapped: train = tstid (6,149), val = valid, test = trnid (1,020). ``"all"`` is every id of the
three lists, sorted.

Foreground: every pixel of ``segmim`` that is *not* the background blue (0, 0, 254). The
segmentations are JPEGs, so the blue is not exact: a pixel is background when each channel is
within ``BLUE_TOLERANCE`` = 40 levels of (0, 0, 254), i.e. ``R <= 40 and G <= 40 and B >= 214``.
On blue backgrounds re-encoded as JPEG (quality 50 to 95) this misclassified under 1 % of the
pixels, all in a one-to-two-pixel halo at the outline; ReDO's rule (background when R == 0 or
G == 0 or B == 254) also marks any petal pixel with one zero channel as background.

Images are resized on their shorter side to R and centre-cropped (ReDO's Resize + CenterCrop);
Flowers has no bounding boxes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from comgan_lib.data.common import (
    AnnotatedImageDataset,
    Layout,
    Record,
    load_mat,
    mat_numbers,
)
from comgan_lib.data.folder import load_image_rgb

SPLIT_SCHEMES = ("official", "redo")
TITLE = "Oxford Flowers 102"
BACKGROUND_BLUE = (0, 0, 254)
BLUE_TOLERANCE = 40
_SCHEMES = {
    "official": {"train": "trnid", "val": "valid", "test": "tstid"},
    "redo": {"train": "tstid", "val": "valid", "test": "trnid"},
}


def foreground_from_segmim(rgb: np.ndarray, tolerance: int = BLUE_TOLERANCE) -> np.ndarray:
    """Boolean [H, W] foreground of a segmim image (uint8 [H, W, 3]): not the background blue."""
    distance = np.abs(rgb.astype(np.int16) - np.array(BACKGROUND_BLUE, dtype=np.int16)).max(-1)
    return distance > tolerance


def scan(root, split_scheme: str = "official", use_masks: bool = True) -> Layout:
    """Parse the Flowers files under ``root``; every missing or malformed file is a problem."""
    if split_scheme not in SPLIT_SCHEMES:
        raise ValueError(f"split_scheme must be one of {', '.join(SPLIT_SCHEMES)}")
    root = Path(root)
    lay = Layout(TITLE, root)
    if not root.is_dir():
        lay.problem(f"{root}: dataset folder not found")
        return lay

    lists: dict[str, list[int]] = {}
    setid = root / "setid.mat"
    if not setid.is_file():
        lay.problem("setid.mat: missing (it holds the trnid, valid and tstid image ids)")
    elif (mat := load_mat(setid, lay)) is not None:
        for key in ("trnid", "valid", "tstid"):
            if key not in mat:
                lay.problem(f"setid.mat: no {key!r} list")
                continue
            try:
                values = mat_numbers(mat[key])
            except (TypeError, ValueError):
                lay.problem(f"setid.mat: {key!r} is not a list of image ids")
                continue
            if any(v != int(v) or v < 1 for v in values):
                lay.problem(f"setid.mat: {key!r} holds values that are not 1-based image ids")
                continue
            lists[key] = [int(v) for v in values]

    labels = _read_labels(root, lay)
    all_ids = sorted(set().union(*lists.values())) if lists else []
    jpg_dir, seg_dir = root / "jpg", root / "segmim"
    if not jpg_dir.is_dir():
        lay.problem("jpg/: folder missing (102flowers.tgz holds jpg/image_%05d.jpg)")
    if use_masks and not seg_dir.is_dir():
        lay.problem(
            "segmim/: folder missing (102segmentations.tgz holds segmim/segmim_%05d.jpg; "
            "or set data.use_masks: false for generation only)"
        )
    lay.has_masks = use_masks and seg_dir.is_dir()
    found_images = found_masks = 0
    position = {}
    for image_id in all_ids:
        name = f"image_{image_id:05d}.jpg"
        image = jpg_dir / name
        mask = seg_dir / f"segmim_{image_id:05d}.jpg" if lay.has_masks else None
        if jpg_dir.is_dir():
            if image.is_file():
                found_images += 1
            else:
                lay.problem(f"jpg/{name}: listed in setid.mat but missing")
        if mask is not None:
            if mask.is_file():
                found_masks += 1
            else:
                lay.problem(f"segmim/{mask.name}: segmentation missing")
        label = labels[image_id - 1] if labels and image_id <= len(labels) else None
        position[image_id] = len(lay.records)
        lay.records.append(Record(name, image, mask, label=label))

    lay.counts = {
        "images listed": len(all_ids),
        "images found": found_images,
        "masks found": found_masks,
    }
    lay.splits["all"] = list(range(len(all_ids)))
    for split, key in _SCHEMES[split_scheme].items():
        lay.splits[split] = sorted(position[i] for i in lists.get(key, []))
    return lay


def _read_labels(root: Path, lay: Layout) -> list[int] | None:
    path = root / "imagelabels.mat"
    if not path.is_file():
        return None
    mat = load_mat(path, lay)
    if mat is None or "labels" not in mat:
        lay.warnings.append("imagelabels.mat: no 'labels' list; class labels unavailable")
        return None
    return [int(v) - 1 for v in mat_numbers(mat["labels"])]


class FlowersDataset(AnnotatedImageDataset):
    """Oxford Flowers 102 items (see the module docstring).

    Args:
        root: the folder holding jpg/, segmim/ and setid.mat.
        resolution: output side R.
        split: "train", "val", "test" or "all" (their meaning depends on ``split_scheme``).
        split_scheme: "official" (train = trnid) or "redo" (train = tstid, test = trnid).
        crop: "center" (default, ReDO), "full" or "stretch" (no boxes in Flowers).
        use_masks: derive masks from segmim/ (False: generation only).
    """

    def __init__(
        self,
        root,
        resolution: int = 128,
        split: str = "train",
        split_scheme: str = "official",
        crop: str = "center",
        use_masks: bool = True,
    ):
        super().__init__(scan(root, split_scheme, use_masks), resolution, split, crop, use_masks)
        self.split_scheme = split_scheme

    def load_mask(self, record: Record) -> np.ndarray:
        rgb = np.asarray(load_image_rgb(record.mask))
        return foreground_from_segmim(rgb).astype(np.float32)
