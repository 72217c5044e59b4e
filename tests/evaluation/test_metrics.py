"""J, F and the statistics on hand-made masks whose values are worked out by hand."""
import math

import numpy as np
import pytest

from libs.evaluation import metrics
from tests.evaluation import reference


def square(shape, top, left, side):
    """Bool mask [H, W] with a side x side square at (top, left)."""
    mask = np.zeros(shape, dtype=bool)
    mask[top:top + side, left:left + side] = True
    return mask


def test_boundary_radius_follows_the_image_diagonal():
    # 480x854: diagonal 979.65 -> 7.84 -> 8; 64x96: 115.4 -> 0.92 -> 1; 75x100: exactly 125 -> 1.0 -> 1
    assert metrics.boundary_radius(480, 854) == 8
    assert metrics.boundary_radius(64, 96) == 1
    assert metrics.boundary_radius(75, 100) == 1
    assert metrics.boundary_radius(1080, 1920) == 18  # 2202.9 * 0.008 = 17.6
    assert metrics.boundary_radius(64, 96, bound_th=3) == 3  # >= 1 means pixels
    with pytest.raises(ValueError):
        metrics.boundary_radius(64, 96, bound_th=2.5)


def test_disk_holds_the_points_within_the_radius():
    assert metrics.disk(1).tolist() == [[0, 1, 0], [1, 1, 1], [0, 1, 0]]
    assert int(metrics.disk(2).sum()) == 13  # 1 + 4 + 4 + 4: (0,0), (0,+-1)x2, (+-1,+-1), (0,+-2)x2
    assert int(metrics.disk(8).sum()) == 197


def test_seg2bmap_of_a_square_is_the_outline_shifted_up_left():
    mask = square((8, 9), 2, 3, 3)  # rows 2..4, cols 3..5
    expected = np.zeros((8, 9), dtype=bool)
    expected[1:5, 2:6] = True       # outline of rows 1..4 x cols 2..5
    expected[2:4, 3:5] = False      # minus the 2x2 inside whose 2x2 blocks are all foreground
    assert np.array_equal(metrics.seg2bmap(mask), expected)
    assert int(expected.sum()) == 12  # 4 * side
    assert np.array_equal(metrics.boundary_map(mask.view(np.uint8)).astype(bool), expected)


def test_seg2bmap_ignores_edges_lying_on_the_right_and_bottom_border():
    mask = np.zeros((5, 6), dtype=bool)
    mask[2:5, 3:6] = True  # touches the right and bottom borders
    expected = np.array([[0, 0, 0, 0, 0, 0],
                         [0, 0, 1, 1, 1, 1],   # row above the square (its S neighbours differ)
                         [0, 0, 1, 0, 0, 0],   # left of the square; the last column compares to S only
                         [0, 0, 1, 0, 0, 0],
                         [0, 0, 1, 0, 0, 0]],  # last row compares to E only; corner never boundary
                        dtype=bool)
    assert np.array_equal(metrics.seg2bmap(mask), expected)
    assert not metrics.seg2bmap(np.ones((4, 7), dtype=bool)).any()  # the whole image: no boundary


def test_j_and_f_of_a_square_shifted_within_the_tolerance():
    gt = square((64, 96), 20, 20, 10)
    pred = square((64, 96), 20, 21, 10)  # shifted 1 px right; radius for 64x96 is 1
    assert metrics.db_eval_iou(gt, pred) == pytest.approx(9 / 11)  # (s - k) / (s + k)
    assert metrics.db_eval_boundary(gt[None], pred[None])[0] == 1.0  # every boundary pixel within 1 px


def test_f_of_a_square_shifted_just_beyond_the_tolerance():
    # side s, shift k = r + 1 along x (s > 2r + 1): per boundary, 2s + 2r of the 4s pixels match
    # (top/bottom edges: s each; the near vertical edge: r rows at each end), so F = (s + r) / (2s)
    for side, radius in [(10, 1), (12, 3)]:
        gt = square((64, 96), 20, 20, side)
        pred = square((64, 96), 20, 20 + radius + 1, side)
        got = metrics.db_eval_boundary(gt[None], pred[None], bound_th=radius)[0]
        assert got == pytest.approx((side + radius) / (2 * side))
        assert metrics.db_eval_iou(gt, pred) == pytest.approx((side - radius - 1) / (side + radius + 1))


def test_far_apart_squares_score_zero():
    gt, pred = square((64, 96), 5, 5, 8), square((64, 96), 40, 60, 8)
    assert metrics.db_eval_iou(gt, pred) == 0.0
    assert metrics.db_eval_boundary(gt[None], pred[None])[0] == 0.0


def test_empty_masks():
    empty = np.zeros((2, 30, 40), dtype=bool)
    full = square((30, 40), 5, 5, 6)[None].repeat(2, axis=0)
    assert metrics.db_eval_iou(empty, empty).tolist() == [1.0, 1.0]  # empty vs empty scores 1
    assert metrics.db_eval_boundary(empty, empty).tolist() == [1.0, 1.0]
    assert metrics.db_eval_iou(full, empty).tolist() == [0.0, 0.0]
    assert metrics.db_eval_boundary(full, empty).tolist() == [0.0, 0.0]
    assert metrics.db_eval_boundary(empty, full).tolist() == [0.0, 0.0]


def test_whole_image_mask_has_no_boundary_so_f_is_one_against_empty():
    whole = np.ones((1, 20, 30), dtype=bool)
    empty = np.zeros((1, 20, 30), dtype=bool)
    assert metrics.db_eval_iou(whole, empty)[0] == 0.0
    assert metrics.db_eval_boundary(whole, empty)[0] == 1.0


def test_mask_touching_the_border_matches_itself_and_its_shift():
    gt = np.zeros((20, 30), dtype=bool)
    gt[5:20, 20:30] = True  # touches right and bottom
    pred = np.zeros((20, 30), dtype=bool)
    pred[5:20, 21:30] = True  # its only boundary is the left edge and the top row, moved 1 px
    assert metrics.db_eval_boundary(gt[None], gt[None])[0] == 1.0
    assert metrics.db_eval_boundary(gt[None], pred[None])[0] == 1.0  # radius 1 for 20x30
    assert metrics.db_eval_iou(gt, pred) == pytest.approx(135 / 150)


def test_void_pixels_are_left_out():
    gt = square((20, 20), 4, 4, 4)  # 16 pixels
    pred = gt.copy()
    pred[4:8, 8] = True  # 4 extra pixels, all void
    void = np.zeros((20, 20), dtype=bool)
    void[4:8, 8] = True
    assert metrics.db_eval_iou(gt, pred) == pytest.approx(16 / 20)
    assert metrics.db_eval_iou(gt, pred, void) == 1.0
    assert metrics.db_eval_boundary(gt[None], pred[None], void)[0] == 1.0


def test_frame_scores_scores_all_objects_of_label_maps():
    gt = np.zeros((64, 96), dtype=np.uint8)
    gt[20:30, 20:30] = 1
    gt[40:50, 60:70] = 2
    pred = np.zeros_like(gt)
    pred[20:30, 21:31] = 1  # object 1 shifted by 1; object 2 missing; object 3 empty in both
    j, f = metrics.frame_scores(gt, pred, 3, metrics.disk(1))
    assert j.tolist() == pytest.approx([9 / 11, 0.0, 1.0])
    assert f.tolist() == [1.0, 0.0, 1.0]


def test_functions_agree_with_the_slow_reference_on_random_masks():
    rng = np.random.default_rng(0)
    for _ in range(60):
        height, width = rng.integers(2, 40, size=2)
        gt = rng.random((height, width)) < rng.random()
        pred = np.roll(gt, rng.integers(-3, 4), axis=1) ^ (rng.random((height, width)) < 0.05)
        radius = reference.tolerance(height, width)
        assert metrics.db_eval_boundary(gt[None], pred[None])[0] == pytest.approx(
            reference.f_score(gt, pred, radius), abs=1e-12)
        assert metrics.db_eval_iou(gt, pred) == pytest.approx(reference.j_score(gt, pred), abs=1e-12)
        assert np.array_equal(metrics.seg2bmap(gt), reference.boundary_pixels(gt))


def test_statistics_by_hand():
    mean, recall, decay = metrics.db_statistics(np.array([1.0, 0.2, 0.6, 0.9]))
    assert mean == pytest.approx(0.675)
    assert recall == pytest.approx(0.75)  # 1, 0.6 and 0.9 are above 0.5
    # 4 frames: bin edges round(linspace(1, 4, 5)) - 1 = [0, 1, 2, 2, 3]: first [1, 0.2], last [0.6, 0.9]
    assert decay == pytest.approx(0.6 - 0.75)
    assert metrics.db_statistics(np.array([0.5, 0.5]))[1] == 0.0  # recall needs strictly above 0.5


def test_statistics_ignore_nan_and_reproduce_the_uint8_bin_edges():
    assert metrics.db_statistics(np.array([1.0, np.nan, 0.0]))[0] == 0.5
    values = np.r_[np.ones(128), np.zeros(127)]  # 255 frames: edges 0, 64, 127, 191, 254
    assert metrics.db_statistics(values)[2] == 1.0
    # 256 and 300 frames: the last edge wraps past 255 in the toolkit, the last bin is empty
    assert math.isnan(metrics.db_statistics(np.ones(256))[2])
    assert math.isnan(metrics.db_statistics(np.ones(300))[2])
    assert metrics.db_statistics(np.ones(300))[0] == 1.0


def test_shape_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"\(4, 5\).*\(4, 6\)"):
        metrics.db_eval_iou(np.zeros((4, 5)), np.zeros((4, 6)))


@pytest.mark.parametrize("n_objects", [10, 70])  # 64-bit masks below 64 objects, one pass per object above
def test_frame_scores_with_many_objects(n_objects):
    rng = np.random.default_rng(n_objects)
    gt = np.zeros((90, 120), dtype=np.uint8)
    pred = np.zeros_like(gt)
    for k in range(1, n_objects + 1):
        y, x = rng.integers(0, 85), rng.integers(0, 115)
        gt[y:y + 5, x:x + 5] = k
        pred[y + rng.integers(0, 2):y + 5, x:x + 5 - rng.integers(0, 2)] = k
    j, f = metrics.frame_scores(gt, pred, n_objects, metrics.disk(2))
    for k in range(1, n_objects + 1, 1 if n_objects < 64 else 9):  # the reference is slow
        assert j[k - 1] == pytest.approx(reference.j_score(gt == k, pred == k), abs=1e-12)
        assert f[k - 1] == pytest.approx(reference.f_score(gt == k, pred == k, 2), abs=1e-12)
