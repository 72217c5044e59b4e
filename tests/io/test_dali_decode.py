"""libs/io/dali_decode.py: frames decoded by NVIDIA DALI equal the PIL / OpenCV ones, in order, with fallbacks."""
import logging
import os
import sys

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("nvidia.dali")

from libs.dataset.base import Video  # noqa: E402
from libs.errors import VOSError  # noqa: E402
from libs.io import FrameSource, read_frame  # noqa: E402
from libs.io.dali_decode import DaliDecoder, build_frame_decoder, video_codec  # noqa: E402
from libs.io.video import read_video_frames  # noqa: E402
from libs.runner.videos import read_frames  # noqa: E402

SIZE = (64, 96)                 # (H, W) of every test frame
FRAMES = 8


def smooth_frame(t: int, size=SIZE) -> np.ndarray:
    """A smooth RGB frame [H, W, 3] uint8 with a blob at a position and a brightness that depend on t."""
    yy, xx = np.mgrid[0:size[0], 0:size[1]].astype(np.float32)
    blob = np.exp(-((yy - size[0] / 2) ** 2 + (xx - 16 - 8 * t) ** 2) / (2 * 8.0 ** 2))   # [H, W]
    rgb = np.stack([60 + 150 * blob, 40 + xx + 10 * t, 200 - 100 * blob + yy], axis=-1)
    return np.clip(rgb, 0, 255).astype(np.uint8)


def write_clip(path: str, fourcc: str, count: int = FRAMES) -> str:
    """Write `count` smooth frames as a video with OpenCV's `fourcc` encoder; returns `path`."""
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*fourcc), 10.0, (SIZE[1], SIZE[0]))
    assert writer.isOpened(), fourcc
    for t in range(count):
        writer.write(np.ascontiguousarray(smooth_frame(t)[..., ::-1]))     # BGR
    writer.release()
    return path


@pytest.fixture
def jpeg_folder(tmp_path):
    """A folder of 7 JPEG frames (one more than the batch size used below, so a partial batch is decoded)."""
    for t in range(7):
        Image.fromarray(smooth_frame(t)).save(tmp_path / f"{t:05d}.jpg", quality=90)
    return str(tmp_path)


def assert_close(got, want, max_diff: int, mean_diff: float):
    """Same count and shapes; every frame within the decoder tolerances and nearest to its own reference."""
    assert len(got) == len(want)
    for t, (a, b) in enumerate(zip(got, want)):
        assert a.shape == b.shape and a.dtype == np.uint8
        diff = np.abs(a.astype(np.int32) - b)
        assert diff.max() <= max_diff and diff.mean() < mean_diff, (t, diff.max(), diff.mean())
        others = [np.abs(a.astype(np.int32) - w).mean() for w in want]
        assert int(np.argmin(others)) == t                                  # in order


def test_jpeg_folder_equals_pil_in_batches(jpeg_folder):
    source = FrameSource(jpeg_folder)
    want = list(source)
    decoder = DaliDecoder(None, batch=3)
    got = list(source.frames(decoder))
    assert list(decoder.pipes) == ["image"]                           # DALI decoded them
    assert_close(got, want, max_diff=4, mean_diff=1.0)
    assert all(np.array_equal(a, b) for a, b in zip(got, want))       # DALI's CPU decoder is libjpeg-turbo


def test_read_frames_with_decoder_equals_pil(jpeg_folder):
    paths = sorted(os.path.join(jpeg_folder, f) for f in os.listdir(jpeg_folder))
    video = Video("v", paths, [os.path.basename(p)[:-4] for p in paths], {})
    got = list(read_frames(video, SIZE, DaliDecoder(None, batch=4)))
    assert_close(got, [read_frame(p) for p in paths], max_diff=4, mean_diff=1.0)


def test_frame_of_another_size_is_an_error_naming_it(jpeg_folder):
    odd = os.path.join(jpeg_folder, "00004.jpg")
    Image.fromarray(smooth_frame(4, (40, 96))).save(odd)
    decoder = DaliDecoder(None, batch=3)
    with pytest.raises(VOSError, match="frame 00004 of .* is 96x40 but the first frame is 96x64"):
        list(FrameSource(jpeg_folder).frames(decoder))
    paths = sorted(os.path.join(jpeg_folder, f) for f in os.listdir(jpeg_folder))
    video = Video("v", paths, [os.path.basename(p)[:-4] for p in paths], {})
    with pytest.raises(VOSError, match=f"frame {odd} is 96x40"):
        list(read_frames(video, SIZE, decoder))


def test_corrupt_frame_falls_back_to_pil_which_names_it(jpeg_folder, caplog):
    bad = os.path.join(jpeg_folder, "00005.jpg")
    with open(bad, "wb") as f:
        f.write(b"not a jpeg" * 30)
    frames = FrameSource(jpeg_folder).frames(DaliDecoder(None, batch=3))
    with caplog.at_level(logging.WARNING, logger="libs.io.dali_decode"):
        first = [next(frames) for _ in range(3)]                  # the first batch decodes
        with pytest.raises(VOSError, match=f"cannot read frame {bad}"):
            list(frames)
    assert all(np.array_equal(a, read_frame(os.path.join(jpeg_folder, f"{t:05d}.jpg"))) for t, a in enumerate(first))
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "00003.jpg" in warnings[0] and "PIL" in warnings[0]


def test_mjpeg_video_equals_opencv(tmp_path, caplog):
    path = write_clip(str(tmp_path / "clip.avi"), "MJPG")
    assert video_codec(path) == "MJPG"
    source = FrameSource(path)
    want = list(source)
    with caplog.at_level(logging.WARNING, logger="libs.io.dali_decode"):
        got = list(source.frames(DaliDecoder(None)))
    assert not caplog.records                                  # no fallback: these are DALI's frames
    assert not any(np.array_equal(a, b) for a, b in zip(got, want))
    assert_close(got, want, max_diff=16, mean_diff=2.0)     # colour conversion of two decoders: ~1 level


@pytest.mark.parametrize("chunk", [1, 3, 5])
def test_chunks_keep_order_and_count(tmp_path, chunk):
    """Decoding in chunks (boundaries inside the video, a short last chunk) gives the frames of one pass."""
    path = write_clip(str(tmp_path / "clip.avi"), "MJPG")
    whole = list(DaliDecoder(None, chunk=FRAMES).video(path, FRAMES))
    parts = list(DaliDecoder(None, chunk=chunk).video(path, FRAMES))
    assert len(parts) == FRAMES and all(np.array_equal(a, b) for a, b in zip(parts, whole))


def test_vp9_webm_is_decoded_by_dali(tmp_path, caplog):
    source = FrameSource(write_clip(str(tmp_path / "clip.webm"), "VP90"))
    with caplog.at_level(logging.WARNING, logger="libs.io.dali_decode"):
        got = list(source.frames(DaliDecoder(None, chunk=3)))
    assert not caplog.records
    assert_close(got, list(source), max_diff=24, mean_diff=3.0)


def test_mpeg4_on_the_cpu_falls_back_to_opencv_with_one_warning(tmp_path, caplog):
    path = write_clip(str(tmp_path / "clip.mp4"), "mp4v")
    with caplog.at_level(logging.WARNING, logger="libs.io.dali_decode"):
        got = list(DaliDecoder(None, chunk=3).video(path, FRAMES))
    want = list(read_video_frames(path, FRAMES))
    assert len(got) == FRAMES and all(np.array_equal(a, b) for a, b in zip(got, want))
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [f"{path}: DALI's CPU decoder cannot decode MPEG-4 (only MJPEG, VP8, VP9); "
                        "decoding it with OpenCV"]


def test_video_dali_fails_on_midway_continues_with_opencv(tmp_path, caplog):
    """A cut-off MJPEG file: DALI fails on its last chunk; OpenCV decodes the rest, after one warning."""
    path = write_clip(str(tmp_path / "clip.avi"), "MJPG")
    with open(path, "rb") as f:
        data = f.read()
    with open(path, "wb") as f:
        f.write(data[:int(len(data) * 0.95)])                      # the last frame is cut
    source = FrameSource(path)
    with caplog.at_level(logging.WARNING, logger="libs.io.dali_decode"):
        got = list(source.frames(DaliDecoder(None, chunk=3)))
    assert_close(got, list(source), max_diff=16, mean_diff=2.0)
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 1 and messages[0].startswith(f"{path}: DALI cannot decode it (")
    assert messages[0].endswith(f"decoding it with OpenCV from frame {len(got) // 3 * 3}"), messages


def test_truncated_video_is_still_an_error(tmp_path):
    path = write_clip(str(tmp_path / "clip.avi"), "MJPG")
    with pytest.raises(VOSError, match=f"video {path} ended after {FRAMES} of {FRAMES + 2} frames"):
        list(DaliDecoder(None, chunk=4).video(path, FRAMES + 2))


def test_build_frame_decoder_picks_the_device():
    assert build_frame_decoder("PIL", torch.device("cuda", 0)) is None
    assert build_frame_decoder("DALI", torch.device("cpu")).device_id is None
    assert build_frame_decoder("DALI", torch.device("cuda", 1)).device_id == 1      # pipelines built on first use
    with pytest.raises(VOSError, match="data_backend must be PIL or DALI, got 'NVJPEG'"):
        build_frame_decoder("NVJPEG", torch.device("cpu"))


def test_without_dali_the_error_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "nvidia.dali", None)
    with pytest.raises(VOSError, match=r"data_backend DALI needs NVIDIA DALI.*pip install -r requirements-dali.txt"):
        build_frame_decoder("DALI", torch.device("cpu"))


@pytest.mark.gpu
def test_gpu_decoding_equals_pil_and_opencv(jpeg_folder, tmp_path, caplog):
    """On a GPU: nvJPEG frames ~ PIL's; the mixed video decoder reads MJPEG and MPEG-4 without a fallback."""
    decoder = DaliDecoder(torch.cuda.current_device(), batch=3, chunk=3)
    source = FrameSource(jpeg_folder)
    assert_close(list(source.frames(decoder)), list(source), max_diff=8, mean_diff=1.0)
    with caplog.at_level(logging.WARNING, logger="libs.io.dali_decode"):
        for name, fourcc in (("clip.avi", "MJPG"), ("clip.mp4", "mp4v")):
            video = FrameSource(write_clip(str(tmp_path / name), fourcc))
            assert_close(list(video.frames(decoder)), list(video), max_diff=24, mean_diff=3.0)
    assert not caplog.records
