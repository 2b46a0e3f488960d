"""Tests of the CLEVR-with-masks -> CLEVR6 converter (comgan_lib.data.clevr6), on tiny files."""

import gzip
import json
import struct

import numpy as np
import pytest
from PIL import Image
from tfrecord.writer import TFRecordWriter

from comgan_lib.data.clevr6 import (
    IMAGE_SHAPE,
    MASK_SHAPE,
    convert_clevr6,
    main,
    masked_crc32c,
    read_tfrecord,
)
from comgan_lib.data.folder import ImageFolderDataset
from comgan_lib.errors import DatasetError

VISIBLE = [2, 3, 6, 7, 4]  # visible objects per synthetic scene; scene 4 also has a hidden one
KEPT = [1, 2, 4]  # record indices with 3..6 visible objects
GREY, RED, GREEN = (60, 60, 60), (200, 40, 120), (30, 200, 30)
X0, Y0 = 64, 29  # top-left corner of the default crop: columns 64:256, rows 29:221
SINGLE_BYTES = [bytes([v]) for v in range(256)]


def _one_string_per_byte(array):
    """DeepMind's pixel layout: a bytes_list holding one single-byte string per value."""
    return [SINGLE_BYTES[v] for v in array.reshape(-1).tolist()]


def _write_tfrecord(path, examples, compress=False):
    """Write ``examples`` (TFRecordWriter's ``{name: (value, "byte"|"float"|"int")}``)."""
    writer = TFRecordWriter(str(path))
    for example in examples:
        writer.write(example)
    writer.close()
    if compress:
        path.write_bytes(gzip.compress(path.read_bytes(), compresslevel=1))
    return path


def _record_starts(raw):
    """Byte offsets of the records of an uncompressed TFRecord file, and of its end."""
    starts = [0]
    while starts[-1] < len(raw):
        (length,) = struct.unpack("<Q", raw[starts[-1] : starts[-1] + 8])
        starts.append(starts[-1] + 12 + length + 4)
    return starts


def _rect(index):
    """Object 1 of scene ``index`` in crop coordinates (top, bottom, left, right).

    Multiples of 3, so that the rectangle maps onto whole pixels at 128 (x 2/3) and 64 (x 1/3).
    """
    return 30 + 3 * index, 90 + 3 * index, 60 + 6 * index, 150 + 6 * index


def _scene(index, n_visible, single_blob=False):
    image = np.zeros(IMAGE_SHAPE, np.uint8)
    image[:] = GREY
    masks = np.zeros(MASK_SHAPE[:3], np.uint8)
    top, bottom, left, right = _rect(index)
    masks[1, Y0 + top : Y0 + bottom, X0 + left : X0 + right] = 255
    image[Y0 + top : Y0 + bottom, X0 + left : X0 + right] = RED
    for k in range(2, n_visible + 1):  # other objects in the left margin, outside the crop
        masks[k, 20 * k : 20 * k + 15, 0:60] = 255
        image[20 * k : 20 * k + 15, 0:60] = GREEN
    masks[0] = np.where(masks[1:].any(axis=0), 0, 255)
    visibility = np.zeros(11, np.float32)
    visibility[: n_visible + 1] = 1.0  # the background slot 0 is "visible" too
    if index == 4:
        visibility[n_visible + 1] = 0.25  # a hidden object is not counted
    if single_blob:  # one raw string instead of DeepMind's one string per byte
        pixels = {"image": (image.tobytes(), "byte"), "mask": (masks.tobytes(), "byte")}
    else:
        pixels = {
            "image": (_one_string_per_byte(image), "byte"),
            "mask": (_one_string_per_byte(masks), "byte"),
        }
    return {
        **pixels,
        "x": (np.linspace(-3, 3, 11, dtype=np.float32), "float"),
        "shape": ([b"\x01"] * 11, "byte"),
        "visibility": (visibility, "float"),
        "color": (np.arange(11), "int"),
    }


@pytest.fixture(scope="module")
def raw_file_bytes(tmp_path_factory):
    path = tmp_path_factory.mktemp("clevr") / "scenes.tfrecords"
    return _write_tfrecord(path, (_scene(i, n) for i, n in enumerate(VISIBLE))).read_bytes()


@pytest.fixture
def gz_file(tmp_path, raw_file_bytes):
    path = tmp_path / "clevr_with_masks_train.tfrecords"
    path.write_bytes(gzip.compress(raw_file_bytes, compresslevel=1))
    return path


def _expected_mask(index, resolution):
    scale = 192 // resolution if resolution <= 192 else None
    top, bottom, left, right = (v * resolution // 192 for v in _rect(index))
    assert scale is None or all(v % scale == 0 for v in _rect(index))
    mask = np.zeros((resolution, resolution), np.uint8)
    mask[top:bottom, left:right] = 255
    return mask, (top, bottom, left, right)


def _check_outputs(out, resolution):
    names = sorted(p.name for p in (out / "images").iterdir())
    assert names == [f"clevr6_{i:06d}.png" for i in KEPT]
    assert sorted(p.name for p in (out / "masks").iterdir()) == names
    for i in KEPT:
        name = f"clevr6_{i:06d}.png"
        with Image.open(out / "images" / name) as im:
            assert im.mode == "RGB" and im.size == (resolution, resolution)
            rgb = np.asarray(im).astype(int)
        with Image.open(out / "masks" / name) as im:
            assert im.mode == "L" and im.size == (resolution, resolution)
            mask = np.asarray(im)
        expected, (top, bottom, left, right) = _expected_mask(i, resolution)
        np.testing.assert_array_equal(mask, expected)  # pixel-aligned, margins cropped away
        inside = rgb[top + 1 : bottom - 1, left + 1 : right - 1]
        assert np.abs(inside - RED).max() <= 1
        outside = np.ones((resolution, resolution), bool)
        outside[top - 1 : bottom + 1, left - 1 : right + 1] = False
        assert np.abs(rgb[outside] - GREY).max() <= 1


def test_masked_crc_is_tfrecords_checksum():
    # The masked CRC-32C TensorFlow writes; "123456789" has the CRC-32C check value 0xE3069283.
    crc = 0xE3069283
    masked = ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) % (1 << 32)
    assert masked_crc32c(b"123456789") == struct.pack("<I", masked)


def test_convert_keeps_3_to_6_objects_with_aligned_masks(gz_file, tmp_path):
    out = tmp_path / "clevr6"
    info = convert_clevr6(gz_file, out, progress=False)
    _check_outputs(out, 128)
    assert info["counts"] == {
        "records_read": 5,
        "kept": 3,
        "skipped_by_object_count": 2,
        "written": 3,
        "already_present": 0,
    }
    saved = json.loads((out / "conversion.json").read_text())
    assert saved["complete"] and saved["source"]["file"] == gz_file.name and saved["source"]["gzip"]
    assert saved["parameters"]["crop_left_top_right_bottom"] == [64, 29, 256, 221]
    assert saved["crop_rows"] == [29, 221] and saved["crop_columns"] == [64, 256]
    assert saved["object_count_histogram"] == {"2": 1, "3": 1, "4": 1, "6": 1, "7": 1}
    ds = ImageFolderDataset(out, 128, split="all")  # the project's loader reads the output
    assert ds.has_masks and len(ds) == 3
    assert ds[0]["mask"].sum() == (_expected_mask(1, 128)[0] > 0).sum()


def test_uncompressed_file_single_blob_layout_and_max_scenes(tmp_path):
    path = tmp_path / "plain.tfrecords"
    _write_tfrecord(path, (_scene(i, n, True) for i, n in enumerate(VISIBLE)))
    assert path.read_bytes()[:2] != b"\x1f\x8b"
    out = tmp_path / "out"
    info = convert_clevr6(path, out, resolution=64, progress=False)
    assert not info["source"]["gzip"] and info["counts"]["kept"] == 3
    _check_outputs(out, 64)
    info = convert_clevr6(path, tmp_path / "out2", max_scenes=2, resolution=64, progress=False)
    assert info["counts"]["records_read"] == 2 and info["counts"]["kept"] == 1
    assert not info["file_shorter_than_max_scenes"]


def test_corrupt_or_truncated_file_names_the_record(tmp_path, raw_file_bytes):
    starts = _record_starts(raw_file_bytes)
    assert len(starts) == len(VISIBLE) + 1
    data = bytearray(raw_file_bytes)
    data[starts[2] + 12 + 5000] ^= 0x40  # one bit in the data of record 2
    path = tmp_path / "bad.tfrecords"
    path.write_bytes(gzip.compress(bytes(data), compresslevel=1))
    with pytest.raises(DatasetError, match=r"bad\.tfrecords: record 2 .*CRC mismatch"):
        convert_clevr6(path, tmp_path / "out", progress=False)
    data = bytearray(raw_file_bytes)
    data[starts[1] + 3] ^= 0x01  # the length field of record 1
    path.write_bytes(bytes(data))
    with pytest.raises(DatasetError, match=r"record 1 .*length"):
        list(read_tfrecord(path))
    path.write_bytes(raw_file_bytes[: starts[4] + 100])
    with pytest.raises(DatasetError, match=r"record 4 .*truncated"):
        list(read_tfrecord(path))
    path.write_bytes(gzip.compress(raw_file_bytes, compresslevel=1)[:-5000])
    with pytest.raises(DatasetError, match=r"bad\.tfrecords: record 4"):
        list(read_tfrecord(path))


def test_wrong_sizes_and_features_are_reported(tmp_path):
    image = (np.zeros(300, np.uint8).tobytes(), "byte")
    path = tmp_path / "small.tfrecords"
    _write_tfrecord(path, [{"image": image, "mask": image, "visibility": ([1.0] * 11, "float")}])
    with pytest.raises(DatasetError, match=r"small\.tfrecords: record 0 .*'image' holds 300 bytes"):
        convert_clevr6(path, tmp_path / "out", max_objects=10, progress=False)
    _write_tfrecord(path, [{"x": ([1.0], "float")}])
    with pytest.raises(DatasetError, match="no 'visibility' feature"):
        convert_clevr6(path, tmp_path / "out2", progress=False)
    _write_tfrecord(path, [{"visibility": ([b"\x01"] * 11, "byte")}])
    with pytest.raises(DatasetError, match="'visibility' is a bytes_list, expected a float_list"):
        convert_clevr6(path, tmp_path / "out3", progress=False)
    data = b"\x0a\x05abc"  # a message running past its end
    length = struct.pack("<Q", len(data))
    path.write_bytes(length + masked_crc32c(length) + data + masked_crc32c(data))
    with pytest.raises(DatasetError, match="record 0 .*not a valid tf.train.Example"):
        convert_clevr6(path, tmp_path / "out4", progress=False)


def test_rerun_skips_existing_outputs_and_refuses_other_settings(gz_file, tmp_path):
    out = tmp_path / "clevr6"
    convert_clevr6(gz_file, out, resolution=64, progress=False)
    sentinel = out / "masks" / "clevr6_000001.png"
    Image.new("L", (64, 64), 0).save(sentinel)
    (out / "images" / "clevr6_000002.png").unlink()  # as if interrupted before this file
    info = convert_clevr6(gz_file, out, resolution=64, progress=False)
    assert info["counts"]["already_present"] == 2 and info["counts"]["written"] == 1
    assert info["complete"]
    assert np.asarray(Image.open(sentinel)).max() == 0  # kept, not rewritten
    assert (out / "images" / "clevr6_000002.png").is_file()
    assert not [p for p in out.rglob(".*")]  # no temporary files left
    with pytest.raises(DatasetError, match="other parameters"):
        convert_clevr6(gz_file, out, resolution=32, progress=False)
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(DatasetError, match="not empty"):
        convert_clevr6(gz_file, other, progress=False)


def test_cli(gz_file, tmp_path, capsys):
    out = tmp_path / "cli"
    assert main([str(gz_file), str(out), "--max-scenes", "3", "--resolution", "32"]) == 0
    assert "kept 2 of 3 records" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        main([str(gz_file), str(out), "--resolution", "4"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    # In-process: a `python -m` subprocess would spend ~3 s importing torch (comgan_lib.data).
    missing = tmp_path / "missing.tfrecords"
    assert main([str(missing), str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert "missing.tfrecords" in err and "Traceback" not in err
    assert not (tmp_path / "x").exists()
