"""Segmenting a folder of your own images with a run's trained stage-2 segmenter S (Sec. 3.3; S
is trained by Eq. 9-10 in ``comgan_lib.stage2``), and its command line.

Command line (one PNG mask per image, at the image's own size)::

    python -m comgan_lib.segment --run outputs/<run> --images DIR --out DIR [--overlay] \
        [--colour-em]

From Python: ``segment_folder(run, images, out)``. Each image is stretched to the model's
resolution, segmented by S (``comgan_lib.stage2.predict_masks``), and the foreground
probabilities are resized back to the image's size and thresholded. ``--colour-em`` refines S's
probabilities by each image's own colours first (``comgan_lib.metrics.colour_em``; this
workbook's post-hoc step, not the paper's: on the embedded dataset it draws thin parts and hollows
that S's rounded masks miss, docs/FINDINGS.md 2026-12-06). Related modules: training and
loading S (``comgan_lib.stage2``), scoring it on ground-truth masks (``comgan_lib.segment_eval``),
which layer of the generator is the object (``comgan_lib.orientation``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm.auto import tqdm

from comgan_lib.errors import UserError
from comgan_lib.metrics.colour_em import colour_em as refine_by_colour
from comgan_lib.runtime import pick_device
from comgan_lib.stage2 import DEFAULT_NAME, load_segmenter, predict_masks


def _list_images(folder: Path, recursive: bool) -> list[Path]:
    from comgan_lib.data.folder import IMAGE_EXTENSIONS

    found = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(
        p
        for p in found
        if p.is_file()
        and p.suffix.lower() in IMAGE_EXTENSIONS
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def _output_names(files: list[Path], folder: Path) -> dict[Path, Path]:
    """Mask path (relative) per image: same folder and stem, ``.png``; a stem shared by two
    files in one folder (``a.jpg``, ``a.png``) keeps the extension (``a_jpg.png``)."""
    rel = {f: f.relative_to(folder) for f in files}
    stems: dict[Path, int] = {}
    for r in rel.values():
        stems[r.with_suffix("")] = stems.get(r.with_suffix(""), 0) + 1
    out = {}
    for f, r in rel.items():
        base = r.with_suffix("")
        if stems[base] > 1:
            base = base.with_name(f"{base.name}_{r.suffix.lstrip('.').lower()}")
        out[f] = base.with_suffix(".png")
    return out


def _to_model_input(image: Image.Image, resolution: int) -> torch.Tensor:
    """The whole image stretched to R×R, as [3,R,R] in [-1, 1]."""
    small = image.resize((resolution, resolution), Image.BICUBIC)
    arr = torch.from_numpy(np.asarray(small, dtype=np.float32).copy())
    return (arr.permute(2, 0, 1) / 127.5 - 1).clamp(-1, 1)


def _mask_at_size(prob: torch.Tensor, size: tuple[int, int], threshold: float) -> np.ndarray:
    """Probabilities [1,R,R] resized (bilinear) to ``size`` = (width, height), thresholded."""
    width, height = size
    big = F.interpolate(prob[None].float(), size=(height, width), mode="bilinear")
    return (big[0, 0] >= threshold).numpy()


def overlay_image(image: Image.Image, mask: np.ndarray) -> Image.Image:
    """A preview: background dimmed, foreground tinted red."""
    arr = np.asarray(image, dtype=np.float32)
    out = arr * 0.35
    tint = np.array([255.0, 40.0, 40.0], dtype=np.float32)
    out[mask] = 0.6 * arr[mask] + 0.4 * tint
    return Image.fromarray(out.clip(0, 255).round().astype(np.uint8))


def _run_threshold(run_root: Path, info: dict) -> float:
    """``eval.threshold`` of the run's params.yaml when present, else the checkpoint's."""
    import yaml

    path = run_root / "params.yaml"
    try:
        value = yaml.safe_load(path.read_text())["eval"]["threshold"]
        return float(value)
    except Exception:
        return float(info.get("threshold", 0.5))


def segment_folder(
    run: str | Path,
    images: str | Path,
    out: str | Path,
    overlay: bool = False,
    recursive: bool = False,
    threshold: float | None = None,
    name: str = DEFAULT_NAME,
    device: str = "auto",
    batch_size: int = 16,
    progress: bool = True,
    log=None,
    colour_em: bool = False,
) -> dict:
    """Write one PNG mask (0 / 255, the image's own size) per image of ``images`` into ``out``.

    Each image is stretched to the model's resolution, segmented, and the probabilities resized
    back and thresholded (``threshold``, else the run's ``eval.threshold``). Subfolders are kept
    with ``recursive``. Unreadable files are reported on ``log`` (default stderr) and skipped.
    ``colour_em`` refines S's probabilities at the model's resolution by the per-image colour EM.
    Returns ``{"segmented": [names], "skipped": [(name, reason)], "threshold", "out",
    "colour_em"}``.
    Raises UserError for a missing run, checkpoint or images folder.
    """
    from comgan_lib.data.folder import IMAGE_EXTENSIONS, load_image_rgb

    log = log or sys.stderr
    run_root, images, out = Path(run), Path(images), Path(out)
    if not run_root.is_dir():
        raise UserError(f"run folder not found: {run_root}")
    if not images.is_dir():
        raise UserError(f"images folder not found: {images}")
    if out.resolve() == images.resolve():
        raise UserError(f"--out must differ from --images ({out}): masks would overwrite images")
    net, info = load_segmenter(run_root, name, pick_device(device))
    resolution = info["spec"]["resolution"]
    threshold = _run_threshold(run_root, info) if threshold is None else threshold
    files = _list_images(images, recursive)
    if not files:
        exts = " ".join(IMAGE_EXTENSIONS)
        where = f"{images} or its subfolders" if recursive else str(images)
        raise UserError(f"no image files ({exts}) in {where}")
    targets = _output_names(files, images)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create output folder {out}: {e}") from e

    segmented, skipped = [], []
    bar = tqdm(total=len(files), desc="segment", unit="img", disable=not progress, file=log)

    def flush(pending):
        if not pending:
            return
        inputs = torch.stack([t for _, _, t in pending])
        probs = predict_masks(net, inputs, batch_size)
        if colour_em:
            probs = refine_by_colour(inputs, probs)
        for (path, image, _), prob in zip(pending, probs, strict=True):
            mask = _mask_at_size(prob, image.size, threshold)
            target = out / targets[path]
            target.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(mask.astype(np.uint8) * 255, mode="L").save(target)
            if overlay:
                preview = target.with_name(f"{target.stem}_overlay.png")
                overlay_image(image, mask).save(preview)
            segmented.append(str(path.relative_to(images)))
        bar.update(len(pending))

    pending = []
    for path in files:
        try:
            image = load_image_rgb(path)
        except UserError as e:
            reason = str(e.__cause__ or e)
            name_ = str(path.relative_to(images))
            skipped.append((name_, reason))
            bar.update(1)
            tqdm.write(f"skipped {name_}: {reason}", file=log)
            continue
        pending.append((path, image, _to_model_input(image, resolution)))
        if len(pending) >= batch_size:
            flush(pending)
            pending = []
    flush(pending)
    bar.close()
    return {
        "segmented": segmented,
        "skipped": skipped,
        "threshold": threshold,
        "out": str(out),
        "colour_em": colour_em,
    }


class _OneLineParser(argparse.ArgumentParser):
    def error(self, message):  # one line, no usage block
        print(f"error: {message} (see --help)", file=sys.stderr)
        raise SystemExit(2)


def main(argv: list[str] | None = None) -> int:
    parser = _OneLineParser(
        prog="python -m comgan_lib.segment",
        description="Segment your own images with a run's trained stage-2 segmenter: one PNG "
        "mask (white = foreground) per image, at the image's own size.",
    )
    parser.add_argument("--run", required=True, type=Path, help="run folder, e.g. outputs/cub")
    parser.add_argument("--images", required=True, type=Path, help="folder of images")
    parser.add_argument("--out", required=True, type=Path, help="folder for the masks")
    parser.add_argument("--overlay", action="store_true", help="also write <stem>_overlay.png")
    parser.add_argument("--recursive", action="store_true", help="also read subfolders")
    parser.add_argument(
        "--threshold", type=float, default=None, help="foreground threshold (default: the run's)"
    )
    parser.add_argument("--name", default=DEFAULT_NAME, help="segmenter name (checkpoint stem)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--batch-size", type=int, default=16, help="images per forward pass")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument(
        "--colour-em",
        action="store_true",
        help="refine S's masks by each image's colours (post-hoc, not the paper's)",
    )
    args = parser.parse_args(argv)
    if args.threshold is not None and not 0.0 <= args.threshold <= 1.0:
        parser.error(f"--threshold must be in [0, 1], got {args.threshold}")
    if args.batch_size < 1:
        parser.error(f"--batch-size must be at least 1, got {args.batch_size}")
    try:
        result = segment_folder(
            args.run,
            args.images,
            args.out,
            overlay=args.overlay,
            recursive=args.recursive,
            threshold=args.threshold,
            name=args.name,
            device=args.device,
            batch_size=args.batch_size,
            progress=not args.quiet,
            colour_em=args.colour_em,
        )
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; the masks written so far are kept", file=sys.stderr)
        return 130
    n, skipped = len(result["segmented"]), result["skipped"]
    names = ", ".join(name for name, _ in skipped)
    print(f"{n} segmented, {len(skipped)} skipped" + (f": {names}" if skipped else ""))
    if n:
        print(f"masks written to {result['out']} (threshold {result['threshold']:g})")
    return 0 if n else 1


if __name__ == "__main__":
    sys.exit(main())
