"""Stanford Dogs in its official layout (images, VOC-style XML boxes, .mat split lists).

Layout::

    ROOT/Images/<wnid>-<breed>/<wnid>_<n>.jpg        20,580 images (images.tar)
    ROOT/Annotation/<wnid>-<breed>/<wnid>_<n>        one VOC XML file per image, no extension
                                                     (annotation.tar)
    ROOT/lists/train_list.mat, ROOT/lists/test_list.mat
        file_list (cell array of '<wnid>-<breed>/<wnid>_<n>.jpg'), annotation_list, labels
        (1..120); 12,000 train and 8,580 test images (lists.tar)

Boxes: ``<object><bndbox><xmin/ymin/xmax/ymax>`` of the XML; when an image has several dogs the
largest box is used. The training crop is 1.5x that box (``box``), as FineGAN and the same
author's L2IC do. Stanford Dogs has no masks; with DRC's processed release in the same folder
(see ``comgan_lib.data.drc``) evaluation reads DRC's approximate masks instead.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from comgan_lib.data.common import (
    AnnotatedImageDataset,
    Layout,
    Record,
    load_mat,
    mat_numbers,
    mat_strings,
)

TITLE = "Stanford Dogs"
LISTS = {"train": "lists/train_list.mat", "test": "lists/test_list.mat"}


def parse_voc_box(path: Path) -> tuple[tuple[float, float, float, float], tuple[int, int] | None]:
    """The largest ``bndbox`` of a VOC XML file as (x, y, w, h), and the stated (width, height).

    Raises ValueError with a short reason when the file is not such XML.
    """
    try:
        tree = ET.parse(path)
    except ET.ParseError as e:
        raise ValueError(f"not valid XML ({e})") from None
    root = tree.getroot()
    size = None
    width, height = root.findtext("size/width"), root.findtext("size/height")
    if width and height:
        try:
            size = (int(float(width)), int(float(height)))
        except ValueError:
            size = None
    boxes = []
    for bndbox in root.iter("bndbox"):
        try:
            x0, y0, x1, y1 = (float(bndbox.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax"))
        except (TypeError, ValueError):
            raise ValueError("a bndbox lacks numeric xmin/ymin/xmax/ymax") from None
        if x1 <= x0 or y1 <= y0:
            raise ValueError(f"an empty bndbox ({x0:g}, {y0:g}, {x1:g}, {y1:g})")
        boxes.append((x0, y0, x1 - x0, y1 - y0))
    if not boxes:
        raise ValueError("no <object><bndbox>")
    return max(boxes, key=lambda b: b[2] * b[3]), size


def scan(root) -> Layout:
    """Parse the Stanford Dogs files under ``root``; each missing or malformed file is a problem."""
    root = Path(root)
    lay = Layout(TITLE, root)
    if not root.is_dir():
        lay.problem(f"{root}: dataset folder not found")
        return lay
    images_dir, annotation_dir = root / "Images", root / "Annotation"
    if not images_dir.is_dir():
        lay.problem("Images/: folder missing (images.tar holds Images/<wnid>-<breed>/*.jpg)")
    if not annotation_dir.is_dir():
        lay.problem("Annotation/: folder missing (annotation.tar holds the XML boxes)")

    found_images = boxes = 0
    for split, rel_path in LISTS.items():
        lay.splits[split] = []
        path = root / rel_path
        if not path.is_file():
            lay.problem(f"{rel_path}: missing (lists.tar holds the train and test lists)")
            continue
        mat = load_mat(path, lay)
        if mat is None:
            continue
        if "file_list" not in mat:
            lay.problem(f"{rel_path}: no 'file_list'")
            continue
        files = mat_strings(mat["file_list"])
        annotations = (
            mat_strings(mat["annotation_list"])
            if "annotation_list" in mat
            else [str(Path(f).with_suffix("")) for f in files]
        )
        labels = [int(v) - 1 for v in _numbers(mat.get("labels"))]
        if len(annotations) != len(files) or (labels and len(labels) != len(files)):
            lay.problem(f"{rel_path}: file_list, annotation_list and labels differ in length")
            continue
        for i, (name, ann_name) in enumerate(zip(files, annotations, strict=True)):
            image = images_dir / name
            if images_dir.is_dir():
                if image.is_file():
                    found_images += 1
                else:
                    lay.problem(f"Images/{name}: listed in {rel_path} but missing")
            box = size = None
            if annotation_dir.is_dir():
                ann = annotation_dir / ann_name
                if not ann.is_file():
                    lay.problem(f"Annotation/{ann_name}: box file missing")
                else:
                    try:
                        box, size = parse_voc_box(ann)
                        boxes += 1
                    except ValueError as e:
                        lay.problem(f"Annotation/{ann_name}: {e}")
            label = labels[i] if labels else None
            lay.splits[split].append(len(lay.records))
            lay.records.append(Record(name, image, None, box, size, label))
    lay.splits["all"] = list(range(len(lay.records)))
    lay.counts = {"images listed": len(lay.records), "images found": found_images, "boxes": boxes}
    return lay


def _numbers(value) -> list[float]:
    return [] if value is None else mat_numbers(value)


class StanfordDogsDataset(AnnotatedImageDataset):
    """Stanford Dogs items from the official files, without masks (see the module docstring).

    Args:
        root: the folder holding Images/, Annotation/ and lists/.
        resolution: output side R.
        split: "train" (12,000), "test" (8,580) or "all".
        crop: "box" (training, 1.5x the box), "box_stretch", "full" or "center".
    """

    def __init__(self, root, resolution: int = 128, split: str = "train", crop: str = "box"):
        super().__init__(scan(root), resolution, split, crop, use_masks=False)
