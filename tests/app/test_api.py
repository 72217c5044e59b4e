"""The Python session API (libs/api.py): the README snippet, corrections, reverse, stop, exact given masks,
export and its one-line errors."""
import os
import re

import cv2
import numpy as np
import pytest
from PIL import Image

from libs.api import VideoSession
from libs.errors import VOSError
from libs.io import FrameSource, davis_palette, read_frame, write_image, write_indexed_png

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY_KEYS = {"input_size": (32, 64), "loop": 0, "gpu_id": -1}


def frames_of(video: str):
    """The decoded frames of the generated video."""
    return list(FrameSource(video).frames())


pytestmark = pytest.mark.usefixtures("one_thread")    # tests/helpers/fixtures.py


@pytest.fixture
def session(tiny_checkpoint, tiny_video):
    """A fresh session on the generated video's frames (as a list) with the tiny model: each test its own,
    so no test depends on the masks another one gave (a shuffled order once failed on that)."""
    return VideoSession.open(frames_of(tiny_video[0]), tiny_checkpoint, **TINY_KEYS)


@pytest.fixture(scope="module")
def untouched(tiny_checkpoint, tiny_video):
    """A session that is never given a mask."""
    return VideoSession.open(frames_of(tiny_video[0]), tiny_checkpoint, **TINY_KEYS)


def readme_snippet() -> str:
    """The python block of the README's `From Python` section."""
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        text = f.read()
    section = text[text.index("### From Python"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_snippet_runs(tiny_checkpoint, tiny_video, tmp_path, capsys):
    """The README's snippet, on a generated video with a tiny checkpoint, writes every frame's results."""
    video, labels = tiny_video
    mask = str(tmp_path / "first.png")
    write_indexed_png(mask, labels, davis_palette())
    out = tmp_path / "export"
    code = readme_snippet()
    swaps = {"demo/sample/sample.mp4": video, "quickstart/checkpoint/epoch-0006.pth": tiny_checkpoint,
             "demo/sample/sample_mask.png": mask, "output/api/sample": str(out),
             "input_size=(48, 84)": "input_size=(32, 64)"}
    for old, new in swaps.items():
        assert old in code, f"the README snippet no longer contains {old!r}"
        code = code.replace(old, new)
    exec(compile(code, "README.md", "exec"), {})
    printed = capsys.readouterr().out.splitlines()
    assert [int(line.split()[0]) for line in printed] == list(range(10))
    names = sorted(os.listdir(out))
    assert names == [f"{i:05d}.png" for i in range(10)] + ["overlay", "overlay.mp4"]
    five = np.asarray(Image.open(out / "00005.png"))
    assert (five[:12, :12] == 1).all() and Image.open(out / "00005.png").mode == "P"
    assert np.array_equal(np.asarray(Image.open(out / "00000.png")), labels)
    assert len(os.listdir(out / "overlay")) == 10 and len(FrameSource(str(out / "overlay.mp4"))) == 10


def test_correction_repropagates_from_its_frame_and_keeps_earlier_results(session, tiny_checkpoint, tiny_video):
    """A mask added at frame 5 re-propagates 5..9 exactly as a fresh start at 5 does; 0..4 stay."""
    _, labels = tiny_video
    session.add_mask(0, labels)
    first = dict(session.propagate())
    assert sorted(first) == list(range(10)) and np.array_equal(first[0], labels)
    fixed = first[5].copy()
    fixed[:, :40] = 0
    fixed[10:30, 5:25] = 1
    session.add_mask(5, fixed)
    second = dict(session.propagate())
    assert sorted(second) == list(range(5, 10))
    results = session.masks()
    for t in range(5):
        assert np.array_equal(results[t], first[t]), t
    assert np.array_equal(results[5], fixed)
    fresh = VideoSession.open(frames_of(tiny_video[0])[5:], tiny_checkpoint, **TINY_KEYS)
    fresh.add_mask(0, fixed)
    for t, out in fresh.propagate():
        assert np.array_equal(out, results[t + 5]), t + 5
    assert any(not np.array_equal(results[t], first[t]) for t in range(6, 10))


def test_reverse_and_stop(session, tiny_video):
    """reverse=True feeds the frames backwards; stop() ends after the current frame, results kept."""
    _, labels = tiny_video
    session.add_mask(9, labels)
    order = [t for t, _ in session.propagate(reverse=True)]
    assert order == list(range(9, -1, -1))
    seen = []
    for t, _ in session.propagate(start=9, end=2, reverse=True):
        seen.append(t)
        if len(seen) == 3:
            session.stop()
    assert seen == [9, 8, 7] and not session.running


def test_a_mask_added_during_a_propagation_ends_it(session, tiny_video):
    """add_mask "at any time": a propagation under way ends before its next frame, storing nothing more."""
    _, labels = tiny_video
    session.add_mask(0, labels)
    frames = session.propagate(start=0)
    assert [next(frames)[0], next(frames)[0]] == [0, 1] and session.running
    kept = session.masks()
    fixed = kept[1].copy()
    fixed[:8, :8] = 2
    session.add_mask(1, fixed)
    assert not session.running and list(frames) == []
    assert all(np.array_equal(session.masks()[t], kept[t]) for t in kept if t != 1)
    assert np.array_equal(session.mask(1), fixed)
    assert [t for t, _ in session.propagate()] == list(range(1, 10))        # from the new mask on


def test_later_given_frames_keep_their_masks(session, tiny_video):
    """A frame given a mask inside the propagated range keeps exactly that mask."""
    _, labels = tiny_video
    later = np.zeros_like(labels)
    later[30:40, 60:75] = 2
    session.add_mask(0, labels)
    session.add_mask(6, later)
    results = dict(session.propagate(start=0))
    assert np.array_equal(results[6], later) and np.array_equal(results[0], labels)


def test_export_writes_palette_pngs_overlays_and_video(session, tiny_video, tmp_path):
    """export writes indexed PNGs with the DAVIS palette, overlay JPEGs and an mp4 of every frame."""
    session.add_mask(0, tiny_video[1])
    assert len(list(session.propagate())) == 10
    out = session.export(str(tmp_path / "out"))
    png = Image.open(os.path.join(out, "00003.png"))
    assert png.mode == "P" and png.size == (80, 48) and png.getpalette()[3:6] == davis_palette()[3:6]
    assert read_frame(os.path.join(out, "overlay", "00003.jpg")).shape == (48, 80, 3)
    assert len(FrameSource(os.path.join(out, "overlay.mp4"))) == 10
    assert not [n for n in os.listdir(out) if n.startswith(".")]          # no temporary file left


def test_open_from_a_folder_of_frames(tiny_checkpoint, tmp_path):
    """A folder of frames opens with its file names as frame names; a 1-frame folder is refused."""
    rng = np.random.default_rng(0)
    for i in (1, 2, 10):
        write_image(str(tmp_path / f"f{i}.jpg"), rng.integers(0, 255, (40, 56, 3), dtype=np.uint8))
    video = VideoSession.open(str(tmp_path), tiny_checkpoint, **TINY_KEYS)
    assert video.names == ["f1", "f2", "f10"] and video.size == (40, 56)
    single = tmp_path / "single"
    single.mkdir()
    cv2.imwrite(str(single / "a.png"), np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(VOSError, match="has 1 frame.*at least 2"):
        VideoSession.open(str(single), tiny_checkpoint, **TINY_KEYS)


@pytest.mark.parametrize("call, message", [
    (lambda s: s.add_mask(0, np.zeros((48, 80), np.uint8)), "mask for frame 0 has no object"),
    (lambda s: s.add_mask(0, np.ones((40, 80), np.uint8)), "is 80x40 but the video's frames are 80x48"),
    (lambda s: s.add_mask(0, np.ones((48, 80), np.float32)), "must hold integer labels"),
    (lambda s: s.add_mask(12, np.ones((48, 80), np.uint8)), "frame 12 does not exist: the video has frames 0..9"),
    (lambda s: s.propagate(), "no frame has a mask yet"),
    (lambda s: s.propagate(start=3), "frame 3 has no mask with an object"),
    (lambda s: s.export("unused"), "nothing to export"),
])
def test_bad_calls_are_one_line_errors(untouched, call, message):
    """Each misuse raises a VOSError saying what to do (and changes nothing)."""
    with pytest.raises(VOSError, match=message):
        call(untouched)
    assert untouched.masks() == {} and not untouched.running


def test_bad_config_overrides(tiny_checkpoint, tiny_video):
    """Overrides are checked like command-line keys; the checkpoint is not an override."""
    frames = frames_of(tiny_video[0])
    with pytest.raises(VOSError, match="unknown config key 'lop' in VideoSession.open; did you mean 'loop'"):
        VideoSession.open(frames, tiny_checkpoint, lop=0)
    with pytest.raises(VOSError, match="expects int"):
        VideoSession.open(frames, tiny_checkpoint, loop="many")
    with pytest.raises(VOSError, match="second argument, not as initial"):
        VideoSession.open(frames, tiny_checkpoint, initial=tiny_checkpoint)


def test_config_file_overrides_and_checkpoint_model_keys(tiny_checkpoint):
    """cfg_file is read first, then the overrides; the checkpoint's model keys win, as in the scripts."""
    from libs.api import session_config

    cfg = session_config(tiny_checkpoint, os.path.join(ROOT, "demo", "demo.yaml"), {"loop": 2, "keydim": 64})
    assert (cfg.loop, cfg.correction_rate, cfg.initial) == (2, 180.0, tiny_checkpoint)
    assert (cfg.arch, cfg.keydim, cfg.valdim) == ("resnet18", 16, 32)


def test_restore_replaces_every_mask(session, tiny_video):
    """restore() puts back given and propagated masks (as after a restart); a propagation then starts from a
    restored given frame; a mask of the wrong size or a running propagation is refused."""
    labels = tiny_video[1]
    result = np.where(labels == 2, 2, 0).astype(np.uint8)
    session.restore({0: labels}, {3: result, 4: np.zeros_like(labels)})
    assert session.given_frames() == [0] and session.mask_frames() == [0, 3, 4]
    assert np.array_equal(session.mask(0), labels) and np.array_equal(session.mask(3), result)
    assert [t for t, _ in session.propagate(end=2)] == [0, 1, 2]
    with pytest.raises(VOSError, match="every restored mask must be 80x48"):
        session.restore({}, {1: np.zeros((4, 4), np.uint8)})
    frames = session.propagate(start=0)
    next(frames)
    with pytest.raises(VOSError, match="a propagation is running"):
        session.restore({}, {})
    frames.close()


def test_object_ids_are_kept_and_a_removed_object_is_gone(session, tiny_video):
    """ids {3, 7} stay {3, 7} in every result (never 1, 2, 4..6); given again without 7, it is gone."""
    _, labels = tiny_video
    ids = np.select([labels == 1, labels == 2], [3, 7], 0).astype(np.uint8)
    session.add_mask(0, ids)
    found = set()
    for _, result in session.propagate():
        found |= set(np.unique(result).tolist())
    assert found == {0, 3, 7}
    session.add_mask(0, np.where(ids == 7, 0, ids).astype(np.uint8))
    assert set().union(*(set(np.unique(r).tolist()) for _, r in session.propagate())) == {0, 3}
