"""Tests of libs/dataset/folder.py: plain-folder custom data sets and registering a new one."""
import os
import re
import shutil

import pytest

import libs.dataset  # noqa: F401  (registers the readers)
from libs.dataset.folder import FolderDataset
from libs.dataset.registry import get_dataset_class, register_dataset
from libs.dataset.synthetic import write_dataset
from libs.errors import VOSError


@register_dataset("TEST_CUSTOM_FOLDER")
class _CustomSet(FolderDataset):
    """The DATASET.md example: one class and one register line."""

    subdir = "MyVideos"


def _folder_root(tmp_path):
    """A FOLDER layout (JPEGImages/<vid>, Annotations/<vid>) made by flattening a DAVIS layout."""
    davis, root = str(tmp_path / "davis"), str(tmp_path / "custom")
    write_dataset(davis, 2, 3, (24, 32))
    for part in ("JPEGImages", "Annotations"):
        shutil.copytree(os.path.join(davis, part, "480p"), os.path.join(root, part))
    return root


def test_folder_reads_every_video_without_split_files(tmp_path):
    root = _folder_root(tmp_path)
    masks = os.path.join(root, "Annotations", "synth-val-001")
    for stem in ("00000", "00002"):
        os.remove(os.path.join(masks, stem + ".png"))
    reader = FolderDataset(root, "whatever")
    assert get_dataset_class("FOLDER") is FolderDataset and FolderDataset.subdir == "FOLDER"
    assert [v.name for v in reader.videos] == ["synth-val-000", "synth-val-001"]
    assert reader.videos[0].given == {0: os.path.join(root, "Annotations", "synth-val-000", "00000.png")}
    assert reader.videos[1].given == {1: os.path.join(masks, "00001.png")}   # the earliest annotation
    assert not reader.has_full_gt


def test_registered_custom_set_is_buildable_by_name(tmp_path):
    root = _folder_root(tmp_path)
    cls = get_dataset_class("TEST_CUSTOM_FOLDER")
    assert cls is _CustomSet and cls.subdir == "MyVideos"
    reader = cls(root, "val")
    assert len(reader.videos) == 2 and reader.has_full_gt and reader.label == "TEST_CUSTOM_FOLDER"
    scoring = reader.scoring()          # scored against its own annotation folders
    assert scoring.scorer == "davis" and scoring.ground_truth["synth-val-001"] == os.path.join(
        root, "Annotations", "synth-val-001")


def test_folder_errors(tmp_path):
    (tmp_path / "bare").mkdir()
    with pytest.raises(VOSError, match="(?s)FOLDER data set: .*bare has no JPEGImages folder.*see DATASET.md"):
        FolderDataset(str(tmp_path / "bare"))
    root = _folder_root(tmp_path)
    shutil.rmtree(os.path.join(root, "Annotations", "synth-val-000"))
    videos = {v.name: v for v in FolderDataset(root).videos}       # reported and skipped by the runner
    assert re.search("video 'synth-val-000' has no annotation PNG in .*put the mask", videos["synth-val-000"].problem)
    assert videos["synth-val-000"].frames == [] and videos["synth-val-001"].problem == ""
    shutil.rmtree(os.path.join(root, "Annotations", "synth-val-001"))
    with pytest.raises(VOSError, match="video 'synth-val-000' has no annotation PNG"):      # no usable video
        FolderDataset(root)
    shutil.rmtree(os.path.join(root, "Annotations"))
    shutil.rmtree(os.path.join(root, "JPEGImages"))
    os.makedirs(os.path.join(root, "JPEGImages"))
    with pytest.raises(VOSError, match="split 'val' has no video"):
        FolderDataset(root)
