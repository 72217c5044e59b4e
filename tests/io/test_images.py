"""Tests of libs/io/images.py: palette, frame and mask reading, indexed PNG and image writing."""
import os

import numpy as np
import pytest
from PIL import Image

from libs.errors import VOSError
from libs.io import davis_palette, read_frame, read_mask, write_image, write_indexed_png


def test_davis_palette_is_the_voc_colour_map():
    palette = davis_palette()
    assert len(palette) == 768
    colours = np.array(palette).reshape(256, 3)
    assert colours[:6].tolist() == [[0, 0, 0], [128, 0, 0], [0, 128, 0], [128, 128, 0], [0, 0, 128],
                                    [128, 0, 128]]
    assert colours[255].tolist() == [224, 224, 192]
    assert len({tuple(c) for c in colours}) == 256


def test_indexed_png_round_trip_keeps_labels_and_palette(tmp_path):
    labels = np.random.default_rng(0).integers(0, 6, size=(20, 30)).astype(np.uint8)
    path = str(tmp_path / "out" / "00000.png")
    write_indexed_png(path, labels, davis_palette())
    with Image.open(path) as img:
        assert img.mode == "P"
    read, palette = read_mask(path)
    assert read.dtype == np.uint8 and np.array_equal(read, labels)
    assert palette == davis_palette()


def test_short_custom_palette_is_padded(tmp_path):
    path = str(tmp_path / "m.png")
    write_indexed_png(path, np.array([[0, 1], [1, 0]], np.uint8), [0, 0, 0, 10, 20, 30])
    _, palette = read_mask(path)
    assert palette[:6] == [0, 0, 0, 10, 20, 30] and len(palette) == 768 and palette[6:] == [0] * 762


def test_write_indexed_png_rejects_bad_shape(tmp_path):
    with pytest.raises(ValueError):
        write_indexed_png(str(tmp_path / "m.png"), np.zeros((2, 2, 3), np.uint8), davis_palette())
    assert os.listdir(tmp_path) == []


def test_read_mask_greyscale_and_rgb(tmp_path):
    grey = np.array([[0, 3], [7, 0]], np.uint8)
    Image.fromarray(grey).save(tmp_path / "grey.png")
    labels, palette = read_mask(str(tmp_path / "grey.png"))
    assert np.array_equal(labels, grey) and palette is None
    colours = np.array(davis_palette()).reshape(256, 3).astype(np.uint8)
    rgb = colours[np.array([[0, 2], [5, 2]])]  # DAVIS colours of labels 2 and 5
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    labels, _ = read_mask(str(tmp_path / "rgb.png"))
    assert labels.tolist() == [[0, 2], [5, 2]]
    Image.fromarray(np.full((2, 2, 3), 7, np.uint8)).save(tmp_path / "odd.png")
    with pytest.raises(VOSError, match="odd.png.*outside the DAVIS palette"):
        read_mask(str(tmp_path / "odd.png"))


def test_read_frame_converts_to_rgb(tmp_path):
    rgb = np.random.default_rng(1).integers(0, 256, size=(8, 10, 3)).astype(np.uint8)
    Image.fromarray(rgb).save(tmp_path / "f.png")
    frame = read_frame(str(tmp_path / "f.png"))
    assert frame.dtype == np.uint8 and np.array_equal(frame, rgb)
    Image.fromarray(rgb[..., 0]).save(tmp_path / "g.png")
    grey = read_frame(str(tmp_path / "g.png"))
    assert grey.shape == (8, 10, 3) and np.array_equal(grey[..., 2], rgb[..., 0])


def test_missing_and_corrupt_files_name_the_file(tmp_path):
    with pytest.raises(VOSError, match="frame .*nothere.jpg does not exist"):
        read_frame(str(tmp_path / "nothere.jpg"))
    (tmp_path / "junk.jpg").write_bytes(b"not an image at all")
    with pytest.raises(VOSError, match="cannot read frame .*junk.jpg"):
        read_frame(str(tmp_path / "junk.jpg"))
    (tmp_path / "junk.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(VOSError, match="cannot read mask .*junk.png"):
        read_mask(str(tmp_path / "junk.png"))


def test_truncated_jpeg_is_an_error(tmp_path):
    rgb = np.random.default_rng(2).integers(0, 256, size=(64, 64, 3)).astype(np.uint8)
    write_image(str(tmp_path / "full.jpg"), rgb)
    data = (tmp_path / "full.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(VOSError, match="cut.jpg"):
        read_frame(str(tmp_path / "cut.jpg"))


def test_write_image_formats_and_extension(tmp_path):
    rgb = np.random.default_rng(3).integers(0, 256, size=(16, 24, 3)).astype(np.uint8)
    write_image(str(tmp_path / "a.png"), rgb)
    assert np.array_equal(read_frame(str(tmp_path / "a.png")), rgb)
    smooth = np.tile(np.linspace(0, 255, 24, dtype=np.uint8)[None, :, None], (16, 1, 3))
    write_image(str(tmp_path / "a.jpg"), smooth)
    with Image.open(tmp_path / "a.jpg") as img:
        assert img.format == "JPEG"
    assert np.abs(read_frame(str(tmp_path / "a.jpg")).astype(int) - smooth).max() <= 8
    with pytest.raises(VOSError, match="a.gif.*jpg"):
        write_image(str(tmp_path / "a.gif"), rgb)


def test_failed_write_keeps_old_file_and_leaves_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "keep.png"
    write_indexed_png(str(path), np.ones((4, 4), np.uint8), davis_palette())
    before = path.read_bytes()

    def broken_save(self, fp, *args, **kwargs):
        with open(fp, "wb") as handle:
            handle.write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(VOSError, match="cannot write .*keep.png: No space left"):
        write_indexed_png(str(path), np.zeros((4, 4), np.uint8), davis_palette())
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["keep.png"]
