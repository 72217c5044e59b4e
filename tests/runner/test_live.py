"""Tests of the live-input parts of libs/runner: frames of unknown number through the one per-video loop
with a bounded memory, the overlay video of a live run, the first mask's fitting, Ctrl-C and the window."""
import logging
import os
import signal

import cv2
import numpy as np
import pytest
import torch

from libs.inference import InferenceCore, InferenceSettings
from libs.inference.backend import Backend
from libs.inference.frames import Letterbox
from libs.errors import VOSError
from libs.io import FrameSource, davis_palette
from libs.runner import live
from libs.runner.live import LIVE_MEMORY_FRAMES, LiveWindow, fit_first_mask, live_memory_bound, stop_on_sigint
from libs.runner.writer import RATE_FRAMES, OverlayVideo
from tests.watch import record_bank_sizes

CPU = torch.device("cpu")
SIZE = (32, 48)


class FakeSource:
    """What the live helpers need of a LiveSource: stop()."""

    def __init__(self):
        self.interrupted = False

    def stop(self):
        self.interrupted = True


def _frames(count, seed=0):
    """A generator (no length) of random [H, W, 3] uint8 frames."""
    rng = np.random.default_rng(seed)
    for _ in range(count):
        yield rng.integers(0, 256, (*SIZE, 3), dtype=np.uint8)


class _Stream:
    """What run_live needs of a LiveSource: frames of unknown number, their names, counters, close()."""

    what, fps, captured, dropped, interrupted = "a test stream", None, 5, 0, False

    def frames(self):
        return _frames(5)

    def name(self, t):
        return f"live{t:03d}"

    def close(self):
        pass


def test_frames_of_unknown_number_run_through_the_core_with_a_bounded_bank(tmp_path, one_thread):
    """run_live takes a stream of unknown length; the bank never exceeds max_memory_frames."""
    torch.manual_seed(0)
    from libs.models import STM

    sizes = []
    settings = InferenceSettings(save_freq=1, loop=0, max_memory_frames=2)
    core = record_bank_sizes(InferenceCore(Backend(STM("resnet18", 8, 16).eval()), settings), sizes)
    first = np.zeros(SIZE, np.uint8)
    first[8:20, 10:30] = 1
    stats = live.run_live(core, _Stream(), first, davis_palette(), Letterbox(SIZE, SIZE), CPU, str(tmp_path))
    assert stats.segmented == 5
    assert sorted(n for n in os.listdir(tmp_path) if n.endswith(".png")) == [f"live{t:03d}.png" for t in range(5)]
    assert sizes == [0, 1, 2, 2, 2]                  # frame t-1 stored at step t; 2 kept (unbounded: 4)


def test_live_memory_bound_is_the_key_or_a_logged_default(caplog):
    with caplog.at_level(logging.INFO, logger="demo"):
        assert live_memory_bound(7) == 7 and caplog.messages == []
        assert live_memory_bound(0) == LIVE_MEMORY_FRAMES
    assert len(caplog.messages) == 1 and f"latest {LIVE_MEMORY_FRAMES} memory frames" in caplog.messages[0]


def test_live_video_plays_at_most_at_the_source_rate_and_keeps_every_frame(tmp_path):
    """Frames segmented faster than the source came: the mp4 plays at the source's rate; all frames kept."""
    video = OverlayVideo(str(tmp_path / "overlay.mp4"), source_fps=12.0)
    for t in range(RATE_FRAMES + 3):
        video.write(np.full((*SIZE, 3), 5 * t, np.uint8))
    video.close()
    source = FrameSource(str(tmp_path / "overlay.mp4"))
    assert len(source) == RATE_FRAMES + 3 and source.fps == pytest.approx(12.0)
    empty = OverlayVideo(str(tmp_path / "none.mp4"), source_fps=None)
    empty.close()                                       # nothing segmented: no file, no error
    assert not os.path.exists(tmp_path / "none.mp4")
    unfinished = OverlayVideo(str(tmp_path / "failed.mp4"), fps=25.0)      # a file's run that failed
    unfinished.write(np.zeros((*SIZE, 3), np.uint8))
    unfinished.close(complete=False)
    assert os.listdir(tmp_path) == ["overlay.mp4"]                        # no file, no temporary left


def test_first_mask_of_another_size_is_resized_nearest_and_logged(caplog):
    labels = np.zeros((24, 40), np.uint8)
    labels[4:12, 8:24], labels[14:20, 30:38] = 1, 2
    with caplog.at_level(logging.INFO, logger="demo"):
        fitted = fit_first_mask(labels, (48, 80), "m.png", "camera 0")
    assert fitted.shape == (48, 80) and set(np.unique(fitted)) == {0, 1, 2}
    assert np.array_equal(fitted[::2, ::2], labels)
    assert "mask m.png is 40x24 but camera 0 delivers 80x48 frames: resizing the mask (nearest neighbour)" \
        in caplog.text
    assert fit_first_mask(labels, (24, 40), "m.png", "camera 0") is labels
    tiny = np.zeros((48, 80), np.uint8)
    tiny[0, 1] = 1
    with pytest.raises(VOSError, match="mask m.png has no object left at the frames' size 8x4"):
        fit_first_mask(tiny, (4, 8), "m.png", "camera 0")


def test_ctrl_c_stops_the_source_once_then_interrupts():
    """First SIGINT: source.stop(); a second one inside: KeyboardInterrupt; the old handler back after."""
    source, before = FakeSource(), signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt), stop_on_sigint(source):
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(1000):                             # the handler runs between bytecodes
            if source.interrupted:
                break
        assert source.interrupted
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(10 ** 6):
            pass
    assert signal.getsignal(signal.SIGINT) is before


def test_window_needs_a_display_and_a_stop_key_stops(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    if os.name != "nt":
        with pytest.raises(VOSError, match="show True needs a display"):
            LiveWindow.check()
    shown, keys = [], iter([-1, ord("q")])
    monkeypatch.setattr(cv2, "namedWindow", lambda *a: None)
    monkeypatch.setattr(cv2, "destroyWindow", lambda *a: None)
    monkeypatch.setattr(cv2, "imshow", lambda name, bgr: shown.append(bgr.copy()))
    monkeypatch.setattr(cv2, "waitKey", lambda delay: next(keys, -1))
    source = FakeSource()
    window = LiveWindow(source)
    rgb = np.zeros((*SIZE, 3), np.uint8)
    rgb[..., 0] = 200                                     # red
    window.show(rgb)
    assert not source.interrupted and shown[0][0, 0].tolist() == [0, 0, 200]     # shown as BGR
    window.show(rgb)
    assert source.interrupted
    window.close()
