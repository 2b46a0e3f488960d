"""DRC's processed release of Stanford Dogs and Stanford Cars: pre-resized images with approximate
foreground masks, the ground truth that DRC, ILSGAN, L2IC and (very likely) ComGAN score on.

Layout, inside the dataset folder (copy the contents of DRC's ``dogs/`` or ``cars/`` folder
next to the official files)::

    ROOT/data_mrcnn/train/resized/<id>_resized.png       image
    ROOT/data_mrcnn/train/resized/<id>_maskresized.png   its mask (pixel > 127 is foreground)
    ROOT/data_mrcnn/test/resized/...                     the same for the test part
    ROOT/data_tr_sel.npy, ROOT/data_te_sel.npy           Dogs: the selected <id>s per part
    ROOT/data_mrcnn_train_select.npy, ..._test_select.npy  Cars: the same

Either naming of the selection files is accepted for either dataset. A selection file is a 1-D
NumPy array of ids (integers or strings, read without pickle); an id ``k`` names the files
``<k>_resized.png`` and ``<k>_maskresized.png``. When a part's selection file is absent every
image pair in that part's folder is used (a warning says so). Splits: "train" = the train
selection (DRC's split 0, the one whose scores ComGAN's Table 4 quotes), "test" = the test
selection (split 2), "all" = both (DRC's ``*_all`` setting).

The images are stretched to R x R, as DRC does. DRC reads them with OpenCV, i.e. in BGR order;
we read RGB, the order the generators are trained on.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from comgan_lib.data.common import AnnotatedImageDataset, Layout, Record, load_gray, rel

PARTS = ("train", "test")
SELECTION_FILES = {
    "train": ("data_tr_sel.npy", "data_mrcnn_train_select.npy"),
    "test": ("data_te_sel.npy", "data_mrcnn_test_select.npy"),
}
IMAGE_SUFFIX, MASK_SUFFIX = "_resized.png", "_maskresized.png"


def present(root) -> bool:
    """Whether ``root`` holds DRC's processed release (a ``data_mrcnn`` folder)."""
    return (Path(root) / "data_mrcnn").is_dir()


def _token(value) -> str:
    if isinstance(value, (bytes, np.bytes_)):
        return value.decode()
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _selection(root: Path, part: str, lay: Layout) -> list[str] | None:
    for name in SELECTION_FILES[part]:
        path = root / name
        if not path.is_file():
            continue
        try:
            values = np.load(path, allow_pickle=False)
        except Exception as e:  # a pickled object array, a truncated file, ...
            lay.problem(f"{name}: not a plain NumPy array of ids ({e})")
            return []
        return [_token(v) for v in np.atleast_1d(values).ravel()]
    return None


def scan(root, title: str = "DRC processed release") -> Layout:
    """Parse DRC's processed files under ``root``; every missing file is a problem line."""
    root = Path(root)
    lay = Layout(title, root, has_masks=True)
    found_images = found_masks = 0
    for part in PARTS:
        folder = root / "data_mrcnn" / part / "resized"
        tokens = _selection(root, part, lay)
        if tokens is None:
            if not folder.is_dir():
                lay.problem(
                    f"{rel(folder, root)}: folder missing (and no "
                    f"{' or '.join(SELECTION_FILES[part])})"
                )
                tokens = []
            else:
                tokens = sorted(
                    p.name[: -len(IMAGE_SUFFIX)]
                    for p in folder.iterdir()
                    if p.name.endswith(IMAGE_SUFFIX) and not p.name.endswith(MASK_SUFFIX)
                )
                lay.warnings.append(
                    f"no {' or '.join(SELECTION_FILES[part])}: using all {len(tokens)} image(s) "
                    f"of {rel(folder, root)}"
                )
        indices = []
        for token in tokens:
            image = folder / f"{token}{IMAGE_SUFFIX}"
            mask = folder / f"{token}{MASK_SUFFIX}"
            if image.is_file():
                found_images += 1
            else:
                lay.problem(f"{rel(image, root)}: selected but missing")
            if mask.is_file():
                found_masks += 1
            else:
                lay.problem(f"{rel(mask, root)}: mask missing")
            indices.append(len(lay.records))
            lay.records.append(Record(f"{part}/{token}", image, mask))
        lay.splits[part] = indices
    lay.splits["all"] = lay.splits["train"] + lay.splits["test"]
    lay.counts = {
        "images selected": len(lay.records),
        "images found": found_images,
        "masks found": found_masks,
    }
    return lay


class DRCProcessedDataset(AnnotatedImageDataset):
    """Items of DRC's processed Dogs or Cars release (see the module docstring).

    Args:
        root: the dataset folder holding data_mrcnn/ and the selection files.
        resolution: output side R (images are stretched to R x R, as DRC does).
        split: "train", "test" or "all".
        title: name used in messages, e.g. "Stanford Dogs (DRC masks)".
    """

    def __init__(
        self, root, resolution: int = 128, split: str = "train", title: str = "DRC release"
    ):
        super().__init__(scan(root, title), resolution, split, "stretch", True)

    def load_mask(self, record: Record) -> np.ndarray:
        return (load_gray(record.mask) > 127 / 255).astype(np.float32)
