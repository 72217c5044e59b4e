"""Tests of libs/dataset/synthetic.py: determinism, motion, occlusion, files written and the CLI."""
import os

import numpy as np
import pytest
import yaml
from PIL import Image

from libs.dataset.synthetic import generate_scene, generate_video, main, write_dataset, write_video_file
from libs.errors import VOSError
from libs.io import FrameSource, davis_palette, read_frame, read_mask

SIZE = (48, 64)


def test_same_seed_same_video_and_different_seed_differs():
    frames_a, labels_a = generate_video(7, 4, SIZE)
    frames_b, labels_b = generate_video(7, 4, SIZE)
    assert all(np.array_equal(a, b) for a, b in zip(frames_a, frames_b))
    assert all(np.array_equal(a, b) for a, b in zip(labels_a, labels_b))
    frames_c, _ = generate_video(8, 4, SIZE)
    assert not np.array_equal(frames_a[0], frames_c[0])


def test_shapes_types_and_object_count():
    frames, labels = generate_video(3, 5, SIZE, num_objects=3)
    assert len(frames) == len(labels) == 5
    assert frames[0].shape == (48, 64, 3) and frames[0].dtype == np.uint8
    assert labels[0].shape == (48, 64) and labels[0].dtype == np.uint8
    assert set(np.unique(labels[0])) == {0, 1, 2, 3}


@pytest.mark.parametrize("seed", range(6))
def test_every_object_visible_in_first_frame(seed):
    for count in (1, 2, 3):
        _, labels = generate_video(seed, 2, (32, 40), num_objects=count)
        assert set(np.unique(labels[0])) == set(range(count + 1))
    _, labels = generate_video(seed, 2, SIZE)  # default: 1 to 3 objects
    assert 2 <= len(np.unique(labels[0])) <= 4


def test_objects_move_and_background_pans():
    scene = generate_scene(4, 8, SIZE, num_objects=2)
    travelled = np.linalg.norm(scene.centres[-1] - scene.centres[0], axis=1)  # [K]
    assert (travelled > 5).all()
    assert not np.array_equal(scene.labels[0], scene.labels[-1])
    background = (scene.labels[0] == 0) & (scene.labels[-1] == 0)
    diff = np.abs(scene.frames[0].astype(int) - scene.frames[-1].astype(int)).mean(axis=2)
    assert diff[background].mean() > 10        # the camera pans over a textured background


@pytest.mark.parametrize("seed", range(5))
def test_objects_occlude_each_other(seed):
    scene = generate_scene(seed, 9, SIZE, num_objects=2)
    assert scene.occluded_area.sum() > 0
    assert sorted(scene.depth) == [1, 2]
    for t, labels in enumerate(scene.labels):  # visible pixels = full area - occluded area
        visible = [(labels == k + 1).sum() for k in range(2)]
        assert visible == list(scene.full_area[t] - scene.occluded_area[t])


def test_bad_arguments_are_vos_errors():
    with pytest.raises(VOSError, match="number of frames"):
        generate_video(0, 0, SIZE)
    with pytest.raises(VOSError, match="size must be two integers"):
        generate_video(0, 2, (8, 64))
    with pytest.raises(VOSError, match="number of objects must be 1..8"):
        generate_video(0, 2, SIZE, num_objects=9)


def test_write_dataset_layout(tmp_path):
    out = str(tmp_path / "SYNTHETIC")
    names = write_dataset(out, 2, 3, SIZE, seed=5, split="val")
    assert names == ["synth-val-000", "synth-val-001"]
    jpg = os.path.join(out, "JPEGImages", "480p", "synth-val-001", "00002.jpg")
    png = os.path.join(out, "Annotations", "480p", "synth-val-001", "00002.png")
    with Image.open(jpg) as img:
        assert img.format == "JPEG" and img.size == (64, 48)
    with Image.open(png) as img:
        assert img.mode == "P"
    labels, palette = read_mask(png)
    assert palette == davis_palette() and labels.max() >= 1
    write_dataset(out, 1, 3, SIZE, seed=5, split="train")
    write_dataset(out, 1, 3, SIZE, seed=5, split="val")   # re-run: the list keeps both val videos
    with open(os.path.join(out, "ImageSets", "2017", "val.txt")) as handle:
        assert handle.read().split() == ["synth-val-000", "synth-val-001"]
    with open(os.path.join(out, "data", "db_info.yaml")) as handle:
        sequences = yaml.safe_load(handle)["sequences"]
    assert [(s["name"], s["set"], s["num_frames"]) for s in sequences] == [
        ("synth-train-000", "train", 3), ("synth-val-000", "val", 3), ("synth-val-001", "val", 3)]
    assert not [f for _, _, files in os.walk(out) for f in files if ".tmp" in f]


def test_write_dataset_matches_generator_and_removes_stale_frames(tmp_path):
    out = str(tmp_path / "s")
    write_dataset(out, 1, 4, SIZE, seed=2)
    write_dataset(out, 1, 2, SIZE, seed=2)
    folder = os.path.join(out, "JPEGImages", "480p", "synth-val-000")
    assert sorted(os.listdir(folder)) == ["00000.jpg", "00001.jpg"]
    from libs.dataset.synthetic import video_seed
    frames, labels = generate_video(video_seed(2, "val", 0), 2, SIZE)
    read, _ = read_mask(os.path.join(out, "Annotations", "480p", "synth-val-000", "00001.png"))
    assert np.array_equal(read, labels[1])
    decoded = read_frame(os.path.join(folder, "00001.jpg")).astype(int)
    assert np.abs(decoded - frames[1]).mean() < 8 < np.abs(decoded - frames[0]).mean()


def test_write_video_file_for_the_demo(tmp_path):
    video, mask = write_video_file(str(tmp_path / "demo.mp4"), seed=1, num_frames=5, size=(47, 63))
    assert mask == str(tmp_path / "demo_mask.png")
    source = FrameSource(video)
    labels, _ = read_mask(mask)
    assert len(source) == 5 and tuple(source.size) == labels.shape == (46, 62) and labels.max() >= 1


def test_cli_writes_and_reports(tmp_path, capsys):
    out = str(tmp_path / "cli")
    assert main(["--out", out, "--videos", "1", "--frames", "2", "--size", "32", "48", "--video-file"]) == 0
    printed = capsys.readouterr().out
    assert "wrote 1 videos of 2 frames (32x48)" in printed and "synthetic.mp4" in printed
    assert os.path.isfile(os.path.join(out, "synthetic_mask.png"))
    assert main(["--out", out, "--videos", "0"]) == 1
    assert "number of videos must be an integer >= 1" in capsys.readouterr().err
