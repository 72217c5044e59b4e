"""End to end: test.py and demo/demo.py with `data_backend DALI` write the masks they write with PIL / OpenCV.

The runs use the CPU (gpu_id -1), where DALI decodes JPEG frames exactly as PIL does and MJPEG videos
within about one colour level of OpenCV. All command lines are started at once by the `dali_runs` fixture.
"""
import os

import cv2
import numpy as np
import pytest

from tests.helpers.scripts import DEMO_CMD, FRAME_SIZE, TEST_CMD, TINY, Job, read_png, write_synthetic
from libs.dataset.synthetic import generate_video
from libs.io import davis_palette, write_image, write_indexed_png
from libs.io.dali_decode import DaliDecoder

pytest.importorskip("nvidia.dali")

AVI_FRAMES = 5


def _write_avi(path: str, seed: int) -> str:
    """A generated clip as an MJPEG .avi (decodable by DALI's CPU decoder) and its first mask; returns the mask."""
    frames, labels = generate_video(seed, AVI_FRAMES, FRAME_SIZE)
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (FRAME_SIZE[1], FRAME_SIZE[0]))
    for rgb in frames:
        writer.write(np.ascontiguousarray(rgb[..., ::-1]))          # BGR
    writer.release()
    mask = os.path.splitext(path)[0] + "_mask.png"
    write_indexed_png(mask, labels[0], davis_palette())
    return mask


def _write_dali_frames(video: str, folder) -> None:
    """The frames DALI's CPU decoder reads from `video`, as lossless PNGs 00000.png.. in `folder`."""
    folder.mkdir()
    for t, rgb in enumerate(DaliDecoder(None).video(video, AVI_FRAMES)):
        write_image(str(folder / f"{t:05d}.png"), rgb)


@pytest.fixture(scope="module")
def dali_runs(script_pool, tmp_path_factory, r18_checkpoint):
    """name -> (Job, masks folder): test.py with PIL and DALI; the demo with DALI on an MJPEG .avi and with
    PIL on a folder holding the frames DALI decodes from it."""
    base = tmp_path_factory.mktemp("dali_scripts")
    write_synthetic(str(base / "data" / "SYNTHETIC"), 1, 4, seed=11)
    video = str(base / "clip.avi")
    mask = _write_avi(video, seed=12)
    _write_dali_frames(video, base / "clip")
    runs = {}
    for backend in ("PIL", "DALI"):
        args = TEST_CMD + TINY + ["loop", "0", "valset", "SYNTHETIC", "data_root", base / "data",
                                  "initial", r18_checkpoint, "output_dir", base / backend, "data_backend", backend]
        runs[f"test_{backend}"] = (Job(script_pool, [str(a) for a in args]),
                                   base / backend / "SYNTHETIC" / "synth-val-000")
    for backend, source in (("DALI", video), ("PIL", base / "clip")):
        args = DEMO_CMD + TINY + ["loop", "0", "video_path", source, "mask_path", mask, "initial", r18_checkpoint,
                                  "output_dir", base / f"demo_{backend}", "data_backend", backend]
        runs[f"demo_{backend}"] = (Job(script_pool, [str(a) for a in args]), base / f"demo_{backend}" / "clip")
    return runs


def _masks(job, folder):
    """The run's indexed masks (mode, labels, palette, size) by file name, after checking that it succeeded."""
    run = job.result()
    assert run.returncode == 0, run.describe()
    names = sorted(f for f in os.listdir(folder) if f.endswith(".png"))
    return run, {name: read_png(os.path.join(folder, name)) for name in names}


@pytest.mark.slow
def test_test_script_with_dali_writes_the_pil_masks(dali_runs):
    """DALI's CPU JPEG decoding equals PIL's, so test.py writes the very same masks."""
    _, pil = _masks(*dali_runs["test_PIL"])
    run, dali = _masks(*dali_runs["test_DALI"])
    assert "decoding frames with NVIDIA DALI on the CPU" in run.output and "WARNING" not in run.output
    assert list(dali) == list(pil) == [f"{t:05d}.png" for t in range(4)]
    for name in pil:
        assert dali[name][0] == "P" and dali[name][2] == pil[name][2]
        assert np.array_equal(dali[name][1], pil[name][1]), name


@pytest.mark.slow
def test_demo_with_dali_segments_the_frames_dali_decodes(dali_runs):
    """The demo on an MJPEG .avi with DALI writes the masks of a PIL run on the frames DALI decodes from it
    (those are within about one colour level of OpenCV's: tests/io/test_dali_decode.py)."""
    _, pil = _masks(*dali_runs["demo_PIL"])
    run, dali = _masks(*dali_runs["demo_DALI"])
    assert "decoding frames with NVIDIA DALI on the CPU" in run.output and "OpenCV" not in run.output
    assert list(dali) == list(pil) == [f"{t:05d}.png" for t in range(AVI_FRAMES)]
    for name in pil:
        assert dali[name][3] == FRAME_SIZE and np.array_equal(dali[name][1], pil[name][1]), name
