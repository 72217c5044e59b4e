"""Tests of libs/io/masks.py: the demo's first-frame mask in its common forms becomes object labels."""
import numpy as np
import pytest
from PIL import Image

from libs.errors import VOSError
from libs.io import davis_palette, load_first_mask, write_indexed_png


def _save(tmp_path, name, array):
    path = str(tmp_path / name)
    Image.fromarray(array).save(path)
    return path


def _square(value, shape=(8, 8), dtype=np.uint8):
    array = np.zeros(shape, dtype)
    array[2:5, 3:6] = value
    return array


def test_binary_255_becomes_object_one(tmp_path):
    labels, palette, note = load_first_mask(_save(tmp_path, "m.png", _square(255)))
    assert labels.dtype == np.uint8 and np.array_equal(labels, _square(1))
    assert palette == davis_palette()
    assert "binary" in note and "object 1" in note


def test_binary_01_is_kept_without_note(tmp_path):
    labels, _, note = load_first_mask(_save(tmp_path, "m.png", _square(1)))
    assert np.array_equal(labels, _square(1)) and note is None


def test_one_bit_image_becomes_object_one(tmp_path):
    path = str(tmp_path / "bits.png")
    Image.fromarray(_square(255)).convert("1").save(path)
    labels, _, _ = load_first_mask(path)
    assert np.array_equal(labels, _square(1))


def test_grey_levels_are_numbered_by_value(tmp_path):
    grey = np.zeros((6, 6), np.uint8)
    grey[0, :2], grey[2, :2], grey[4, :2] = 255, 85, 170
    labels, _, note = load_first_mask(_save(tmp_path, "m.png", grey))
    assert labels[0, 0] == 3 and labels[2, 0] == 1 and labels[4, 0] == 2 and labels[5, 5] == 0
    assert "85->1" in note and "170->2" in note and "255->3" in note


def test_soft_greyscale_mask_is_thresholded(tmp_path):
    ramp = np.tile(np.arange(0, 256, 8, dtype=np.uint8), (4, 1))  # 32 grey levels
    labels, _, note = load_first_mask(_save(tmp_path, "m.png", ramp))
    assert np.array_equal(labels, (ramp >= 128).astype(np.uint8))
    assert "thresholded at 128" in note


def test_rgb_colours_become_objects_in_order_of_appearance(tmp_path):
    rgb = np.zeros((6, 6, 3), np.uint8)
    rgb[0, 4] = (250, 10, 10)   # red appears first (row 0)
    rgb[3, 1] = (10, 10, 250)   # blue second
    rgb[5, 5] = (250, 10, 10)
    labels, palette, note = load_first_mask(_save(tmp_path, "m.png", rgb))
    assert labels[0, 4] == 1 and labels[5, 5] == 1 and labels[3, 1] == 2 and labels.sum() == 4
    assert palette[3:6] == [250, 10, 10] and palette[6:9] == [10, 10, 250]
    assert "2 colours became objects 1..2" in note


def test_rgb_with_davis_colours_keeps_palette_ids(tmp_path):
    colours = np.array(davis_palette(), np.uint8).reshape(256, 3)
    ids = np.array([[0, 2, 2], [5, 0, 0]])
    labels, palette, note = load_first_mask(_save(tmp_path, "m.png", colours[ids]))
    assert np.array_equal(labels, ids) and palette == davis_palette() and "DAVIS palette" in note


def test_white_on_black_rgb_is_binary(tmp_path):
    rgb = np.repeat(_square(255)[..., None], 3, axis=2)
    labels, _, note = load_first_mask(_save(tmp_path, "m.png", rgb))
    assert np.array_equal(labels, _square(1)) and "binary" in note


def test_transparent_pixels_are_background(tmp_path):
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., :3] = (200, 30, 30)
    rgba[:2, :, 3] = 255           # only the top half is opaque
    labels, _, _ = load_first_mask(_save(tmp_path, "m.png", rgba))
    assert labels[:2].tolist() == [[1] * 4] * 2 and not labels[2:].any()


def test_indexed_png_keeps_indices_and_palette(tmp_path):
    ids = np.array([[0, 3], [7, 3]], np.uint8)
    palette = [0, 0, 0] + [9, 8, 7] * 255
    write_indexed_png(str(tmp_path / "p.png"), ids, palette)
    labels, read_palette, note = load_first_mask(str(tmp_path / "p.png"))
    assert np.array_equal(labels, ids) and read_palette == palette and note is None


def test_empty_and_noisy_masks_are_errors(tmp_path):
    with pytest.raises(VOSError, match="empty.png is empty"):
        load_first_mask(_save(tmp_path, "empty.png", np.zeros((4, 4), np.uint8)))
    noisy = np.random.default_rng(0).integers(1, 256, size=(16, 16, 3)).astype(np.uint8)
    with pytest.raises(VOSError, match="noisy.png has .* distinct colours"):
        load_first_mask(_save(tmp_path, "noisy.png", noisy))
    with pytest.raises(VOSError, match="missing.png does not exist"):
        load_first_mask(str(tmp_path / "missing.png"))
