"""Tests of libs/io/video.py: FrameSource on folders and video files, and write_video."""
import os

import numpy as np
import pytest

from libs.errors import VOSError
from libs.io import FrameSource, write_image, write_video


def _frames(count, size=(32, 48), seed=0):
    """Smooth, distinct RGB frames (video codecs keep them close)."""
    ys, xs = np.mgrid[0:size[0], 0:size[1]]
    out = []
    for t in range(count):
        base = np.stack([xs * 4 + 10 * t, ys * 6, np.full(size, 40 + 20 * t)], axis=2)
        out.append(np.clip(base + seed, 0, 255).astype(np.uint8))
    return out


def test_folder_source_natural_order_and_lazy_frames(tmp_path):
    frames = _frames(3)
    for name, frame in zip(["frame10", "frame2", "frame1"], frames):
        write_image(str(tmp_path / f"{name}.png"), frame)
    (tmp_path / "notes.txt").write_text("ignored: not an image")
    source = FrameSource(str(tmp_path))
    assert len(source) == 3 and source.names == ["frame1", "frame2", "frame10"]
    assert source.fps == 25.0 and tuple(source.size) == (32, 48)
    read = list(source)
    assert np.array_equal(read[0], frames[2]) and np.array_equal(read[2], frames[0])


def test_folder_errors(tmp_path):
    with pytest.raises(VOSError, match="nowhere does not exist"):
        FrameSource(str(tmp_path / "nowhere"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(VOSError, match="empty has no frames"):
        FrameSource(str(tmp_path / "empty"))
    mixed = tmp_path / "mixed"
    write_image(str(mixed / "00000.png"), _frames(1)[0])
    write_image(str(mixed / "00001.png"), _frames(1, size=(30, 48))[0])
    source = FrameSource(str(mixed))
    with pytest.raises(VOSError, match="frame 00001 of .*mixed is 48x30 but the first frame is 48x32"):
        list(source)
    dup = tmp_path / "dup"
    write_image(str(dup / "a.png"), _frames(1)[0])
    write_image(str(dup / "a.jpg"), _frames(1)[0])
    with pytest.raises(VOSError, match="two frames named 'a'"):
        FrameSource(str(dup))
    (tmp_path / "clip.gif").write_bytes(b"GIF89a")
    with pytest.raises(VOSError, match="neither a folder of frames nor a video file"):
        FrameSource(str(tmp_path / "clip.gif"))


def test_write_video_and_read_it_back(tmp_path):
    frames = _frames(6)
    path = str(tmp_path / "out" / "clip.mp4")
    assert write_video(path, iter(frames), fps=12.0) == 6
    assert sorted(os.listdir(tmp_path / "out")) == ["clip.mp4"]
    source = FrameSource(path)
    assert len(source) == 6 and source.names == ["00000", "00001", "00002", "00003", "00004", "00005"]
    assert source.fps == pytest.approx(12.0) and tuple(source.size) == (32, 48)
    read = list(source)
    assert len(read) == 6 and read[0].dtype == np.uint8
    for original, decoded in zip(frames, read):
        assert np.abs(original.astype(int) - decoded).mean() < 8


def test_odd_sizes_are_padded_to_even(tmp_path):
    path = str(tmp_path / "odd.mp4")
    write_video(path, _frames(3, size=(31, 47)), fps=25)
    assert tuple(FrameSource(path).size) == (32, 48)


def test_write_video_errors_leave_no_file(tmp_path):
    with pytest.raises(VOSError, match="no frames to write"):
        write_video(str(tmp_path / "a.mp4"), [], fps=25)
    with pytest.raises(VOSError, match="frame 1 for video .*b.mp4 is 48x30, the first was 48x32"):
        write_video(str(tmp_path / "b.mp4"), [_frames(1)[0], _frames(1, size=(30, 48))[0]], fps=25)
    with pytest.raises(VOSError, match="use a .mp4"):
        write_video(str(tmp_path / "c.gif"), _frames(1), fps=25)
    with pytest.raises(VOSError, match="frame rate"):
        write_video(str(tmp_path / "d.mp4"), _frames(1), fps=0)
    assert os.listdir(tmp_path) == []


def test_unreadable_video_is_an_error(tmp_path):
    (tmp_path / "bad.mp4").write_bytes(b"\x00" * 2000)
    with pytest.raises(VOSError, match="bad.mp4"):
        FrameSource(str(tmp_path / "bad.mp4"))


def test_video_file_writer_appends_frames_and_publishes_on_close(tmp_path):
    """Frames written one at a time; the file appears at its name only when closed (then playable)."""
    from libs.io.video import VideoFileWriter

    path = tmp_path / "live.mp4"
    with VideoFileWriter(str(path)) as video:
        video.set_fps(8.5)
        for frame in _frames(4):
            video.write(frame)
        assert not path.exists() and len(os.listdir(tmp_path)) == 1      # a hidden temporary file
    assert os.listdir(tmp_path) == ["live.mp4"] and video.count == 4
    source = FrameSource(str(path))
    assert len(source) == 4 and source.fps == pytest.approx(8.5)
    with pytest.raises(RuntimeError), VideoFileWriter(str(tmp_path / "failed.mp4"), fps=5) as video:
        video.write(_frames(1)[0])
        raise RuntimeError("the run failed")
    assert os.listdir(tmp_path) == ["live.mp4"]
