"""End-to-end tests of demo/demo.py: the real command line on a generated mp4 and a folder of frames.

Every command line of this module is started at once by the `demo_runs` fixture (two at a time).
"""
import os

import cv2
import numpy as np
import pytest
from PIL import Image

from tests.helpers.scripts import DEMO_CMD, FRAME_SIZE, REPO, TINY, Job, agreement, read_png, write_synthetic
from libs.dataset.synthetic import write_video_file
from libs.io import davis_palette

MP4_FRAMES = 5


def _args(out, *extra):
    """demo.py's command line with the tiny network and loop 0 (later KEY VAL pairs win)."""
    return DEMO_CMD + TINY + ["loop", "0", "output_dir", str(out)] + [str(e) for e in extra]


def _write_p(path, labels):
    """An indexed PNG with the DAVIS palette."""
    img = Image.fromarray(labels.astype(np.uint8))
    img.putpalette(davis_palette())
    img.save(path)


def _bad_cases(inputs, video, mask):
    """name -> (extra KEY VAL, substrings the error must contain)."""
    small = str(inputs / "small_mask.png")
    _write_p(small, np.asarray(Image.open(mask).resize((64, 40), Image.NEAREST)))
    blank = str(inputs / "blank_mask.png")
    _write_p(blank, np.zeros(FRAME_SIZE, np.uint8))
    (inputs / "empty").mkdir()
    return {
        "no_video_path": (["video_path", "''", "mask_path", mask], ["video_path", "mask_path"]),
        "missing_video": (["video_path", inputs / "nothing.mp4", "mask_path", mask],
                          [str(inputs / "nothing.mp4"), "does not exist"]),
        "mask_size_differs": (["video_path", video, "mask_path", small], [small, "64x40", "80x48"]),
        "empty_folder": (["video_path", inputs / "empty", "mask_path", mask],
                         [str(inputs / "empty"), "no frames"]),
        "mask_no_object": (["video_path", video, "mask_path", blank], [blank, "empty"]),
    }


@pytest.fixture(scope="module")
def demo_runs(script_pool, tmp_path_factory, r18_checkpoint):
    """name -> (Job, input paths, output folder) of every demo command line, submitted at once."""
    base = tmp_path_factory.mktemp("demo")
    inputs = base / "in"
    inputs.mkdir()
    name = f"e2e-clip-{os.getpid()}"                      # unique: its default output would be in the repo
    video, mask = write_video_file(str(inputs / f"{name}.mp4"), seed=7, num_frames=MP4_FRAMES, size=FRAME_SIZE)
    repo_default = os.path.join(REPO, "output", "demo", name)
    bad = _bad_cases(inputs, video, mask)                 # every input exists before the first snapshot
    dataset = base / "set"
    write_synthetic(str(dataset), 1, 4, seed=8)
    frames = dataset / "JPEGImages" / "480p" / "synth-val-000"
    indexed = dataset / "Annotations" / "480p" / "synth-val-000" / "00000.png"
    rgb_mask = inputs / "rgb_mask.png"
    Image.open(indexed).convert("RGB").save(rgb_mask)
    jobs = {"mp4": (Job(script_pool, _args(base / "mp4", "video_path", video, "mask_path", mask),
                        [str(inputs), repo_default]), (video, mask), base / "mp4" / name)}
    args = _args(base / "folder", "video_path", frames, "mask_path", rgb_mask, "initial", r18_checkpoint)
    jobs["folder"] = (Job(script_pool, args, [str(dataset), str(inputs)]), (str(frames), str(indexed)),
                      base / "folder" / "synth-val-000")
    for case, (extra, expect) in bad.items():
        job = Job(script_pool, _args(base / case, *extra), [str(inputs), repo_default])
        job.expect = expect
        jobs[case] = (job, None, base / case)
    return jobs


def _check_indexed(folder, count, first_labels):
    """`count` indexed PNGs 00000.png.. at the frame size with the DAVIS palette; frame 0 ~ its mask."""
    for t in range(count):
        mode, labels, palette, size = read_png(os.path.join(folder, f"{t:05d}.png"))
        assert mode == "P" and size == FRAME_SIZE and palette == davis_palette()
    first = read_png(os.path.join(folder, "00000.png"))[1]
    assert agreement(first, first_labels) >= 0.95


def _count_video_frames(path):
    """Frames cv2 decodes from a video file, and the size of the first."""
    cap = cv2.VideoCapture(path)
    assert cap.isOpened(), path
    count, size = 0, None
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        size = size or frame.shape[:2]
        count += 1
    cap.release()
    return count, size


@pytest.mark.slow
def test_demo_on_mp4_writes_masks_overlays_and_video(demo_runs):
    """mp4 + first mask, no checkpoint: masks and overlays for every frame, overlay.mp4, UNTRAINED warning."""
    job, (video, mask), out = demo_runs["mp4"]
    run = job.result()
    assert run.returncode == 0, run.describe()
    _check_indexed(str(out), MP4_FRAMES, np.asarray(Image.open(mask)))
    overlays = sorted(os.listdir(out / "overlay"))
    assert overlays == [f"{t:05d}.jpg" for t in range(MP4_FRAMES)]
    assert read_png(str(out / "overlay" / "00000.jpg"))[3] == FRAME_SIZE
    assert _count_video_frames(str(out / "overlay.mp4")) == (MP4_FRAMES, FRAME_SIZE)
    assert "UNTRAINED" in run.output
    assert job.changed_outside() == []


def test_demo_on_folder_with_rgb_mask(demo_runs):
    """A folder of frames with an RGB colour mask: the log says it was converted; masks for every frame."""
    job, (frames, indexed), out = demo_runs["folder"]
    run = job.result()
    assert run.returncode == 0, run.describe()
    assert "RGB colour mask" in run.output
    _check_indexed(str(out), len(os.listdir(frames)), np.asarray(Image.open(indexed)))
    assert os.path.isfile(out / "overlay.mp4")
    assert "UNTRAINED" not in run.output
    assert job.changed_outside() == []


@pytest.mark.parametrize("name", ["no_video_path", "missing_video", "mask_size_differs", "empty_folder",
                                  "mask_no_object"])
def test_demo_bad_input_fails_with_one_error_line(demo_runs, name):
    """Bad demo input: non-zero exit, one `error:` line naming the problem, nothing written."""
    job, _, out = demo_runs[name]
    run = job.result()
    assert run.returncode != 0, run.describe()
    assert len(run.error_lines()) == 1 and "Traceback" not in run.stderr, run.describe()
    for text in job.expect:
        assert text in run.error_text(), f"{text!r} missing\n{run.describe()}"
    assert not os.path.exists(out), "nothing should be written for input that is rejected up front"
    assert job.changed_outside() == []
