"""Image-folder datasets: how users bring their own images (and, optionally, masks).

Layout::

    ROOT/images/<name>.<png|jpg|jpeg|bmp|webp|gif|tif|tiff>
    ROOT/masks/<name>.png      (optional; same names; pixel > 127 is foreground)

Every file is checked when the dataset is built, so a bad file is reported up front and by
name instead of crashing a run later. The images are split deterministically (from a seed)
into a "train" part and a held-out "test" part.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps
from torch.utils.data import Dataset
from torchvision.transforms.v2 import functional as TF

from comgan_lib.errors import DatasetError

IMAGE_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png", ".tif", ".tiff", ".webp")
SPLITS = ("train", "test", "all")
RESIZE_MODES = ("center_crop", "stretch")
BAD_FILE_POLICIES = ("error", "skip")
_MAX_LISTED = 10  # bad files named in one error message
_EXIF_ORIENTATION = 0x0112
_SWAPPING_ORIENTATIONS = (5, 6, 7, 8)  # EXIF orientations that swap width and height


def _open_upright(path: Path, mode: str) -> Image.Image:
    """Decode ``path`` fully, apply its EXIF orientation and convert it to ``mode``."""
    with Image.open(path) as im:
        im = ImageOps.exif_transpose(im)
        if im.mode.startswith("I"):  # 16-bit greyscale: scale down instead of clipping at 255
            im = Image.fromarray(
                (np.asarray(im, dtype=np.float64) / 257).round().clip(0, 255).astype(np.uint8)
            )
        if im.mode == "P" and "transparency" in im.info:
            im = im.convert("RGBA")  # the direct P -> RGB conversion warns in this case
        return im.convert(mode)


def load_image_rgb(path) -> Image.Image:
    """Read an image file as an upright RGB PIL image (any alpha channel is dropped).

    Raises DatasetError naming ``path`` when the file cannot be read or decoded.
    """
    try:
        return _open_upright(Path(path), "RGB")
    except Exception as e:  # PIL raises many types on bad files (OSError, SyntaxError, ...)
        raise DatasetError(f"cannot read image {path}: {e}") from e


def _load_mask(path: Path) -> Image.Image:
    try:
        return _open_upright(path, "L")
    except Exception as e:
        raise DatasetError(f"cannot read mask {path}: {e}") from e


def _check_file(path: Path) -> tuple[tuple[int, int] | None, str | None]:
    """Cheap header check: return ``(upright (width, height), None)`` or ``(None, reason)``."""
    try:
        with Image.open(path) as im:
            width, height = im.size
            # Only when the EXIF block was read with the header: getexif() would decode PNGs.
            if "exif" in im.info and im.getexif().get(_EXIF_ORIENTATION) in _SWAPPING_ORIENTATIONS:
                width, height = height, width
            im.verify()
        return (width, height), None
    except Exception as e:
        return None, f"unreadable ({e})"


def _list_files(folder: Path, extensions) -> list[Path]:
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in extensions
    )


class ImageFolderDataset(Dataset):
    """Images from ``ROOT/images`` (and masks from ``ROOT/masks`` when that folder exists).

    Items are dicts: ``"image"`` float32 [3, R, R] in [-1, 1]; ``"mask"`` float32 [1, R, R]
    of 0/1 values (only when ``has_masks``); ``"index"`` the item's index.

    Args:
        root: dataset folder.
        resolution: output side R (8..1024).
        split: "train", "test" (the held-out images) or "all" (every image, sorted by name).
        holdout_fraction: share of images held out as "test", in [0, 1); at least one image
            when there are two or more and the fraction is positive.
        seed: seed of the train/test split.
        resize_mode: "center_crop" (shorter side to R, then centre crop) or "stretch".
        on_bad_file: "error" (one DatasetError naming all bad files) or "skip" (warn, drop).
    """

    def __init__(
        self,
        root,
        resolution: int,
        split: str = "train",
        holdout_fraction: float = 0.1,
        seed: int = 0,
        resize_mode: str = "center_crop",
        on_bad_file: str = "error",
    ):
        if isinstance(resolution, bool) or not isinstance(resolution, int):
            raise ValueError(f"resolution must be an integer, got {resolution!r}")
        if not 8 <= resolution <= 1024:
            raise ValueError(f"resolution must be in 8..1024, got {resolution}")
        for name, value, allowed in [
            ("split", split, SPLITS),
            ("resize_mode", resize_mode, RESIZE_MODES),
            ("on_bad_file", on_bad_file, BAD_FILE_POLICIES),
        ]:
            if value not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")
        if not 0 <= holdout_fraction < 1:
            raise ValueError(f"holdout_fraction must be in [0, 1), got {holdout_fraction}")

        self.root = Path(root)
        self.resolution = resolution
        self.split = split
        self.resize_mode = resize_mode
        images_dir, masks_dir = self.root / "images", self.root / "masks"
        if not self.root.is_dir():
            raise DatasetError(f"dataset folder {self.root} does not exist")
        if not images_dir.is_dir():
            raise DatasetError(f"dataset folder {self.root} has no images folder {images_dir}")
        image_paths = _list_files(images_dir, IMAGE_EXTENSIONS)
        if not image_paths:
            raise DatasetError(
                f"no images in {images_dir} (looked for {', '.join(IMAGE_EXTENSIONS)} files)"
            )
        self.has_masks = masks_dir.is_dir()
        masks = {p.stem: p for p in _list_files(masks_dir, (".png",))} if self.has_masks else {}

        by_stem: dict[str, list[Path]] = {}
        for p in image_paths:
            by_stem.setdefault(p.stem, []).append(p)
        problems: list[tuple[Path, str]] = []  # (image to drop, what is wrong and where)
        valid: dict[str, Path] = {}
        for stem, paths in by_stem.items():
            if len(paths) > 1:
                same = ", ".join(self._rel(p) for p in paths)
                problems += [
                    (p, f"{self._rel(p)}: several images named {stem} ({same})") for p in paths
                ]
            elif problem := self._pair_problem(paths[0], masks.get(stem)):
                problems.append((paths[0], problem))
            else:
                valid[stem] = paths[0]

        orphans = sorted(self._rel(p) for stem, p in masks.items() if stem not in by_stem)
        if orphans:
            warnings.warn(f"ignoring masks without an image: {', '.join(orphans)}", stacklevel=2)
        self.skipped: list[str] = [self._rel(p) for p, _ in problems]
        if problems:
            _report([why for _, why in problems], self.root, on_bad_file)
        if not valid:
            raise DatasetError(f"no usable images left in {images_dir}")

        stems = sorted(valid)
        if split != "all":
            n_test = min(len(stems) - 1, round(holdout_fraction * len(stems)))
            if holdout_fraction > 0 and len(stems) >= 2:
                n_test = max(1, n_test)
            order = np.random.default_rng(seed).permutation(len(stems))
            held_out = {stems[i] for i in order[:n_test]}
            stems = [s for s in stems if (s in held_out) == (split == "test")]
            if not stems:
                raise DatasetError(
                    f"the {split!r} split of {self.root} is empty ({len(valid)} usable "
                    f"image(s), holdout_fraction={holdout_fraction})"
                )
        self.names: list[str] = stems
        self.paths: list[Path] = [valid[s] for s in stems]
        self.mask_paths: list[Path] | None = [masks[s] for s in stems] if self.has_masks else None

    def _rel(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def _pair_problem(self, image: Path, mask: Path | None) -> str | None:
        """What is wrong with an image file (and its mask, if masks are used), or None."""
        size, reason = _check_file(image)
        if reason:
            return f"{self._rel(image)}: {reason}"
        if not self.has_masks:
            return None
        if mask is None:
            return f"{self._rel(image)}: no mask masks/{image.stem}.png"
        mask_size, reason = _check_file(mask)
        if reason:
            return f"{self._rel(mask)}: {reason}"
        if mask_size != size:
            return (
                f"{self._rel(mask)}: mask size {_wh(mask_size)} differs from image size "
                f"{_wh(size)} of {self._rel(image)}"
            )
        return None

    def __len__(self) -> int:
        return len(self.paths)

    def _resize(self, t: torch.Tensor) -> torch.Tensor:
        r = self.resolution
        if self.resize_mode == "stretch":
            return TF.resize(t, [r, r], antialias=True)
        return TF.center_crop(TF.resize(t, r, antialias=True), [r, r])

    def __getitem__(self, index: int) -> dict:
        index = int(index)
        image = load_image_rgb(self.paths[index])
        pixels = TF.to_dtype(TF.to_image(image), torch.float32, scale=True)
        item = {"image": self._resize(pixels).clamp(0, 1) * 2 - 1, "index": index}
        if self.mask_paths is not None:
            mask_path = self.mask_paths[index]
            mask = _load_mask(mask_path)
            if mask.size != image.size:
                raise DatasetError(
                    f"mask {mask_path}: mask size {_wh(mask.size)} differs from image size "
                    f"{_wh(image.size)} of {self.paths[index]}"
                )
            fg = torch.from_numpy(np.asarray(mask) > 127).to(torch.float32)[None]
            item["mask"] = (self._resize(fg) > 0.5).to(torch.float32)
        return item


def _wh(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"


def _report(problems: list[str], root: Path, on_bad_file: str) -> None:
    """Raise one DatasetError listing the bad files, or warn that they are skipped."""
    if on_bad_file == "error":
        more = len(problems) - _MAX_LISTED
        listed = "; ".join(problems[:_MAX_LISTED]) + (f"; and {more} more" if more > 0 else "")
        raise DatasetError(
            f"{len(problems)} bad file(s) in dataset folder {root}: {listed}. "
            "Fix or remove them, or set `data.on_bad_file: skip` to skip them."
        )
    warnings.warn(
        f"skipping {len(problems)} bad file(s) in dataset folder {root}: " + "; ".join(problems),
        stacklevel=3,
    )
