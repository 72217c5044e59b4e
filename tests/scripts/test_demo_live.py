"""demo/demo.py on live input: a generated video read as a stream (`live True`), Ctrl-C, sources that do
not open. The stream test runs the real main() in this process (to look into the engine's memory bank);
the Ctrl-C test runs the real command line and interrupts it."""
import importlib.util
import logging
import os
import re
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest
from PIL import Image

from tests.helpers.scripts import DEMO_CMD, FRAME_SIZE, REPO, TINY, agreement, read_png
from libs.dataset.synthetic import write_video_file
from libs.io import davis_palette
from tests.watch import record_bank_sizes

SUMMARY = re.compile(r"live: (\d+) frames segmented at ([\d.]+) FPS; dropped (\d+) of (\d+) captured frames "
                     r"\(source ([\d.]+) FPS\); (stopped|end of stream) after [\d.]+ s")


@pytest.fixture
def demo_module(monkeypatch):
    """demo/demo.py imported as a module; the root logger's set-up (main() redoes it) is restored after."""
    spec = importlib.util.spec_from_file_location("demo_live_under_test", os.path.join(REPO, "demo", "demo.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield module
    root.handlers[:] = handlers
    root.setLevel(level)


def _run_main(module, monkeypatch, *args):
    """Run demo.py's main() (through run_main: errors become one line) with `args` as the command line."""
    argv = ["demo.py", "--cfg", os.path.join(REPO, "demo", "demo.yaml")] + [str(a) for a in args]
    monkeypatch.setattr(sys, "argv", argv)
    module.run_main(module.main)


def _video_frames(path):
    """The number of frames cv2 decodes from `path`."""
    cap, count = cv2.VideoCapture(str(path)), 0
    while cap.read()[0]:
        count += 1
    cap.release()
    return count


def test_stream_is_segmented_as_it_comes_with_a_bounded_memory(tmp_path, demo_module, monkeypatch, capfd,
                                                               one_thread):
    """A 12-frame video read as a stream at 8 FPS, with a half-size mask and max_memory_frames 2:
    every captured frame is segmented or dropped, the bank never holds more than 2 frames, the summary
    gives FPS and drops, and masks, overlays and overlay.mp4 are written for the segmented frames."""
    video, mask = write_video_file(str(tmp_path / "clip.mp4"), seed=5, num_frames=12, size=FRAME_SIZE, fps=8)
    labels = np.asarray(Image.open(mask))
    small = tmp_path / "small_mask.png"
    half = Image.fromarray(labels[::2, ::2])
    half.putpalette(davis_palette())
    half.save(small)
    engines, sizes = [], []
    build = demo_module.build_core

    def watched_build(*args, **kwargs):
        engines.append(record_bank_sizes(build(*args, **kwargs), sizes))
        return engines[-1]

    monkeypatch.setattr(demo_module, "build_core", watched_build)
    _run_main(demo_module, monkeypatch, *TINY, "loop", 0, "video_path", video, "mask_path", small, "live", True,
              "save_freq", 1, "max_memory_frames", 2, "output_dir", tmp_path / "out")
    output = "".join(capfd.readouterr())
    found = SUMMARY.search(output)
    assert found, output
    segmented, fps, dropped, captured = int(found[1]), float(found[2]), int(found[3]), int(found[4])
    assert captured == 12 and segmented + dropped == 12 and segmented >= 2 and fps > 0
    assert found[5] == "8.0" and found[6] == "end of stream"
    assert "resizing the mask (nearest neighbour)" in output
    assert engines[0].bank.max_frames == 2 and max(sizes) <= 2 and len(sizes) == segmented
    assert sizes[-1] == min(2, segmented - 1)
    out = tmp_path / "out" / "clip"
    names = sorted(n[:-4] for n in os.listdir(out) if n.endswith(".png"))
    assert len(names) == segmented and names[0] == "00000" and names[-1] == "00011"   # the last frame always
    assert sorted(os.listdir(out / "overlay")) == [n + ".jpg" for n in names]
    assert _video_frames(out / "overlay.mp4") == segmented
    mode, first, palette, size = read_png(str(out / "00000.png"))
    assert mode == "P" and size == FRAME_SIZE and agreement(first, labels) >= 0.9


@pytest.mark.parametrize("extra, expect", [
    (["video_path", 99], "cannot open camera 99: check that a camera with this index is connected"),
    (["video_path", "http://127.0.0.1:9/none.mjpg"], "cannot open http://127.0.0.1:9/none.mjpg: "),
    (["video_path", "http://127.0.0.1:9/none.mjpg", "live", True], "cannot open stream http://127.0.0.1:9/none.mjpg"),
    (["video_path", 0, "show", False, "write_results", False], "nothing would be shown or written"),
    (["video_path", REPO, "live", True], "is a folder of frames: live input is a camera index"),
    (["video_path", os.path.join(REPO, "demo", "sample", "sample.mp4"), "show", True],
     "show and write_results apply to live input"),
])
def test_live_source_that_cannot_work_is_one_error_line(tmp_path, demo_module, monkeypatch, capsys, extra, expect):
    mask = tmp_path / "mask.png"
    Image.fromarray(np.ones((8, 8), np.uint8)).save(mask)
    with pytest.raises(SystemExit) as exit_:
        _run_main(demo_module, monkeypatch, *TINY, "mask_path", mask, "output_dir", tmp_path / "out", *extra)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert exit_.value.code == 2 and len(lines) == 1 and expect in lines[0] and "Traceback" not in err, err
    assert not os.path.exists(tmp_path / "out")


@pytest.mark.slow
def test_ctrl_c_finishes_the_frame_closes_the_video_and_prints_the_summary(tmp_path):
    """The real command line on a 40 s stream: SIGINT once the first mask is written ends the run with
    exit 0, the summary, and an overlay.mp4 that plays every segmented frame."""
    video, mask = write_video_file(str(tmp_path / "long.mp4"), seed=2, num_frames=400, size=FRAME_SIZE, fps=10)
    out = tmp_path / "out" / "long"
    args = DEMO_CMD + TINY + ["loop", "0", "video_path", video, "mask_path", mask, "live", "True",
                              "output_dir", str(tmp_path / "out")]
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(args, cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 240
        while not os.path.exists(out / "00000.png") and proc.poll() is None:
            assert time.monotonic() < deadline, "no frame written in 240 s"
            time.sleep(0.05)
        assert proc.poll() is None, proc.communicate()[0]
        proc.send_signal(signal.SIGINT)
        output = proc.communicate(timeout=120)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, output
    assert "Ctrl-C: stopping after the current frame" in output and "Traceback" not in output
    found = SUMMARY.search(output)
    assert found and found[6] == "stopped", output
    segmented, dropped, captured = int(found[1]), int(found[3]), int(found[4])
    assert segmented + dropped == captured < 400
    names = [n for n in os.listdir(out) if n.endswith(".png")]
    assert len(names) == segmented and not [n for n in os.listdir(out) if n.startswith(".")]
    assert _video_frames(out / "overlay.mp4") == segmented
