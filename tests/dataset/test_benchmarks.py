"""MOSE, LVOS and SA-V readers on generated tiny sets: videos, given masks (objects appearing later),
and which scorer applies."""
import json
import os

import numpy as np
import pytest

from libs.dataset.base import SCORE_DAVIS, SCORE_LVOS, SCORE_MOSE2, SCORE_SAV, SCORE_SERVER, EvaluationSet
from libs.dataset.benchmark_sets import write_lvos, write_mose, write_sav
from libs.dataset.benchmarks import LVOS, MOSE, SAV, MOSEv2, paint
from libs.errors import VOSError
from libs.evaluation.png import read_label_png

SIZE = (24, 32)


def test_mose_valid_is_packed_for_the_server_and_full_ground_truth_is_scored(tmp_path):
    write_mose(str(tmp_path), 1, num=2, frames=4, size=SIZE)
    valid = MOSE(str(tmp_path / "MOSE"), "val")               # 'val' reads the folder 'valid'
    assert isinstance(valid, EvaluationSet)
    assert [v.name for v in valid.videos] == ["valid-000", "valid-001"]
    assert list(valid.videos[0].given) == [0] and valid.scoring().scorer == SCORE_SERVER
    write_mose(str(tmp_path), 1, num=1, frames=4, size=SIZE, split="train", full_gt=True)
    assert MOSE(str(tmp_path / "MOSE"), "train").scoring().scorer == SCORE_DAVIS
    write_mose(str(tmp_path), 2, num=1, frames=4, size=SIZE, split="train", full_gt=True)
    scoring = MOSEv2(str(tmp_path / "MOSEv2"), "train").scoring()
    assert scoring.scorer == SCORE_MOSE2 and scoring.results_name == "MOSEv2-train"


def test_lvos_gives_each_object_where_it_starts_and_only_it(tmp_path):
    write_lvos(str(tmp_path), 1, num=1, frames=12, size=SIZE, late=5)
    data = LVOS(str(tmp_path / "LVOS"), "val")
    video = data.videos[0]
    assert video.frame_names[0] == "00000001" and len(video) == 12
    assert sorted(video.annotations) == [0, 5, 10]             # sparse ground truth: every 5th frame
    assert sorted(video.given) == [0, 5]                       # object 2 starts at 00000006
    first, later = read_label_png(video.given[0]), read_label_png(video.given[5])
    assert set(np.unique(first)) == {0, 1}                     # object 2 is not there yet
    assert set(np.unique(later)) == {0, 2}                     # object 1 is tracked, not given again
    truth = read_label_png(video.annotations[5])
    assert np.array_equal(later == 2, truth == 2)
    scoring = data.scoring()
    assert scoring.scorer == SCORE_LVOS and scoring.meta_path.endswith("valid_meta.json")


def test_lvos_without_meta_finds_starts_in_the_masks_and_is_packed(tmp_path):
    write_lvos(str(tmp_path), 2, num=1, frames=12, size=SIZE, late=5)
    os.remove(tmp_path / "LVOSv2" / "valid" / "valid_meta.json")
    data = LVOS(str(tmp_path / "LVOSv2"), "val")
    assert sorted(data.videos[0].given) == [0, 5] and data.scoring().scorer == SCORE_SERVER


def test_lvos_meta_start_without_mask_is_a_video_problem(tmp_path):
    write_lvos(str(tmp_path), 1, num=1, frames=12, size=SIZE)
    path = tmp_path / "LVOS" / "valid" / "valid_meta.json"
    meta = json.loads(path.read_text())
    meta["videos"]["valid-000"]["objects"]["2"]["frame_range"]["start"] = 3
    path.write_text(json.dumps(meta))
    with pytest.raises(VOSError, match="starts at frame 00000003"):
        LVOS(str(tmp_path / "LVOS"), "val")


def test_sav_per_object_folders_become_label_maps(tmp_path):
    write_sav(str(tmp_path), num=2, frames=9, size=SIZE, late=4)
    data = SAV(str(tmp_path / "SA-V"), "val")
    assert data.split_source.endswith("sav_val.txt") and data.results_subdir == "label_maps"
    video = data.videos[0]
    assert len(video) == 9 and sorted(video.given) == [0, 4]    # object 001 first non-empty at frame 4
    assert set(np.unique(read_label_png(video.given[0]))) == {0, 1}
    assert set(np.unique(read_label_png(video.given[4]))) == {0, 2}
    masks = tmp_path / "SA-V" / "sav_val" / "Annotations_6fps" / video.name
    object_1 = read_label_png(str(masks / "001" / "00004.png"))
    assert np.array_equal(read_label_png(video.given[4]) == 2, object_1 > 0)
    scoring = data.scoring()
    assert scoring.scorer == SCORE_SAV and scoring.ground_truth[video.name] == str(masks)


def test_sav_overlapping_objects_keep_the_smaller_one_on_top():
    person = np.zeros((6, 6), bool)
    person[1:5, 1:5] = True
    hand = np.zeros((6, 6), bool)
    hand[2, 2] = True
    assert paint([(1, hand), (2, person)])[2, 2] == 1 and paint([(1, hand), (2, person)])[1, 1] == 2


def test_sav_missing_split_shows_the_layout(tmp_path):
    (tmp_path / "SA-V").mkdir()
    with pytest.raises(VOSError, match="JPEGImages_24fps/<video>/00000.jpg"):
        SAV(str(tmp_path / "SA-V"), "test")
