"""Convert DeepMind's CLEVR-with-masks TFRecord file into a CLEVR6 image folder (no TensorFlow).

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
    shape, color) are ignored. The TFRecord framing (CRCs verified), the gzip detection and the
    protobuf wire format are handled here in plain Python and numpy.

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
import json
import os
import struct
import sys
import zlib
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import numpy as np
from PIL import Image

from comgan_lib.errors import DatasetError, UserError

IMAGE_SHAPE = (240, 320, 3)  # height, width, channels
NUM_ENTITIES = 11  # mask slots per scene: background + up to 10 objects
MASK_SHAPE = (NUM_ENTITIES, 240, 320, 1)
IODINE_CROP = (64, 29, 256, 221)  # (left, top, right, bottom): rows 29:221, columns 64:256
DEFAULT_MAX_SCENES = 70_000
FILE_PREFIX = "clevr6_"
CONVERTER_NAME = "comgan_lib.data.clevr6"
_GZIP_MAGIC = b"\x1f\x8b"

# ----------------------------------------------------------------------------------------------
# CRC-32C (Castagnoli), reflected, as used by the TFRecord framing.

_CRC32C_POLY = 0x82F63B78  # 0x1EDC6F41 bit-reversed
_MASK_DELTA = 0xA282EAD8
_M32 = 0xFFFFFFFF


def _make_crc_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ _CRC32C_POLY if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_CRC_TABLE = _make_crc_table()
_CRC_TABLE_NP = np.array(_CRC_TABLE, dtype=np.uint32)
_LANE_BYTES = 128  # bytes per lane in the vectorised CRC (fastest of 32..4096 here)
_VECTOR_MIN = 4096  # shorter inputs use the plain table loop


def _crc_register(data, crc: int) -> int:
    """Feed ``data`` to the CRC register ``crc`` (no pre- or post-inversion): the table loop."""
    table = _CRC_TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc


_ZERO_TABLES: dict[int, np.ndarray] = {}  # n -> [4, 256] lookup of "feed n zero bytes"


def _zero_bytes_tables(n: int) -> np.ndarray:
    """Byte-wise lookup tables of the linear map "feed ``n`` zero bytes to the register"."""
    if n not in _ZERO_TABLES:
        if n == 1:
            images = [_crc_register(b"\x00", 1 << bit) for bit in range(32)]
        elif n % 2 == 0:  # the map for n is the map for n / 2 applied twice
            half = _zero_bytes_tables(n // 2)
            images = [_apply_tables(half, _apply_tables(half, 1 << bit)) for bit in range(32)]
        else:
            raise ValueError("zero-byte operators are built for 1 and even lengths only")
        byte_values = np.arange(256)
        tables = np.zeros((4, 256), dtype=np.uint32)
        for k in range(4):
            for bit in range(8):
                has_bit = (byte_values >> bit) & 1 == 1
                tables[k][has_bit] ^= np.uint32(images[8 * k + bit])
        _ZERO_TABLES[n] = tables
    return _ZERO_TABLES[n]


def _apply_tables(tables: np.ndarray, value):
    """Apply a map given by ``_zero_bytes_tables`` to an int or a uint32 array."""
    result = tables[0][value & 0xFF]
    for k in (1, 2, 3):
        result = result ^ tables[k][(value >> (8 * k)) & 0xFF]
    return int(result) if isinstance(value, int) else result


def _crc_register_vectorised(arr: np.ndarray) -> int:
    """The register after feeding ``arr`` (uint8) to a zero register, computed lane-parallel.

    The data is cut into lanes of ``_LANE_BYTES`` bytes (zeros are prepended to fill the first
    lane: from a zero register, leading zero bytes change nothing), every lane's register is
    computed at once with numpy, and neighbouring lanes are merged pairwise: the register of
    ``A + B`` is "``A``'s register shifted by ``len(B)`` zero bytes" xor ``B``'s register.
    """
    m = _LANE_BYTES
    lanes = -(-arr.size // m)
    padded = np.zeros(lanes * m, dtype=np.uint8)
    padded[padded.size - arr.size :] = arr
    # Each lane as little-endian 32-bit words; xoring a whole word into the register and then
    # taking four one-byte table steps is the same as four plain byte steps.
    words = np.ascontiguousarray(padded.view("<u4").reshape(lanes, m // 4).T)
    state = np.zeros(lanes, dtype=np.uint32)
    index = np.empty_like(state)
    looked_up = np.empty_like(state)
    for word in words:
        np.bitwise_xor(state, word, out=state)
        for _ in range(4):
            np.bitwise_and(state, 0xFF, out=index)
            np.take(_CRC_TABLE_NP, index, out=looked_up)
            np.right_shift(state, 8, out=state)
            np.bitwise_xor(state, looked_up, out=state)
    block = m
    while state.size > 1:
        if state.size % 2:  # a zero lane in front is a run of leading zero bytes: harmless
            state = np.concatenate([np.zeros(1, dtype=np.uint32), state])
        state = _apply_tables(_zero_bytes_tables(block), state[0::2]) ^ state[1::2]
        block *= 2
    return int(state[0])


def crc32c(data) -> int:
    """CRC-32C (Castagnoli) of ``data`` (bytes-like): ``crc32c(b"123456789") == 0xE3069283``."""
    view = memoryview(data).cast("B")
    if len(view) < _VECTOR_MIN:
        return _crc_register(view, _M32) ^ _M32
    arr = np.frombuffer(view, dtype=np.uint8).copy()
    arr[:4] ^= 0xFF  # an all-ones start register is the same as inverting the first 4 bytes
    return _crc_register_vectorised(arr) ^ _M32


def masked_crc32c(data) -> int:
    """The TFRecord checksum: CRC-32C rotated right by 15 bits plus a constant (mod 2**32)."""
    crc = crc32c(data)
    return ((((crc >> 15) | (crc << 17)) & _M32) + _MASK_DELTA) & _M32


# ----------------------------------------------------------------------------------------------
# TFRecord files.


def frame_record(data: bytes) -> bytes:
    """One TFRecord: length, masked CRC of the length, ``data``, masked CRC of ``data``."""
    length = struct.pack("<Q", len(data))
    return (
        length
        + struct.pack("<I", masked_crc32c(length))
        + bytes(data)
        + struct.pack("<I", masked_crc32c(data))
    )


def write_tfrecord(path, records: Iterable[bytes], compress: bool = True) -> None:
    """Write ``records`` as a TFRecord file, GZIP-compressed (like DeepMind's) or plain."""
    with gzip.open(path, "wb", compresslevel=1) if compress else open(path, "wb") as f:
        for data in records:
            f.write(frame_record(data))


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == _GZIP_MAGIC


def _read_exact(f, n: int) -> bytes:
    chunks, got = [], 0
    while got < n:
        chunk = f.read(n - got)
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def read_tfrecord(path, verify_crc: bool = True) -> Iterator[bytes]:
    """Yield the data of each record of a TFRecord file (gzip or plain, detected), in order.

    Raises DatasetError naming the file and the record (counted from 0) on a missing or
    unreadable file, a bad checksum, a truncated record or broken compression.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"TFRecord file {path} does not exist")
    try:
        compressed = _is_gzip(path)
        f = gzip.open(path, "rb") if compressed else open(path, "rb")
    except OSError as e:
        raise DatasetError(f"cannot read TFRecord file {path}: {e}") from e
    index = 0
    with f:
        while True:
            where = f"{path}: record {index} (counting from 0)"
            try:
                header = _read_exact(f, 12)
                if not header:
                    return
                if len(header) < 12:
                    raise DatasetError(f"{where} is truncated (incomplete header)")
                length, length_crc = struct.unpack("<QI", header)
                if verify_crc and masked_crc32c(header[:8]) != length_crc:
                    raise DatasetError(f"{where}: CRC mismatch of the length field (corrupt file)")
                body = _read_exact(f, length + 4)
                if len(body) < length + 4:
                    raise DatasetError(
                        f"{where} is truncated ({len(body)} of {length + 4} bytes present)"
                    )
            except (EOFError, zlib.error, OSError) as e:  # gzip.BadGzipFile is an OSError
                raise DatasetError(f"{where}: cannot decompress ({e})") from e
            data = body[:length]
            if verify_crc and masked_crc32c(data) != struct.unpack("<I", body[length:])[0]:
                raise DatasetError(f"{where}: CRC mismatch of the data (corrupt file)")
            yield data
            index += 1


# ----------------------------------------------------------------------------------------------
# Protocol buffers: tf.train.Example, just enough of the wire format.


class ProtoError(ValueError):
    """Malformed protobuf data (the converter reports it as a DatasetError)."""


def _varint(buf: memoryview, pos: int, end: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= end:
            raise ProtoError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise ProtoError("varint longer than 10 bytes")


def _fields(buf: memoryview, start: int = 0, end: int | None = None):
    """Yield ``(field number, wire type, value)`` for each field of a message.

    ``value`` is the integer of a varint (wire type 0) and the ``(start, end)`` span of the
    payload for 64-bit (1), length-delimited (2) and 32-bit (5) fields.
    """
    end = len(buf) if end is None else end
    pos = start
    while pos < end:
        key, pos = _varint(buf, pos, end)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise ProtoError("field number 0")
        if wire == 0:
            value, pos = _varint(buf, pos, end)
            yield number, wire, value
            continue
        if wire == 2:
            size, pos = _varint(buf, pos, end)
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
        else:
            raise ProtoError(f"unsupported wire type {wire} (field {number})")
        if pos + size > end:
            raise ProtoError(f"field {number} runs past the end of its message")
        yield number, wire, (pos, pos + size)
        pos += size


def _to_int64(value: int) -> int:
    value &= (1 << 64) - 1
    return value - (1 << 64) if value >> 63 else value


class Feature:
    """One ``tf.train.Feature``, decoded on demand.

    ``kind`` is "bytes_list", "float_list", "int64_list" or "empty" (no list set).
    """

    _KINDS = {1: "bytes_list", 2: "float_list", 3: "int64_list"}

    def __init__(self, kind: str, body: memoryview):
        self.kind = kind
        self._body = body

    def __repr__(self) -> str:
        return f"Feature({self.kind}, {len(self._body)} bytes)"

    def _expect(self, kind: str) -> None:
        if self.kind != kind and self.kind != "empty":
            raise ProtoError(f"expected a {kind}, found a {self.kind}")

    def bytes_values(self) -> list[bytes]:
        """The values of a bytes_list."""
        self._expect("bytes_list")
        body = self._body
        values = []
        for number, wire, value in _fields(body):
            if number == 1:
                if wire != 2:
                    raise ProtoError(f"bytes_list value with wire type {wire}")
                values.append(bytes(body[value[0] : value[1]]))
        return values

    def as_uint8(self) -> np.ndarray:
        """A bytes_list as one flat uint8 array: the bytes of its single value or, as in
        DeepMind's files, one byte from each of its single-byte values."""
        self._expect("bytes_list")
        body = self._body
        if len(body) % 3 == 0 and len(body) > 3:  # fast path: every value is tag 0x0A, size 1
            triples = np.frombuffer(body, dtype=np.uint8).reshape(-1, 3)
            if (triples[:, 0] == 0x0A).all() and (triples[:, 1] == 1).all():
                return np.ascontiguousarray(triples[:, 2])
        values = self.bytes_values()
        if len(values) == 1:
            return np.frombuffer(values[0], dtype=np.uint8)
        if all(len(v) == 1 for v in values):
            return np.frombuffer(b"".join(values), dtype=np.uint8)
        lengths = sorted({len(v) for v in values})
        raise ProtoError(f"{len(values)} byte strings of lengths {lengths[:5]}, not raw bytes")

    def floats(self) -> np.ndarray:
        """The values of a float_list (packed or not) as float32."""
        self._expect("float_list")
        body = self._body
        parts = []
        for number, wire, value in _fields(body):
            if number != 1:
                continue
            if wire not in (2, 5):
                raise ProtoError(f"float_list value with wire type {wire}")
            start, end = value
            if (end - start) % 4:
                raise ProtoError("packed floats of a length not divisible by 4")
            parts.append(np.frombuffer(body[start:end], dtype="<f4"))
        return np.concatenate(parts).astype(np.float32) if parts else np.zeros(0, np.float32)

    def ints(self) -> list[int]:
        """The values of an int64_list (packed or not)."""
        self._expect("int64_list")
        body = self._body
        values = []
        for number, wire, value in _fields(body):
            if number != 1:
                continue
            if wire == 0:
                values.append(_to_int64(value))
            elif wire == 2:
                pos, end = value
                while pos < end:
                    v, pos = _varint(body, pos, end)
                    values.append(_to_int64(v))
            else:
                raise ProtoError(f"int64_list value with wire type {wire}")
        return values


def _parse_feature(body: memoryview) -> Feature:
    feature = Feature("empty", body[0:0])
    for number, wire, value in _fields(body):
        if number in Feature._KINDS:
            if wire != 2:
                raise ProtoError(f"Feature field {number} with wire type {wire}")
            feature = Feature(Feature._KINDS[number], body[value[0] : value[1]])
    return feature


def parse_example(data) -> dict[str, Feature]:
    """Decode a serialized ``tf.train.Example`` into ``{name: Feature}`` (values on demand).

    Raises ProtoError on malformed data.
    """
    buf = memoryview(data).cast("B")
    features: dict[str, Feature] = {}
    for number, wire, value in _fields(buf):
        if number != 1:
            continue
        if wire != 2:
            raise ProtoError("Example.features is not a message")
        for f_number, f_wire, f_value in _fields(buf, *value):  # Features: the map entries
            if f_number != 1:
                continue
            if f_wire != 2:
                raise ProtoError("Features.feature entry is not a message")
            key, feature = "", Feature("empty", buf[0:0])
            for e_number, e_wire, e_value in _fields(buf, *f_value):
                if e_wire != 2 and e_number in (1, 2):
                    raise ProtoError("map entry key or value is not length-delimited")
                if e_number == 1:
                    try:
                        key = bytes(buf[e_value[0] : e_value[1]]).decode("utf-8")
                    except UnicodeDecodeError as e:
                        raise ProtoError("feature name is not UTF-8") from e
                elif e_number == 2:
                    feature = _parse_feature(buf[e_value[0] : e_value[1]])
            features[key] = feature
    return features


def _encode_varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _length_delimited(number: int, payload: bytes) -> bytes:
    return _encode_varint(number << 3 | 2) + _encode_varint(len(payload)) + payload


def _encode_feature(value) -> bytes:
    """The serialized ``tf.train.Feature`` message holding ``value``."""
    if isinstance(value, bytes | bytearray | memoryview):
        value = [bytes(value)]
    if isinstance(value, np.ndarray) and value.dtype == np.uint8:
        triples = np.empty((value.size, 3), dtype=np.uint8)
        triples[:, 0], triples[:, 1], triples[:, 2] = 0x0A, 1, value.reshape(-1)
        return _length_delimited(1, triples.tobytes())
    if isinstance(value, float | int) and not isinstance(value, bool):
        value = [value]
    if isinstance(value, np.ndarray):
        if np.issubdtype(value.dtype, np.floating):
            value = [float(v) for v in value.reshape(-1)]
        elif np.issubdtype(value.dtype, np.integer):
            value = [int(v) for v in value.reshape(-1)]
        else:
            raise TypeError(f"cannot encode an array of dtype {value.dtype}")
    value = list(value)
    if value and all(isinstance(v, bytes) for v in value):
        return _length_delimited(1, b"".join(_length_delimited(1, v) for v in value))
    if value and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        packed = b"".join(_encode_varint(v) for v in value)
        return _length_delimited(3, _length_delimited(1, packed))
    if all(isinstance(v, float | int) and not isinstance(v, bool) for v in value):
        packed = struct.pack(f"<{len(value)}f", *value)
        return _length_delimited(2, _length_delimited(1, packed))
    raise TypeError("a feature must hold bytes, ints or floats")


def encode_example(features: Mapping[str, object]) -> bytes:
    """Serialize ``{name: value}`` as a ``tf.train.Example`` (the inverse of parse_example).

    Values: ``bytes`` or a list of bytes (bytes_list); a uint8 numpy array (bytes_list with one
    single-byte value per element, the way DeepMind stores pixels); ints or an integer array
    (packed int64_list); floats or a float array (packed float_list).
    """
    entries = b"".join(
        _length_delimited(
            1,
            _length_delimited(1, name.encode("utf-8"))
            + _length_delimited(2, _encode_feature(value)),
        )
        for name, value in features.items()
    )
    return _length_delimited(1, entries)


# ----------------------------------------------------------------------------------------------
# CLEVR with masks -> CLEVR6 image folder.


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


def _scene_arrays(features: dict[str, Feature], where: str) -> tuple[np.ndarray, np.ndarray]:
    """The image [240, 320, 3] and the masks [11, 240, 320] of a decoded record."""
    arrays = []
    for name, shape in (("image", IMAGE_SHAPE), ("mask", MASK_SHAPE)):
        pixels = _feature(features, name, where).as_uint8()
        expected = int(np.prod(shape))
        if pixels.size != expected:
            raise DatasetError(
                f"{where}: feature {name!r} holds {pixels.size} bytes, expected {expected} "
                f"(shape {list(shape)}); is this the CLEVR-with-masks file?"
            )
        arrays.append(pixels.reshape(shape))
    image, masks = arrays
    return image, masks[..., 0]


def _feature(features: dict[str, Feature], name: str, where: str) -> Feature:
    if name not in features:
        raise DatasetError(
            f"{where} has no {name!r} feature (found: {', '.join(sorted(features)) or 'none'}); "
            "is this the CLEVR-with-masks file?"
        )
    return features[name]


def _count_objects(features: dict[str, Feature], where: str) -> int:
    visibility = _feature(features, "visibility", where).floats()
    if visibility.size != NUM_ENTITIES:
        raise DatasetError(
            f"{where}: feature 'visibility' holds {visibility.size} values, expected {NUM_ENTITIES}"
        )
    return int((visibility[1:] > 0.5).sum())


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
            where = f"{source}: record {index} (counting from 0)"
            counts["records_read"] += 1
            try:
                features = parse_example(data)
                n_objects = _count_objects(features, where)
                histogram[n_objects] = histogram.get(n_objects, 0) + 1
                if not min_objects <= n_objects <= max_objects:
                    counts["skipped_by_object_count"] += 1
                else:
                    counts["kept"] += 1
                    name = f"{FILE_PREFIX}{index:06d}.png"
                    image_path, mask_path = images_dir / name, masks_dir / name
                    if image_path.exists() and mask_path.exists():
                        counts["already_present"] += 1
                    else:
                        rgb, fg = crop_and_resize(*_scene_arrays(features, where), box, resolution)
                        if not mask_path.exists():  # mask first: an image implies its mask
                            _save_png_atomic(fg, mask_path)
                        if not image_path.exists():
                            _save_png_atomic(rgb, image_path)
                        counts["written"] += 1
            except ProtoError as e:
                raise DatasetError(f"{where}: not a valid tf.train.Example ({e})") from e
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
