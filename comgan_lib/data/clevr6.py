"""Convert DeepMind's CLEVR-with-masks TFRecord file into a CLEVR6 image folder (no TensorFlow).

CLEVR6 is the multi-object dataset of the paper's experiments (§4): DS-ComGAN's FID and IS in
Table 3 and the segmentation IoU and Dice in Table 4. This module turns the published TFRecord
file into the image-folder layout the workbook reads (``params/clevr6.yaml``).

Source
    ``clevr_with_masks_train.tfrecords`` from DeepMind's multi-object-datasets: a GZIP-compressed
    TFRecord file (an uncompressed copy is accepted too; the gzip magic bytes decide). Each record
    is framed as ``uint64 length | uint32 masked CRC-32C of the length | data | uint32 masked
    CRC-32C of the data`` (little-endian) and its data is a serialized ``tf.train.Example``
    protobuf. The features used here are

    - ``image``: uint8 pixels of shape [240, 320, 3] (height, width, RGB), raw (not PNG);
    - ``mask``: uint8 masks of shape [11, 240, 320, 1], 0 or 255; mask 0 is the background and
      masks 1..10 are the objects (unused slots are empty);
    - ``visibility``: 11 floats, 1.0 for the background and for each object present.

    DeepMind's reader declares ``image`` and ``mask`` as fixed-length *string* features, so the
    file stores one single-byte string per pixel value; a single raw string holding all the bytes
    is accepted as well. The other features (x, y, z, pixel_coords, rotation, size, material,
    shape, color) are ignored.

    The ``tfrecord`` package (no TensorFlow) supplies the ``tf.train.Example`` protobuf class and
    the masked CRC-32C. The framing is read here because ``tfrecord.tfrecord_iterator`` skips the
    checksums, names no record in its errors and decompresses a whole gzip file once before the
    first record (to learn its size), which for this file is a full extra pass.

Selection
    CLEVR6 as in prior object-centric work (e.g. IODINE, DRC): among the first 70,000 records
    (``max_scenes``), the scenes with 3 to 6 visible objects (``min_objects``..``max_objects``;
    an object is visible when its visibility is above 0.5; the background slot 0 is not counted).

Crop
    The IODINE / slot-attention crop of the 240x320 frame: rows 29:221 and columns 64:256, a
    192x192 square around the objects. ``crop`` is given in PIL's box order ``(left, top, right,
    bottom)`` = ``(x0, y0, x1, y1)``: the default ``(64, 29, 256, 221)`` keeps
    ``image[29:221, 64:256]``. The crop is then resized to ``resolution`` (bilinear, antialiased):
    the image directly and the foreground (union of the object masks 1..10, values > 127) as a
    0/1 float map that is thresholded at 0.5 after the same resize.

Output (the layout ``comgan_lib.data.folder.ImageFolderDataset`` reads)::

    OUT_ROOT/images/clevr6_<record index, 6 digits>.png   RGB, resolution x resolution
    OUT_ROOT/masks/clevr6_<record index, 6 digits>.png    L, 0 background / 255 foreground
    OUT_ROOT/conversion.json                              parameters, source file and counts

The record index counts the records of the file from 0. Each PNG is written atomically (a hidden
temporary file, then ``os.replace``) and files already present are kept, so rerunning the same
command after an interruption continues where it stopped. ``conversion.json`` is written first
(``"complete": false``) and rewritten with the counts at the end; a folder converted with other
parameters (other than a larger ``max_scenes``) is refused rather than mixed.

Command line::

    python -m comgan_lib.data.clevr6 clevr_with_masks_train.tfrecords data/clevr6 \\
        [--max-scenes 70000] [--resolution 128]
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import json
import os
import struct
import sys
import zlib
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np
from google.protobuf.message import DecodeError
from PIL import Image
from tfrecord.example_pb2 import Example, Feature
from tfrecord.writer import TFRecordWriter

from comgan_lib.errors import DatasetError, UserError

IMAGE_SHAPE = (240, 320, 3)  # height, width, channels
NUM_ENTITIES = 11  # mask slots per scene: background + up to 10 objects
MASK_SHAPE = (NUM_ENTITIES, 240, 320, 1)
IODINE_CROP = (64, 29, 256, 221)  # (left, top, right, bottom): rows 29:221, columns 64:256
DEFAULT_MAX_SCENES = 70_000
FILE_PREFIX = "clevr6_"
CONVERTER_NAME = "comgan_lib.data.clevr6"
_GZIP_MAGIC = b"\x1f\x8b"
_HEADER_BYTES = 12  # uint64 length + uint32 masked CRC of the length
_CRC_BYTES = 4
_BYTES_VALUE_TAG = 0x0A  # protobuf key of BytesList.value: field 1, wire type 2 (length-delimited)

masked_crc32c = TFRecordWriter.masked_crc  # bytes -> the 4 little-endian bytes TFRecord stores

# ----------------------------------------------------------------------------------------------
# TFRecord files.


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == _GZIP_MAGIC


def _record_name(path: Path, index: int) -> str:
    return f"{path}: record {index} (counting from 0)"


def _read_record(f, where: str) -> bytes | None:
    """The data of the next record of the open file ``f``, checked; None at the end of the file."""
    header = f.read(_HEADER_BYTES)
    if not header:
        return None
    if len(header) < _HEADER_BYTES:
        raise DatasetError(f"{where} is truncated (incomplete header)")
    length_field, length_crc = header[:8], header[8:]
    if masked_crc32c(length_field) != length_crc:
        raise DatasetError(f"{where}: CRC mismatch of the length field (corrupt file)")
    (length,) = struct.unpack("<Q", length_field)
    body = f.read(length + _CRC_BYTES)
    if len(body) < length + _CRC_BYTES:
        raise DatasetError(
            f"{where} is truncated ({len(body)} of {length + _CRC_BYTES} bytes present)"
        )
    data, data_crc = body[:length], body[length:]
    if masked_crc32c(data) != data_crc:
        raise DatasetError(f"{where}: CRC mismatch of the data (corrupt file)")
    return data


def read_tfrecord(path) -> Iterator[bytes]:
    """Yield the data of each record of a TFRecord file (gzip or plain, detected), in order.

    Raises DatasetError naming the file and the record (counted from 0) on a missing or
    unreadable file, a bad checksum, a truncated record or broken compression.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"TFRecord file {path} does not exist")
    try:
        f = gzip.open(path, "rb") if _is_gzip(path) else open(path, "rb")
    except OSError as e:
        raise DatasetError(f"cannot read TFRecord file {path}: {e}") from e
    with f:
        for index in itertools.count():
            where = _record_name(path, index)
            try:
                data = _read_record(f, where)
            except (EOFError, zlib.error, OSError) as e:  # gzip.BadGzipFile is an OSError
                raise DatasetError(f"{where}: cannot decompress ({e})") from e
            if data is None:
                return
            yield data


# ----------------------------------------------------------------------------------------------
# CLEVR with masks -> CLEVR6 image folder.

Features = Mapping[str, Feature]  # a tf.train.Example's feature map


def _parse_example(data: bytes, where: str) -> Features:
    example = Example()
    try:
        example.ParseFromString(data)
    except DecodeError as e:
        raise DatasetError(f"{where}: not a valid tf.train.Example ({e})") from e
    return example.features.feature


def _feature_list(features: Features, name: str, kind: str, where: str):
    """The ``kind`` list ("bytes_list", ...) of feature ``name``, which may also be empty."""
    if name not in features:  # test first: looking up a missing key would insert it
        raise DatasetError(
            f"{where} has no {name!r} feature (found: {', '.join(sorted(features)) or 'none'}); "
            "is this the CLEVR-with-masks file?"
        )
    feature = features[name]
    found = feature.WhichOneof("kind")
    if found not in (kind, None):
        raise DatasetError(f"{where}: feature {name!r} is a {found}, expected a {kind}")
    return getattr(feature, kind)


def _joined_bytes(bytes_list) -> np.ndarray:
    """The values of a ``tf.train.BytesList`` concatenated, as uint8."""
    # DeepMind stores one single-byte string per pixel value. Serialized, each such value is the
    # three bytes (tag of field 1, length 1, the byte), so every third byte is a pixel: about ten
    # times faster than joining a million Python bytes objects. Other layouts take the join.
    wire = np.frombuffer(bytes_list.SerializeToString(), np.uint8)
    if wire.size % 3 == 0:
        triples = wire.reshape(-1, 3)
        if (triples[:, 0] == _BYTES_VALUE_TAG).all() and (triples[:, 1] == 1).all():
            return triples[:, 2].copy()
    return np.frombuffer(b"".join(bytes_list.value), np.uint8)


def _pixels(features: Features, name: str, shape: tuple[int, ...], where: str) -> np.ndarray:
    pixels = _joined_bytes(_feature_list(features, name, "bytes_list", where))
    expected = int(np.prod(shape))
    if pixels.size != expected:
        raise DatasetError(
            f"{where}: feature {name!r} holds {pixels.size} bytes, expected {expected} "
            f"(shape {list(shape)}); is this the CLEVR-with-masks file?"
        )
    return pixels.reshape(shape)


def _scene_arrays(features: Features, where: str) -> tuple[np.ndarray, np.ndarray]:
    """The image [240, 320, 3] and the masks [11, 240, 320] of a decoded record."""
    image = _pixels(features, "image", IMAGE_SHAPE, where)
    masks = _pixels(features, "mask", MASK_SHAPE, where)
    return image, masks[..., 0]


def _count_objects(features: Features, where: str) -> int:
    visibility = np.array(
        _feature_list(features, "visibility", "float_list", where).value, np.float32
    )
    if visibility.size != NUM_ENTITIES:
        raise DatasetError(
            f"{where}: feature 'visibility' holds {visibility.size} values, expected {NUM_ENTITIES}"
        )
    return int((visibility[1:] > 0.5).sum())


def _check_crop(crop) -> tuple[int, int, int, int]:
    try:
        x0, y0, x1, y1 = (int(c) for c in crop)
    except (TypeError, ValueError) as e:
        raise ValueError(f"crop must be 4 integers (left, top, right, bottom), got {crop!r}") from e
    height, width = IMAGE_SHAPE[:2]
    if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
        raise ValueError(
            f"crop (left, top, right, bottom) = {crop!r} is not inside the {width}x{height} image"
        )
    if x1 - x0 != y1 - y0:
        raise ValueError(f"crop {crop!r} is not square ({x1 - x0}x{y1 - y0} pixels)")
    return x0, y0, x1, y1


def crop_and_resize(image: np.ndarray, masks: np.ndarray, crop, resolution: int):
    """Crop a scene and resize it: ``(RGB uint8 [R, R, 3], foreground uint8 [R, R] of 0/255)``.

    ``image`` is [240, 320, 3], ``masks`` [11, 240, 320] (slot 0 the background); ``crop`` is
    ``(left, top, right, bottom)``.
    """
    x0, y0, x1, y1 = crop
    size = (resolution, resolution)
    bilinear = Image.Resampling.BILINEAR  # PIL filters over the whole footprint: antialiased
    rgb = Image.fromarray(np.ascontiguousarray(image[y0:y1, x0:x1])).resize(size, bilinear)
    foreground = (masks[1:, y0:y1, x0:x1] > 127).any(axis=0).astype(np.float32)
    fg = np.asarray(Image.fromarray(foreground, mode="F").resize(size, bilinear)) > 0.5
    return np.asarray(rgb), fg.astype(np.uint8) * 255


def _save_png_atomic(array: np.ndarray, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        Image.fromarray(array).save(tmp, format="PNG")
        os.replace(tmp, path)
    except OSError as e:
        raise DatasetError(f"cannot write {path}: {e}") from e
    finally:
        tmp.unlink(missing_ok=True)


def _write_scene(
    features: Features, where: str, image_path: Path, mask_path: Path, box, resolution: int
) -> bool:
    """Write a kept scene's image and mask unless both exist (then False: nothing written)."""
    if image_path.exists() and mask_path.exists():
        return False
    rgb, fg = crop_and_resize(*_scene_arrays(features, where), box, resolution)
    if not mask_path.exists():  # mask first: an image implies its mask
        _save_png_atomic(fg, mask_path)
    if not image_path.exists():
        _save_png_atomic(rgb, image_path)
    return True


def _write_json_atomic(path: Path, payload: dict) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(payload, indent=2) + "\n")
        os.replace(tmp, path)
    except OSError as e:
        raise DatasetError(f"cannot write {path}: {e}") from e
    finally:
        tmp.unlink(missing_ok=True)


def _check_out_root(out_root: Path, parameters: dict, source_name: str) -> None:
    """Refuse a non-empty folder that is not an earlier conversion with the same settings."""
    if out_root.exists() and not out_root.is_dir():
        raise DatasetError(f"output folder {out_root} is a file")
    info_path = out_root / "conversion.json"
    if not info_path.exists():
        if out_root.is_dir() and any(not p.name.startswith(".") for p in out_root.iterdir()):
            raise DatasetError(
                f"output folder {out_root} is not empty and holds no conversion.json of an "
                "earlier clevr6 conversion; choose a new or empty folder"
            )
        return
    try:
        earlier = json.loads(info_path.read_text())
        earlier_parameters = dict(earlier["parameters"])
        earlier_source = earlier["source"]["file"]
        if earlier.get("converter") != CONVERTER_NAME:
            raise ValueError("written by another converter")
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise DatasetError(f"{info_path} is not a clevr6 conversion record ({e})") from e
    if earlier_source != source_name:
        raise DatasetError(
            f"{out_root} was converted from {earlier_source}, not {source_name}; "
            "choose another output folder"
        )
    mine = {k: v for k, v in parameters.items() if k != "max_scenes"}
    theirs = {k: v for k, v in earlier_parameters.items() if k != "max_scenes"}
    if mine != theirs or parameters["max_scenes"] < earlier_parameters.get("max_scenes", 0):
        raise DatasetError(
            f"{out_root} holds a conversion with other parameters ({earlier_parameters}); "
            f"this one uses {parameters}. Choose another output folder or delete that one"
        )


def convert_clevr6(
    tfrecord_path,
    out_root,
    max_scenes: int = DEFAULT_MAX_SCENES,
    min_objects: int = 3,
    max_objects: int = 6,
    resolution: int = 128,
    crop=IODINE_CROP,
    progress: bool = True,
) -> dict:
    """Convert CLEVR-with-masks records into a CLEVR6 image folder (see the module docstring).

    Args:
        tfrecord_path: ``clevr_with_masks_train.tfrecords`` (gzip or plain).
        out_root: output folder; created, or an earlier (interrupted) conversion to continue.
        max_scenes: read at most this many records from the start of the file.
        min_objects, max_objects: keep scenes with this many visible objects (inclusive).
        resolution: side of the written square images and masks (8..1024).
        crop: ``(left, top, right, bottom)`` in the 320x240 frame; must be a square.
        progress: show a tqdm progress bar.

    Returns the dict written to ``out_root/conversion.json``. Raises DatasetError on problems
    with the file or the output folder and ValueError on bad arguments.
    """
    for name, value, low, high in [
        ("max_scenes", max_scenes, 1, None),
        ("min_objects", min_objects, 0, NUM_ENTITIES - 1),
        ("max_objects", max_objects, 0, NUM_ENTITIES - 1),
        ("resolution", resolution, 8, 1024),
    ]:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{name} must be an integer, got {value!r}")
        if value < low or (high is not None and value > high):
            raise ValueError(f"{name} must be in {low}..{high if high is not None else ''}")
    if min_objects > max_objects:
        raise ValueError(f"min_objects {min_objects} exceeds max_objects {max_objects}")
    box = _check_crop(crop)

    source = Path(tfrecord_path)
    out_root = Path(out_root)
    if not source.is_file():
        raise DatasetError(f"TFRecord file {source} does not exist")
    parameters = {
        "max_scenes": max_scenes,
        "min_objects": min_objects,
        "max_objects": max_objects,
        "resolution": resolution,
        "crop_left_top_right_bottom": list(box),
    }
    _check_out_root(out_root, parameters, source.name)
    images_dir, masks_dir = out_root / "images", out_root / "masks"
    try:
        images_dir.mkdir(parents=True, exist_ok=True)
        masks_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DatasetError(f"cannot create output folder {out_root}: {e}") from e

    info = {
        "converter": CONVERTER_NAME,
        "complete": False,
        "source": {
            "file": source.name,
            "path": str(source.resolve()),
            "bytes": source.stat().st_size,
            "gzip": _is_gzip(source),
        },
        "parameters": parameters,
        "crop_rows": [box[1], box[3]],
        "crop_columns": [box[0], box[2]],
        "layout": f"images/{FILE_PREFIX}<record>.png, masks/{FILE_PREFIX}<record>.png "
        "(record index from 0, 6 digits; mask 255 = foreground)",
        "counts": {},
    }
    counts = {
        "records_read": 0,
        "kept": 0,
        "skipped_by_object_count": 0,
        "written": 0,
        "already_present": 0,
    }
    histogram: dict[int, int] = {}
    _write_json_atomic(out_root / "conversion.json", info)

    from tqdm.auto import tqdm

    bar = tqdm(total=max_scenes, desc="clevr6", unit="rec", disable=not progress)
    try:
        for index, data in enumerate(read_tfrecord(source)):
            if index >= max_scenes:
                break
            where = _record_name(source, index)
            counts["records_read"] += 1
            features = _parse_example(data, where)
            n_objects = _count_objects(features, where)
            histogram[n_objects] = histogram.get(n_objects, 0) + 1
            if not min_objects <= n_objects <= max_objects:
                counts["skipped_by_object_count"] += 1
            else:
                counts["kept"] += 1
                name = f"{FILE_PREFIX}{index:06d}.png"
                if _write_scene(
                    features, where, images_dir / name, masks_dir / name, box, resolution
                ):
                    counts["written"] += 1
                else:
                    counts["already_present"] += 1
            bar.update(1)
            if index % 100 == 0:
                bar.set_postfix(kept=counts["kept"], refresh=False)
        if counts["records_read"] == 0:
            raise DatasetError(f"TFRecord file {source} holds no records")
        info["complete"] = True
    finally:
        bar.close()
        info["counts"] = counts
        info["file_shorter_than_max_scenes"] = counts["records_read"] < max_scenes
        info["object_count_histogram"] = {str(k): histogram[k] for k in sorted(histogram)}
        _write_json_atomic(out_root / "conversion.json", info)
    return info


# ----------------------------------------------------------------------------------------------
# Command line.


class _OneLineParser(argparse.ArgumentParser):
    def error(self, message):  # one line, no usage block
        print(f"error: {message} (see --help)", file=sys.stderr)
        raise SystemExit(2)


def _int_in(low: int, high: int | None):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if value < low or (high is not None and value > high):
            bounds = f"{low}..{high}" if high is not None else f">= {low}"
            raise argparse.ArgumentTypeError(f"{value} is not in {bounds}")
        return value

    return parse


def main(argv: list[str] | None = None) -> int:
    parser = _OneLineParser(
        prog="python -m comgan_lib.data.clevr6",
        description="Convert DeepMind's clevr_with_masks_train.tfrecords into a CLEVR6 image "
        "folder (images/ + masks/), without TensorFlow. Rerun to continue an interrupted run.",
    )
    parser.add_argument("tfrecord", type=Path, help="clevr_with_masks_train.tfrecords")
    parser.add_argument("out_root", type=Path, help="output folder (new, empty or to continue)")
    parser.add_argument(
        "--max-scenes",
        type=_int_in(1, None),
        default=DEFAULT_MAX_SCENES,
        metavar="N",
        help=f"read the first N records (default {DEFAULT_MAX_SCENES})",
    )
    parser.add_argument(
        "--resolution",
        type=_int_in(8, 1024),
        default=128,
        metavar="R",
        help="side of the written images and masks (default 128)",
    )
    args = parser.parse_args(argv)
    try:
        info = convert_clevr6(
            args.tfrecord, args.out_root, max_scenes=args.max_scenes, resolution=args.resolution
        )
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to continue", file=sys.stderr)
        return 130
    c = info["counts"]
    print(
        f"kept {c['kept']} of {c['records_read']} records ({c['skipped_by_object_count']} "
        f"skipped by object count, {c['already_present']} already present) -> {args.out_root}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
