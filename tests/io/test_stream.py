"""Tests of libs/io/stream.py: live sources (a video file read as a stream, an http stream), dropped
frames, stop, errors."""
import functools
import http.server
import threading
import time

import numpy as np
import pytest

from libs.errors import VOSError
from libs.io import write_video
from libs.io.stream import LiveSource, is_live_path, live_name


def _clip(path, count, fps):
    """A video of `count` tiny frames whose grey level encodes the frame number (8 * t)."""
    write_video(str(path), [np.full((16, 24, 3), 8 * t, np.uint8) for t in range(count)], fps)
    return str(path)


def _wait_for(condition, timeout=20.0):
    """Poll `condition()` until it holds (no fixed sleeps: the machine may be busy)."""
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.01)


def test_paced_file_yields_frames_in_capture_order(tmp_path):
    """Frames come in order, named by capture number; every captured frame is segmented or dropped."""
    source = LiveSource(_clip(tmp_path / "a.mp4", 5, fps=50), pace=True)
    assert source.size == (16, 24) and source.fps == pytest.approx(50)
    got, names = [], []
    for t, rgb in enumerate(source.frames()):
        got.append(int(rgb[0, 0, 0]))
        names.append(source.name(t))
    assert source.captured == 5 and source.segmented + source.dropped == 5
    assert names[0] == "00000" and names == sorted(names) and len(set(names)) == len(names)
    assert got == sorted(got) and abs(got[0] - 0) <= 3 and not source.interrupted


def test_slow_consumer_gets_the_newest_frame_and_drops_are_counted(tmp_path):
    """While the consumer is busy the reader replaces the waiting frame: only the newest is kept."""
    source = LiveSource(_clip(tmp_path / "b.mp4", 10, fps=200), pace=True)
    frames = source.frames()
    next(frames)                                          # frame 0, read when opening
    _wait_for(lambda: source.captured == 10)              # the reader got to the end meanwhile
    last = next(frames)
    assert source.name(1) == "00009" and abs(int(last[0, 0, 0]) - 72) <= 3
    assert list(frames) == []
    assert source.captured == 10 and source.segmented == 2 and source.dropped == 8


def test_stop_ends_the_iteration_before_the_next_frame(tmp_path):
    """stop() (what Ctrl-C calls) ends the stream at once; a frame left waiting counts as dropped."""
    source = LiveSource(_clip(tmp_path / "c.mp4", 30, fps=20), pace=True)
    frames = source.frames()
    next(frames)
    source.stop()
    assert list(frames) == []
    assert source.interrupted and source.segmented == 1
    assert source.captured == source.segmented + source.dropped


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    """Serves a folder without logging each request."""

    def log_message(self, *args):
        pass


def test_http_stream_is_read_through_opencv(tmp_path):
    """A video served over http (OpenCV's FFmpeg reads the URL): every frame is captured, frame 0 first."""
    _clip(tmp_path / "served.mp4", 6, fps=25)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler,
                                                                                directory=str(tmp_path)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/served.mp4"
        source = LiveSource(url)
        assert source.what == f"stream {url}" and source.size == (16, 24) and not source.pace
        frames = source.frames()
        first = next(frames)
        assert source.name(0) == "00000" and abs(int(first[0, 0, 0])) <= 3
        rest = list(frames)
    finally:
        server.shutdown()
        server.server_close()
    assert source.captured == 6 and source.segmented == 1 + len(rest) and source.dropped == 5 - len(rest)


@pytest.mark.parametrize("path, expect", [
    ("99", "cannot open camera 99: check that a camera with this index is connected"),
    ("http://127.0.0.1:9/none.mjpg", "cannot open stream http://127.0.0.1:9/none.mjpg: check the address"),
    ("nowhere.mp4", "video_path 'nowhere.mp4' is no camera index (0, 1, ...), stream URL"),
])
def test_unopenable_source_is_one_clear_error(path, expect):
    with pytest.raises(VOSError) as err:
        LiveSource(path)
    assert expect in str(err.value) and "\n" not in str(err.value)


def test_live_paths_and_their_output_names():
    assert is_live_path("0") and is_live_path("rtsp://h/cam") and is_live_path("HTTP://h/v")
    assert not is_live_path("clip.mp4") and not is_live_path("frames/")
    assert live_name("0") == "camera0" and live_name("rtsp://user:pw@10.0.0.2:554/cam1") == "cam1"
    assert live_name("http://host:8080/video.mjpg?x=1") == "video" and live_name("rtsp://user:pw@host") == "host"
    assert live_name("/a/clip.mp4") == "clip"
