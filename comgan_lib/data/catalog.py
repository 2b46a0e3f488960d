"""What each ``data.kind`` is, where its official distribution comes from, and what ``data.root``
must point at: one source for the data check, the loaders' errors and docs/DATASETS.md.
"""

from __future__ import annotations

from dataclasses import dataclass

from comgan_lib.errors import DatasetError


@dataclass(frozen=True)
class DatasetInfo:
    kind: str
    title: str
    source: str  # where to download it (one line)
    root: str  # what data.root must hold (one line)


CATALOG = {
    "cub": DatasetInfo(
        "cub",
        "CUB-200-2011",
        "Caltech-UCSD Birds-200-2011 (Caltech Vision Lab / CaltechDATA): CUB_200_2011.tgz and "
        "the separately distributed segmentations.tgz; ReDO's train_val_test_split.txt "
        "(ReDO repository, datasplits/cub) for split_scheme redo",
        "the CUB_200_2011 folder holding images.txt, bounding_boxes.txt, train_test_split.txt, "
        "images/ and segmentations/",
    ),
    "stanford_dogs": DatasetInfo(
        "stanford_dogs",
        "Stanford Dogs",
        "Stanford Dogs Dataset (Stanford Vision Lab; Khosla et al., FGVC 2011): images.tar, "
        "annotation.tar and lists.tar; optional approximate masks from DRC's processed release "
        "(data_mrcnn/ and its selection .npy files, copied into the same folder)",
        "the folder holding Images/, Annotation/ and lists/",
    ),
    "stanford_cars": DatasetInfo(
        "stanford_cars",
        "Stanford Cars",
        "Stanford Cars Dataset (Stanford AI Lab; Krause et al., 3DRR 2013): cars_train.tgz, "
        "cars_test.tgz and car_devkit.tgz (the original page is offline; use a faithful mirror); "
        "optional approximate masks from DRC's processed release (data_mrcnn/ and its selection "
        ".npy files, copied into the same folder)",
        "the folder holding cars_train/, cars_test/ and devkit/",
    ),
    "flowers": DatasetInfo(
        "flowers",
        "Oxford Flowers 102",
        "102 Category Flower Dataset (Visual Geometry Group, University of Oxford; Nilsback and "
        "Zisserman, ICVGIP 2008): 102flowers.tgz, 102segmentations.tgz and setid.mat",
        "the folder holding jpg/, segmim/ and setid.mat",
    ),
    "clevr6": DatasetInfo(
        "clevr6",
        "CLEVR6",
        "DeepMind Multi-Object Datasets: clevr_with_masks_train.tfrecords, converted to "
        "images/ + masks/ by `python -m comgan_lib.data.clevr6 TFRECORD OUT` (docs/DATASETS.md)",
        "the converter's output folder holding images/ and masks/",
    ),
    "class_folders": DatasetInfo(
        "class_folders",
        "class folders (FS-100 or any ImageFolder layout)",
        "FS-100 of Wu et al., CVPR 2019 ('Enhancing TripleGAN for Semi-Supervised Conditional "
        "Instance Synthesis and Classification'), from its authors; or any class-per-folder set",
        "the folder holding one sub-folder per class (or train/ and test/ holding them)",
    ),
    "folder": DatasetInfo(
        "folder",
        "image folder",
        "your own images",
        "the folder holding images/ (and optionally masks/)",
    ),
}


def missing_root_message(kind: str, source: str = "") -> str:
    """The one line for a paper dataset whose ``data.root`` is unset."""
    info = CATALOG[kind]
    where = f"{source}: " if source else ""
    return (
        f"{where}'data.root' is not set for data.kind {kind}: download {info.source}; then set "
        f"data.root to {info.root} (e.g. --set data.root=/path); see docs/DATASETS.md"
    )


def require_root(params) -> str:
    """``params.data.root``, or a DatasetError saying which key to set and what to download."""
    from pathlib import Path

    d = params.data
    info = CATALOG[d.kind]
    if not d.root:
        raise DatasetError(missing_root_message(d.kind, params.source))
    if not Path(d.root).is_dir():
        where = f"{params.source}: " if params.source else ""
        raise DatasetError(
            f"{where}'data.root' folder not found: {d.root}; it must be {info.root} "
            f"(download: {info.source}; see docs/DATASETS.md)"
        )
    return d.root
