"""test.py with batch_videos: the real command line on a FOLDER set of videos of different lengths and
object counts writes the masks of the one-at-a-time run (loop 0 on the exact path; one correction
iteration at a rate where it is not chaotic), clamps a batch larger than the set, refuses 0.

Every command line of this module is started at once by the `runs` fixture (two at a time).
"""
import os

import numpy as np
import pytest

from tests.helpers.scripts import FRAME_SIZE, TEST_CMD, TINY, Job, agreement, read_png
from libs.dataset.synthetic import generate_video
from libs.io import davis_palette, write_image, write_indexed_png

# (frames, objects) per video
SPECS = [(4, 2), (6, 1), (3, 3), (5, 2), (4, 1)]
CORRECTION = ["loop", "1", "correction_rate", "20", "save_freq", "2"]


def _folder_set(root):
    """A FOLDER set (every frame annotated) of the videos of SPECS; returns (name, frames) per video."""
    videos = []
    for i, (frames, objects) in enumerate(SPECS):
        name = f"clip{i}"
        rgb, labels = generate_video(100 + i, frames, FRAME_SIZE, objects)
        for t, (image, mask) in enumerate(zip(rgb, labels)):
            for sub, ext in (("JPEGImages", "jpg"), ("Annotations", "png")):
                os.makedirs(root / sub / name, exist_ok=True)
            write_image(str(root / "JPEGImages" / name / f"{t:05d}.jpg"), image, quality=95)
            write_indexed_png(str(root / "Annotations" / name / f"{t:05d}.png"), mask, davis_palette())
        videos.append((name, frames))
    return videos


@pytest.fixture(scope="module")
def runs(script_pool, r18_checkpoint, tmp_path_factory):
    base = tmp_path_factory.mktemp("batch_videos")
    videos = _folder_set(base / "data" / "FOLDER")

    def args(out, *extra):
        return TEST_CMD + TINY + ["initial", r18_checkpoint, "valset", "FOLDER", "data_root", str(base / "data"),
                                  "output_dir", str(base / out), "loop", "0"] + list(extra)

    jobs = {"b1": Job(script_pool, args("b1", "batch_videos", "1")),
            "b2": Job(script_pool, args("b2", "batch_videos", "2")),
            "b1_corr": Job(script_pool, args("b1_corr", *CORRECTION)),
            "b9_corr": Job(script_pool, args("b9_corr", "batch_videos", "9", *CORRECTION)),
            "zero": Job(script_pool, args("zero", "batch_videos", "0"))}
    return base, videos, jobs


def _labels(base, out, videos):
    """Every written mask of every video, in one array."""
    return np.concatenate([read_png(str(base / out / "FOLDER" / name / f"{t:05d}.png"))[1].ravel()
                           for name, frames in videos for t in range(frames)])


@pytest.mark.slow
@pytest.mark.parametrize("single, batched, least", [("b1", "b2", 0.9999), ("b1_corr", "b9_corr", 0.999)],
                         ids=["loop0", "loop1"])
def test_batched_run_writes_the_masks_of_the_single_run(runs, single, batched, least):
    base, videos, jobs = runs
    for name in (single, batched):
        run = jobs[name].result()
        assert run.returncode == 0, run.describe()
        assert os.path.isfile(base / name / "FOLDER" / "global_results-FOLDER.csv")
    # loop 0 on the exact path agrees on every pixel here; only a tie flipped by the rounding of a
    # batched operation may differ, hence the bound rather than equality
    assert agreement(_labels(base, single, videos), _labels(base, batched, videos)) >= least
    if batched == "b9_corr":
        assert "batch_videos 9: the set has 5 videos, segmenting 5 at once" in jobs[batched].result().output


@pytest.mark.slow
def test_batch_videos_zero_is_one_error_line(runs):
    run = runs[2]["zero"].result()
    assert run.returncode == 2, run.describe()
    assert run.error_lines() == ["error: config key 'batch_videos' must be positive; got 0"]
    assert "Traceback" not in run.stderr
