"""Tests of the evaluation-set contract (libs/dataset/base.py) as every built-in reader implements it."""
import json
import os
import shutil

import pytest

import libs.dataset  # noqa: F401  (registers the readers)
from libs.config import load_cfg
from libs.dataset.base import SCORE_DAVIS, SCORE_NONE, SCORE_YOUTUBE, EvaluationSet, Scoring
from libs.dataset.build import build_eval_dataset
from libs.dataset.davis import DAVIS16, DAVIS17
from libs.dataset.folder import FolderDataset
from libs.dataset.registry import register_dataset
from libs.dataset.synthetic import write_dataset
from libs.dataset.youtube import VOS
from libs.errors import VOSError


@register_dataset("TEST_NOT_EVALUABLE")
class _OnlyVideos:
    """A registered class that lists videos but does not say how to score them."""

    subdir = "X"

    def __init__(self, root, split):
        self.root, self.split, self.videos = root, split, []


def _davis(tmp_path, year="2017"):
    root = str(tmp_path / "davis")
    write_dataset(root, 2, 3, (24, 32), year=year)
    return root


def test_folder_set_with_every_frame_annotated_is_scored_per_video_folder(tmp_path):
    davis = _davis(tmp_path)
    root = str(tmp_path / "custom")
    for part in ("JPEGImages", "Annotations"):
        shutil.copytree(os.path.join(davis, part, "480p"), os.path.join(root, part))
    reader = FolderDataset(root, "val")
    assert isinstance(reader, EvaluationSet) and reader.results_subdir == ""
    assert reader.scoring() == Scoring(SCORE_DAVIS, {v: os.path.join(root, "Annotations", v)
                                                     for v in ("synth-val-000", "synth-val-001")},
                                       **reader.score_names())
    assert reader.scoring().results_name == "FOLDER"       # score files named after the set, not "val"
    os.remove(os.path.join(root, "Annotations", "synth-val-001", "00002.png"))
    assert FolderDataset(root, "val").scoring() == Scoring(SCORE_NONE)


def test_davis_sets_score_their_480p_annotations_and_2016_merges(tmp_path):
    davis = _davis(tmp_path)
    scoring = DAVIS17(davis, "val").scoring()
    assert scoring.scorer == SCORE_DAVIS and not scoring.merge_objects
    assert scoring.ground_truth["synth-val-000"] == os.path.join(davis, "Annotations", "480p", "synth-val-000")
    davis16 = _davis(tmp_path / "16", year="2016")
    assert DAVIS16(davis16, "val").scoring().merge_objects


def test_youtube_valid_is_packed_in_the_server_layout(tmp_path):
    root = tmp_path / "yt"
    davis = _davis(tmp_path)
    for part in ("JPEGImages", "Annotations"):
        shutil.copytree(os.path.join(davis, part, "480p"), root / "valid" / part)
    (root / "valid" / "meta.json").write_text(json.dumps({"videos": {}}))
    reader = VOS(str(root), "val")
    assert reader.results_subdir == "Annotations"
    assert reader.scoring() == Scoring(SCORE_YOUTUBE, meta_path=str(root / "valid" / "meta.json"),
                                       frames_root=str(root / "valid" / "JPEGImages"))
    os.remove(root / "valid" / "meta.json")
    assert VOS(str(root), "val").scoring() == Scoring(SCORE_NONE) and VOS(str(root), "val").results_subdir == ""


def test_a_registered_set_without_the_contract_is_refused_by_name(tmp_path):
    cfg = load_cfg(None, ["valset", "TEST_NOT_EVALUABLE", "data_root", str(tmp_path)])
    with pytest.raises(VOSError, match="TEST_NOT_EVALUABLE.*lacks merge_objects, results_subdir, scoring"):
        build_eval_dataset(cfg)


def test_scoring_rejects_an_unknown_scorer():
    with pytest.raises(ValueError, match="scorer must be one of davis, youtube, none"):
        Scoring("jaccard")
