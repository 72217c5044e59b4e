"""The fast PNG reader returns exactly what PIL returns, for every layout writers produce."""
import struct
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image

from libs.errors import VOSError
from libs.evaluation.png import _decode_fast, read_label_png


def labels(shape=(37, 53), top=4, seed=0):
    """Blocky label map (runs of equal values, like a mask) with values 0..top."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, top + 1, size=(shape[0] // 4 + 1, shape[1] // 4 + 1)).astype(np.uint8)
    return np.kron(small, np.ones((4, 4), dtype=np.uint8))[:shape[0], :shape[1]]


def png_chunk(kind: bytes, data: bytes) -> bytes:
    """One PNG chunk with its CRC."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def handmade_png(rows: np.ndarray, filters) -> bytes:
    """8-bit greyscale PNG whose row r is stored with filter filters[r] (0 None, 1 Sub, 2 Up)."""
    height, width = rows.shape
    raw = bytearray()
    previous = np.zeros(width, dtype=np.int32)
    for r in range(height):
        row = rows[r].astype(np.int32)
        if filters[r] == 1:
            stored = (row - np.r_[0, row[:-1]]) % 256
        elif filters[r] == 2:
            stored = (row - previous) % 256
        else:
            stored = row
        raw += bytes([filters[r]]) + stored.astype(np.uint8).tobytes()
        previous = row
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", zlib.compress(bytes(raw)))
            + png_chunk(b"IEND", b""))


def assert_same_as_pil(path):
    """read_label_png(path) equals np.array(Image.open(path)) in values and dtype."""
    expected = np.array(Image.open(path))
    got = read_label_png(path)
    assert got.dtype == expected.dtype and got.shape == expected.shape
    assert np.array_equal(got, expected)


def test_palette_png_with_full_palette_takes_the_fast_path(tmp_path):
    path = str(tmp_path / "p.png")
    image = Image.fromarray(labels(top=9), mode="P")
    image.putpalette([v % 256 for v in range(768)])
    image.save(path)
    assert _decode_fast(open(path, "rb").read()) is not None
    assert_same_as_pil(path)


@pytest.mark.parametrize("colours", [2, 4, 16])
def test_small_palettes_use_fewer_bits_and_still_match(tmp_path, colours):
    path = str(tmp_path / "p.png")
    image = Image.fromarray(labels(top=colours - 1), mode="P")
    image.putpalette(list(range(3 * colours)))
    image.save(path)
    assert_same_as_pil(path)


def test_handmade_none_sub_up_rows_are_decoded_fast(tmp_path):
    rows = labels((12, 21), top=200, seed=3)
    filters = [2, 0, 1, 2, 2, 1, 0, 2, 1, 1, 2, 2]  # starts with Up (previous row = zeros)
    path = tmp_path / "h.png"
    path.write_bytes(handmade_png(rows, filters))
    assert np.array_equal(_decode_fast(path.read_bytes()), rows)
    assert_same_as_pil(str(path))


@pytest.mark.parametrize("writer", ["pil_L", "cv2", "pil_16bit", "pil_1bit", "rgb"])
def test_other_writers_match_pil(tmp_path, writer):
    path = str(tmp_path / f"{writer}.png")
    data = labels(top=5)
    if writer == "pil_L":
        Image.fromarray(data, mode="L").save(path)
    elif writer == "cv2":
        cv2.imwrite(path, data)
    elif writer == "pil_16bit":
        Image.fromarray(data.astype(np.uint16) * 300).save(path)
    elif writer == "pil_1bit":
        Image.fromarray(data > 2).save(path)
    else:
        Image.fromarray(np.stack([data] * 3, axis=-1)).save(path)
    assert_same_as_pil(path)


def test_unreadable_files_raise_vos_error(tmp_path):
    with pytest.raises(VOSError, match="cannot read"):
        read_label_png(str(tmp_path / "missing.png"))
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png at all")
    with pytest.raises(VOSError, match="bad.png"):
        read_label_png(str(bad))
