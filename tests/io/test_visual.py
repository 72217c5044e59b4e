"""Tests of libs/io/visual.py: mask overlays and probability heat maps."""
import numpy as np
import pytest

from libs.io import davis_palette, heatmap_overlay, overlay


def test_overlay_tints_objects_and_outlines_them():
    frame = np.full((7, 7, 3), 100, np.uint8)
    labels = np.zeros((7, 7), np.uint8)
    labels[1:6, 1:6] = 1
    out = overlay(frame, labels, davis_palette(), alpha=0.5)
    assert out.dtype == np.uint8 and out.shape == frame.shape
    assert np.array_equal(out[0, 0], [100, 100, 100])          # background untouched
    assert np.array_equal(out[3, 3], [114, 50, 50])            # 0.5 * 100 + 0.5 * (128, 0, 0)
    assert np.array_equal(out[1, 3], [128, 0, 0])              # contour in the object's colour
    assert np.array_equal(out[3, 1], [128, 0, 0])


def test_overlay_rejects_mismatched_sizes():
    with pytest.raises(ValueError, match="labels shape"):
        overlay(np.zeros((4, 4, 3), np.uint8), np.zeros((4, 5), np.uint8), davis_palette())


def test_heatmap_uses_jet_blended_half():
    frame = np.zeros((2, 2, 3), np.uint8)
    prob = np.array([[0.0, 1.0], [np.nan, 0.5]], np.float32)
    out = heatmap_overlay(frame, prob)
    assert out[0, 0].tolist() == [0, 0, 64]      # JET(0) is dark blue (0, 0, 128)
    assert out[0, 1].tolist() == [64, 0, 0]      # JET(1) is dark red (128, 0, 0)
    assert out[1, 0].tolist() == [0, 0, 64]      # NaN counts as 0
    assert out[1, 1, 1] > 50                     # the middle of JET is green-ish
