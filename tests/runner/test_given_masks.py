"""Given masks of single-object sets: merged into one foreground, the DAVIS 2016 package's 0/255 too."""
import numpy as np

from libs.runner.videos import merged_foreground


def test_davis2016_binary_masks_are_foreground_not_void():
    labels = np.array([[0, 255], [255, 0]], dtype=np.uint8)
    assert merged_foreground(labels).tolist() == [[0, 1], [1, 0]]


def test_object_ids_merge_and_void_stays_void():
    labels = np.array([[0, 1, 2], [3, 255, 0]], dtype=np.uint8)
    assert merged_foreground(labels).tolist() == [[0, 1, 1], [1, 255, 0]]
    assert merged_foreground(np.zeros((2, 2), np.uint8)).tolist() == [[0, 0], [0, 0]]
