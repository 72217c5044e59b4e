"""Tests of libs/dataset/davis.py: DAVIS 2016/2017 and SYNTHETIC readers on tiny generated layouts."""
import os
import re
import shutil

import pytest
import yaml

import libs.dataset  # noqa: F401  (registers the readers)
from libs.dataset.davis import DAVIS16, DAVIS17, SyntheticDataset
from libs.dataset.registry import get_dataset_class
from libs.dataset.synthetic import write_dataset
from libs.errors import VOSError
from libs.io import davis_palette

SIZE = (24, 32)


@pytest.fixture
def davis17(tmp_path):
    """A DAVIS 2017 root with two val videos of 3 frames and one train video."""
    root = str(tmp_path / "DAVIS17")
    write_dataset(root, 2, 3, SIZE, seed=1, split="val")
    write_dataset(root, 1, 3, SIZE, seed=1, split="train")
    return root


def test_registered_names_and_attributes():
    assert get_dataset_class("DAVIS17") is DAVIS17 and get_dataset_class("DAVIS16") is DAVIS16
    assert get_dataset_class("SYNTHETIC") is SyntheticDataset
    assert (DAVIS17.subdir, DAVIS16.subdir, SyntheticDataset.subdir) == ("DAVIS17", "DAVIS16", "SYNTHETIC")
    assert DAVIS16.merge_objects and not DAVIS17.merge_objects and not SyntheticDataset.merge_objects


def test_official_layout(davis17):
    reader = DAVIS17(davis17, "val")
    assert [v.name for v in reader.videos] == ["synth-val-000", "synth-val-001"]
    video = reader.videos[0]
    assert len(video) == 3 and video.frame_names == ["00000", "00001", "00002"]
    assert video.frames[1] == os.path.join(davis17, "JPEGImages", "480p", "synth-val-000", "00001.jpg")
    assert video.given == {0: os.path.join(davis17, "Annotations", "480p", "synth-val-000", "00000.png")}
    assert sorted(video.annotations) == [0, 1, 2] and video.palette == davis_palette()
    assert reader.has_full_gt and reader.year == "2017"
    assert reader.split_source.endswith(os.path.join("ImageSets", "2017", "val.txt"))
    assert [v.name for v in DAVIS17(davis17, "train").videos] == ["synth-train-000"]


def test_db_info_layout_without_image_sets(davis17):
    shutil.rmtree(os.path.join(davis17, "ImageSets"))
    reader = DAVIS17(davis17, "val")
    assert [v.name for v in reader.videos] == ["synth-val-000", "synth-val-001"]
    assert reader.split_source.endswith(os.path.join("data", "db_info.yaml"))
    with pytest.raises(VOSError, match="lists no sequence with set 'test-dev' \\(sets present: train, val\\)"):
        DAVIS17(davis17, "test-dev")


def test_davis16_year_filter_and_training_alias(davis17):
    shutil.rmtree(os.path.join(davis17, "ImageSets"))
    db_info = os.path.join(davis17, "data", "db_info.yaml")
    sequences = [{"name": "synth-val-000", "set": "val", "year": 2016},
                 {"name": "synth-val-001", "set": "val", "year": 2017},
                 {"name": "synth-train-000", "set": "training", "year": 2016}]
    with open(db_info, "w") as handle:
        yaml.safe_dump({"sequences": sequences}, handle)
    assert [v.name for v in DAVIS16(davis17, "val").videos] == ["synth-val-000"]
    assert [v.name for v in DAVIS17(davis17, "val").videos] == ["synth-val-000", "synth-val-001"]
    assert [v.name for v in DAVIS16(davis17, "train").videos] == ["synth-train-000"]


def test_davis16_image_sets_and_package_list(tmp_path):
    root = str(tmp_path / "DAVIS16")
    write_dataset(root, 2, 2, SIZE, split="val", year="2016")
    reader = DAVIS16(root, "val")
    assert len(reader.videos) == 2 and reader.year == "2016" and reader.merge_objects
    shutil.rmtree(os.path.join(root, "ImageSets"))
    os.remove(os.path.join(root, "data", "db_info.yaml"))
    package = os.path.join(root, "ImageSets", "480p", "val.txt")
    os.makedirs(os.path.dirname(package))
    with open(package, "w") as handle:
        for frame in ("00000", "00001"):
            handle.write(f"/JPEGImages/480p/synth-val-001/{frame}.jpg /Annotations/480p/synth-val-001/{frame}.png\n")
    assert [v.name for v in DAVIS16(root, "val").videos] == ["synth-val-001"]


def test_synthetic_reader_reads_generator_output(tmp_path):
    root = str(tmp_path / "SYNTHETIC")
    write_dataset(root, 1, 2, SIZE)
    reader = SyntheticDataset(root, "val")
    assert reader.label == "SYNTHETIC" and len(reader.videos) == 1 and reader.has_full_gt


def test_missing_root_shows_layout(tmp_path):
    with pytest.raises(VOSError) as info:
        DAVIS17(str(tmp_path / "nope"), "val")
    message = str(info.value)
    assert "DAVIS17 data set: folder" in message and "nope does not exist" in message
    assert "JPEGImages/480p/<video>/00000.jpg" in message and "ImageSets/2017/val.txt" in message
    assert message.endswith("see DATASET.md")


def test_wrong_layout_and_missing_split(tmp_path, davis17):
    (tmp_path / "flat" / "JPEGImages").mkdir(parents=True)
    with pytest.raises(VOSError, match="has no JPEGImages/480p folder"):
        DAVIS17(str(tmp_path / "flat"), "val")
    os.remove(os.path.join(davis17, "data", "db_info.yaml"))
    with pytest.raises(VOSError, match="no list of the videos of split 'test' \\(split lists found: train, val\\)"):
        DAVIS17(davis17, "test")


def _problem(dataset, name):
    """Why video `name` cannot be segmented (a video that cannot be read is kept with its reason and
    reported by the runner, the others go on)."""
    return next(v.problem for v in dataset.videos if v.name == name)


def test_listed_video_without_folder_is_named(davis17):
    with open(os.path.join(davis17, "ImageSets", "2017", "val.txt"), "a") as handle:
        handle.write("ghost\n")
    assert re.search("video 'ghost' listed in .*val.txt has no frame folder", _problem(DAVIS17(davis17, "val"), "ghost"))


@pytest.mark.parametrize("name", ["../escape", "a\\b", "x..y"])
def test_unsafe_video_names_are_rejected(davis17, name):
    with open(os.path.join(davis17, "ImageSets", "2017", "val.txt"), "a") as handle:
        handle.write(name + "\n")
    with pytest.raises(VOSError, match="video name .* contains '/', '\\\\' or '..'"):
        DAVIS17(davis17, "val")


def test_empty_frame_folder_is_named(davis17):
    folder = os.path.join(davis17, "JPEGImages", "480p", "synth-val-001")
    for name in os.listdir(folder):
        os.remove(os.path.join(folder, name))
    assert re.search("frame folder .*synth-val-001 of video 'synth-val-001' is empty",
                     _problem(DAVIS17(davis17, "val"), "synth-val-001"))


def test_annotation_problems(davis17):
    masks = os.path.join(davis17, "Annotations", "480p", "synth-val-000")
    os.remove(os.path.join(masks, "00002.png"))
    assert not DAVIS17(davis17, "val").has_full_gt
    shutil.copy(os.path.join(masks, "00001.png"), os.path.join(masks, "00007.png"))
    assert re.search("annotation .*00007.png has no frame named '00007'",
                     _problem(DAVIS17(davis17, "val"), "synth-val-000"))
    os.remove(os.path.join(masks, "00007.png"))
    os.remove(os.path.join(masks, "00000.png"))
    assert re.search("video 'synth-val-000' has no annotation of its first frame",
                     _problem(DAVIS17(davis17, "val"), "synth-val-000"))


def test_one_frame_video_loads(tmp_path):
    root = str(tmp_path / "one")
    write_dataset(root, 1, 1, SIZE)
    video = DAVIS17(root, "val").videos[0]
    assert len(video) == 1 and video.given == {0: video.annotations[0]}
