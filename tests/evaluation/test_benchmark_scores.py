"""MOSEv2, LVOS and SA-V scores on hand-made predictions against values worked out by hand from the
official protocols (J by counting pixels; boundary F from tests/evaluation/reference.py, a pixel-loop
statement of the DAVIS definition written independently of libs/evaluation/metrics.py)."""
import json
import math
import os

import numpy as np
import pytest

from libs.errors import VOSError
from libs.evaluation.lvos import lvos_statistics, score_lvos
from libs.evaluation.mose import score_mose2, skimage_disk
from libs.evaluation.sav import export_objects, score_sav
from libs.evaluation.synthetic import save_label_png
from tests.evaluation.helpers import square_frame
from tests.evaluation.reference import f_score


def write_frames(folder, frames, names=None):
    """Label maps as PNGs folder/<name>.png (names: 00000, 00001, ... unless given)."""
    for i, frame in enumerate(frames):
        save_label_png(os.path.join(folder, f"{(names[i] if names else f'{i:05d}')}.png"), frame)


def test_skimage_disk_of_fractional_radius():
    # skimage.morphology.disk(r): offsets arange(-r, r + 1), kept where dx^2 + dy^2 <= r^2
    assert skimage_disk(2.0).tolist() == [[0, 0, 1, 0, 0], [0, 1, 1, 1, 0], [1, 1, 1, 1, 1],
                                          [0, 1, 1, 1, 0], [0, 0, 1, 0, 0]]
    assert skimage_disk(1.5).tolist() == [[0, 0, 0, 0], [0, 1, 1, 0], [0, 1, 1, 0], [0, 0, 0, 0]]
    assert skimage_disk(0.8).tolist() == [[0, 0, 0], [0, 1, 0], [0, 0, 0]]     # no tolerance at all


def test_mose2_adaptive_boundary_and_segments(tmp_path):
    shape = (150, 200)                      # 0.008 * diagonal = 2.0: standard radius 2
    small = lambda left: square_frame(shape, {1: (20, left, 10)})            # area 100: adaptive radius 1
    empty = np.zeros(shape, np.uint8)
    gt = [small(20) | square_frame(shape, {2: (60, 100, 40)}) for _ in range(5)]   # area 1600: radius 2.0
    gt[2] = np.where(gt[2] == 1, 0, gt[2]).astype(np.uint8)                 # object 1 gone in frame 2
    pred = [gt[0], small(23) | square_frame(shape, {2: (60, 100, 40)}), square_frame(shape, {2: (62, 100, 40)}),
            square_frame(shape, {2: (60, 100, 40)}), empty]
    write_frames(str(tmp_path / "gt" / "v"), gt)
    write_frames(str(tmp_path / "res" / "v"), pred)
    table = score_mose2({"v": str(tmp_path / "gt" / "v")}, str(tmp_path / "res"), "t", ["v"])
    one, two = table.rows
    # object 1: frame 1 shifted by 3 columns (I 70, U 130), frame 2 both empty, frame 3 missed (I 0, U 100)
    g1, p1 = gt[1] == 1, pred[1] == 1
    assert one["J"] == pytest.approx((71 / 131 + 1 + 1 / 101) / 3, abs=1e-12)
    assert one["F"] == pytest.approx((f_score(g1, p1, 2) + 1 + 0) / 3, abs=1e-12)
    assert one["F_new"] == pytest.approx((f_score(g1, p1, 1) + 1 + 0) / 3, abs=1e-12)
    assert one["disappear"] == pytest.approx(1.0) and one["reappear"] == pytest.approx((1 / 101 + 0) / 2)
    # object 2: exact, shifted down 2 rows (I 1520, U 1680), exact; capped radius 2.0 for both F
    g2, p2 = gt[2] == 2, pred[2] == 2
    assert two["J"] == pytest.approx((1 + 1521 / 1681 + 1) / 3, abs=1e-12)
    assert two["F"] == two["F_new"] == pytest.approx((1 + f_score(g2, p2, 2) + 1) / 3, abs=1e-12)
    assert two["disappear"] is None and two["reappear"] is None
    row = table.global_row
    assert row["J&F_new"] == pytest.approx(((one["J"] + two["J"]) / 2 + (one["F_new"] + two["F_new"]) / 2) / 2)
    assert row["disappear_J&F_new"] == pytest.approx(1.0) and row["reappear_J&F_new"] == pytest.approx(1 / 202)
    assert f_score(g1, p1, 1) < f_score(g1, p1, 2)          # the adaptive radius is stricter here
    table.write_csvs(str(tmp_path))
    assert open(tmp_path / "global_results-t.csv").read().splitlines()[0] == ",".join(table.global_columns)


def test_mose2_small_frames_have_no_boundary_tolerance(tmp_path):
    shape = (60, 80)                        # 0.008 * diagonal = 0.8: capped, the disk of 0.8 is one pixel
    gt = [square_frame(shape, {1: (10, 10, 10)})] * 3
    pred = [gt[0], square_frame(shape, {1: (10, 11, 10)}), gt[0]]
    write_frames(str(tmp_path / "gt" / "v"), gt)
    write_frames(str(tmp_path / "res" / "v"), pred)
    (row,) = score_mose2({"v": str(tmp_path / "gt" / "v")}, str(tmp_path / "res"), "t", ["v"]).rows
    assert row["J"] == pytest.approx(91 / 111)
    assert row["F"] == row["F_new"] == pytest.approx(f_score(gt[1] == 1, pred[1] == 1, 0))
    assert row["F"] < f_score(gt[1] == 1, pred[1] == 1, 1)      # DAVIS would allow 1 pixel


def test_mose2_missing_result_names_the_file(tmp_path):
    write_frames(str(tmp_path / "gt" / "v"), [square_frame((20, 20), {1: (2, 2, 5)})] * 3)
    write_frames(str(tmp_path / "res" / "v"), [square_frame((20, 20), {1: (2, 2, 5)})])
    with pytest.raises(VOSError, match="00001.png is missing"):
        score_mose2({"v": str(tmp_path / "gt" / "v")}, str(tmp_path / "res"), "t", ["v"])


def test_lvos_every_fifth_frame_and_padded_range(tmp_path):
    shape = (30, 40)
    box = square_frame(shape, {1: (5, 5, 8), 2: (5, 20, 8)})
    names = [f"{n:08d}" for n in range(1, 13)]
    gt = [box] * 12
    pred = [box] * 12
    pred[10] = square_frame(shape, {2: (5, 20, 8)})        # frame 00000011: object 1 missed (J 0, F 0)
    pred[2] = np.zeros(shape, np.uint8)                    # frame 00000003: not on the 5-frame grid
    write_frames(str(tmp_path / "gt" / "v"), gt, names)
    write_frames(str(tmp_path / "res" / "v"), pred, names)
    meta = {"videos": {"v": {"objects": {"1": {"frame_range": {"start": 1, "end": 12, "frame_nums": 4}},
                                         "2": {"frame_range": {"start": 6, "end": 12, "frame_nums": 2}}}}}}
    (tmp_path / "meta.json").write_text(json.dumps(meta))
    table = score_lvos(str(tmp_path / "meta.json"), {"v": str(tmp_path / "gt" / "v")}, str(tmp_path / "res"),
                       "t", ["v"])
    one, two = table.rows
    # object 1: frames 1, 6, 11 -> [1, 1, 0] in an array of frame_nums 4 -> [1, 1, 0, 0]
    assert (one["Sequence"], one["J-Mean"], one["F-Mean"], one["J-Recall"]) == ("v_1", 0.5, 0.5, 0.5)
    assert math.isnan(one["J-Decay"])                      # the toolkit's row binning of a [1, N] array
    assert (two["J-Mean"], two["F-Mean"]) == (1.0, 1.0)
    assert table.global_row["J&F-Mean"] == pytest.approx(0.75)
    assert lvos_statistics(np.array([0.25]))[2] == 0.0      # one frame: Decay 0


def test_sav_counts_an_object_from_its_first_appearance(tmp_path):
    shape = (10, 10)
    square = lambda left, side=4: square_frame(shape, {1: (2, left, side)}) > 0
    empty = np.zeros(shape, bool)
    frames = ["00000", "00004", "00008", "00012"]
    gt = {"000": [square(2), square(2), square(2), square(2)], "001": [empty, empty, square(5, 3), square(5, 3)]}
    pred = {"000": [empty, square(2), square_frame(shape, {1: (2, 2, 4)}) | square(4), empty],   # 4x6 at frame 8
            "001": [square(0), empty, empty, square(0)]}
    for obj in gt:
        write_frames(str(tmp_path / "gt" / "v" / obj), [m.astype(np.uint8) for m in gt[obj]], frames)
        write_frames(str(tmp_path / "pred" / "v" / obj), [m.astype(np.uint8) * 255 for m in pred[obj]], frames)
    table = score_sav({"v": str(tmp_path / "gt" / "v")}, str(tmp_path / "pred"), "t", ["v"])
    zero, one = table.rows
    # object 000: frame 4 exact (1, 1); frame 8 a 4x6 prediction on a 4x4 truth (J 16/24); frames 0, 12 skipped
    wide = pred["000"][2]
    assert zero["J-Mean"] == pytest.approx((1 + 16 / 24) / 2)
    assert zero["F-Mean"] == pytest.approx((1 + f_score(gt["000"][2], wide, 1)) / 2)
    # object 001: frame 4 has neither truth nor prediction -> not counted; frame 8 missed -> 0 (not 0.5)
    assert (one["J-Mean"], one["F-Mean"]) == (0.0, 0.0)
    assert table.global_row["J-Mean"] == pytest.approx((1 + 16 / 24) / 4)


def test_sav_export_object_i_is_label_i_plus_1(tmp_path):
    gt = tmp_path / "gt" / "v"
    for obj in ("000", "001"):
        write_frames(str(gt / obj), [np.zeros((4, 4), np.uint8)] * 2, ["00000", "00004"])
    labels = np.array([[0, 1, 2, 2]] * 4, np.uint8)
    write_frames(str(tmp_path / "maps"), [labels] * 5)
    assert export_objects(str(tmp_path / "maps"), str(gt), str(tmp_path / "out")) == 4
    from libs.evaluation.png import read_label_png
    assert read_label_png(str(tmp_path / "out" / "001" / "00004.png")).tolist() == [[0, 0, 1, 1]] * 4
    assert read_label_png(str(tmp_path / "out" / "000" / "00000.png")).tolist() == [[0, 1, 0, 0]] * 4
