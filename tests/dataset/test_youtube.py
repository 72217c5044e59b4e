"""Tests of libs/dataset/youtube.py: YouTube-VOS 2018/2019 layouts built from generated videos."""
import json
import os

import numpy as np
import pytest

import libs.dataset  # noqa: F401  (registers the readers)
from libs.dataset.registry import get_dataset_class
from libs.dataset.synthetic import generate_video
from libs.dataset.youtube import VOS, VOS19
from libs.errors import VOSError
from libs.io import davis_palette, write_image, write_indexed_png


def _write_split(root, split, videos, annotated):
    """ROOT/<split>/JPEGImages/<vid>/*.jpg and Annotations for frame indices `annotated`, plus meta.json."""
    base = os.path.join(root, split)
    meta = {"videos": {}}
    for seed, name in enumerate(videos):
        frames, labels = generate_video(seed, 4, (24, 32), num_objects=2)
        for t, (frame, label) in enumerate(zip(frames, labels)):
            stem = f"{5 * t:05d}"   # YouTube-VOS numbers frames 00000, 00005, ...
            write_image(os.path.join(base, "JPEGImages", name, stem + ".jpg"), frame)
            if t in annotated:
                kept = np.where(label == 2, 0, label) if t == 0 and split == "valid" else label
                write_indexed_png(os.path.join(base, "Annotations", name, stem + ".png"), kept, davis_palette())
        meta["videos"][name] = {"objects": {"1": {"frames": ["00000"]}, "2": {"frames": ["00010"]}}}
    with open(os.path.join(base, "meta.json"), "w") as handle:
        json.dump(meta, handle)


def test_valid_split_gives_every_annotation(tmp_path):
    root = str(tmp_path / "YouTube-VOS")
    _write_split(root, "valid", ["b-vid", "a-vid"], annotated={0, 2})
    reader = VOS(root, "val")
    assert reader.split_name == "valid" and reader.meta_path == os.path.join(root, "valid", "meta.json")
    assert [v.name for v in reader.videos] == ["a-vid", "b-vid"]
    video = reader.videos[0]
    assert video.frame_names == ["00000", "00005", "00010", "00015"]
    masks = os.path.join(root, "valid", "Annotations", "a-vid")
    assert video.given == {0: os.path.join(masks, "00000.png"), 2: os.path.join(masks, "00010.png")}
    assert video.annotations == video.given and video.palette == davis_palette()
    assert not reader.has_full_gt and not reader.merge_objects and reader.year == "2018"


def test_train_split_every_annotated_frame(tmp_path):
    root = str(tmp_path / "YouTube-VOS")
    _write_split(root, "train", ["v1"], annotated={0, 1, 2, 3})
    reader = VOS(root, "train")
    video = reader.videos[0]
    assert sorted(video.annotations) == [0, 1, 2, 3] and list(video.given) == [0]
    assert reader.has_full_gt


def test_vos19_is_registered_with_its_own_folder(tmp_path):
    assert get_dataset_class("VOS") is VOS and get_dataset_class("VOS19") is VOS19
    assert (VOS.subdir, VOS19.subdir) == ("YouTube-VOS", "YouTube-VOS-2019")
    root = str(tmp_path / "YouTube-VOS-2019")
    _write_split(root, "valid", ["v1"], annotated={0})
    reader = VOS19(root, "val")
    assert reader.label == "VOS19" and reader.year == "2019" and len(reader.videos) == 1


def test_missing_split_folder_shows_layout(tmp_path):
    root = str(tmp_path / "YouTube-VOS")
    _write_split(root, "train", ["v1"], annotated={0})
    with pytest.raises(VOSError) as info:
        VOS(root, "val")
    message = str(info.value)
    assert "has no valid/JPEGImages folder" in message and "valid/meta.json" in message
    assert "see DATASET.md" in message


def test_video_without_annotations_is_named(tmp_path):
    root = str(tmp_path / "YouTube-VOS")
    _write_split(root, "valid", ["v1"], annotated=set())
    with pytest.raises(VOSError, match="video 'v1' has no annotation PNG in .*Annotations/v1"):
        VOS(root, "val")


def test_meta_path_is_none_without_meta_json(tmp_path):
    root = str(tmp_path / "YouTube-VOS")
    _write_split(root, "valid", ["v1"], annotated={0})
    os.remove(os.path.join(root, "valid", "meta.json"))
    assert VOS(root, "val").meta_path is None
