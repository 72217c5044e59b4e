"""STATIC data: the image-folder reader and clips synthesised from one image by per-frame warps."""
import os

import numpy as np
import pytest
import torch
from PIL import Image

from libs.dataset.registry import get_dataset_class
from libs.dataset.static import StaticClipSynth, StaticImages, mask_to_labels
from libs.errors import VOSError
from libs.io import read_mask, write_image, write_indexed_png

H, W = 48, 64


def bright_box_image(seed=0):
    """A dark noisy image [H, W, 3] with two bright boxes and their labels [H, W] (ids 1 and 2)."""
    rng = np.random.default_rng(seed)
    labels = np.zeros((H, W), np.uint8)
    labels[8:30, 8:28] = 1
    labels[26:44, 36:58] = 2
    image = rng.integers(0, 50, (H, W, 3)).astype(np.uint8)
    image[labels > 0] = rng.integers(205, 256, (int((labels > 0).sum()), 3))
    return image, labels


def make_static_folder(root, stems=("a", "b"), image_ext=".png"):
    """ROOT/JPEGImages/<stem><image_ext> and ROOT/Annotations/<stem>.png for every stem."""
    for i, stem in enumerate(stems):
        image, labels = bright_box_image(i)
        write_image(os.path.join(root, "JPEGImages", stem + image_ext), image)
        write_indexed_png(os.path.join(root, "Annotations", stem + ".png"), labels, None)
    return root


def test_reader_pairs_images_with_masks(tmp_path):
    root = make_static_folder(str(tmp_path / "STATIC"), stems=("cat", "dog"))
    write_image(os.path.join(root, "JPEGImages", "emu.jpg"), bright_box_image(5)[0])
    write_indexed_png(os.path.join(root, "Annotations", "emu.png"), bright_box_image(5)[1], None)
    reader = get_dataset_class("STATIC")(root, "train")
    assert isinstance(reader, StaticImages) and StaticImages.subdir == "STATIC"
    assert [v.name for v in reader.videos] == ["cat", "dog", "emu"]
    emu = reader.videos[2]
    assert emu.frames == [os.path.join(root, "JPEGImages", "emu.jpg")] and len(emu) == 1
    assert emu.annotations == {0: os.path.join(root, "Annotations", "emu.png")} == emu.given


def test_missing_annotations_folder_explains_the_layout(tmp_path):
    root = tmp_path / "STATIC"
    (root / "JPEGImages").mkdir(parents=True)
    with pytest.raises(VOSError, match=r"Annotations is missing.*JPEGImages/<name>.*see DATASET.md"):
        StaticImages(str(root))


def test_image_without_mask_is_named(tmp_path):
    root = make_static_folder(str(tmp_path / "STATIC"))
    write_image(os.path.join(root, "JPEGImages", "lonely.jpg"), bright_box_image()[0])
    with pytest.raises(VOSError, match=r"1 image\(s\) without a partner.*'lonely'.*see DATASET.md"):
        StaticImages(root)


def test_empty_folder_is_an_error(tmp_path):
    for sub in ("JPEGImages", "Annotations"):
        (tmp_path / sub).mkdir()
    with pytest.raises(VOSError, match="no .jpg/.jpeg/.png images"):
        StaticImages(str(tmp_path))


def test_binary_masks_become_one_object(tmp_path):
    labels = np.zeros((H, W), np.uint8)
    labels[5:20, 5:30] = 255
    path = str(tmp_path / "m.png")
    Image.fromarray(labels, mode="L").save(path)
    mask, palette = read_mask(path)
    assert np.array_equal(mask_to_labels(mask, palette), (labels == 255).astype(np.uint8))
    indexed = bright_box_image()[1]
    indexed[0, 0] = 255   # void in an indexed mask stays void
    assert np.array_equal(mask_to_labels(indexed, [0] * 768), indexed)


def test_synthesised_frames_differ_but_stay_aligned():
    image, labels = bright_box_image()
    torch.manual_seed(0)
    frames, masks = StaticClipSynth(4)(image, labels)
    assert len(frames) == len(masks) == 4
    for frame, mask in zip(frames, masks):
        assert frame.shape == (H, W, 3) and frame.dtype == np.uint8 and mask.shape == (H, W)
        assert set(np.unique(mask)) <= {0, 1, 2} and (mask == 1).any() and (mask == 2).any()
        bright = frame.mean(axis=2) > 128
        assert bright[mask > 0].mean() > 0.95 and (mask > 0)[bright].mean() > 0.95
    for t in range(1, 4):
        assert not np.array_equal(frames[t], frames[0]) and not np.array_equal(masks[t], masks[0])


def test_synthesis_is_reproducible_under_a_torch_seed():
    image, labels = bright_box_image()
    torch.manual_seed(3)
    first = StaticClipSynth(2)(image, labels)
    torch.manual_seed(3)
    again = StaticClipSynth(2)(image, labels)
    assert all(np.array_equal(a, b) for a, b in zip(first[0] + first[1], again[0] + again[1]))


def test_synth_rejects_mismatched_sizes_and_bad_length():
    image, labels = bright_box_image()
    with pytest.raises(VOSError, match="must match"):
        StaticClipSynth(3)(image, labels[:40])
    with pytest.raises(VOSError, match="sampled_frames"):
        StaticClipSynth(0)
