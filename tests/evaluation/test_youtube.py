"""YouTube-VOS plans, checks and the submission zip, on a generated meta.json."""
import json
import os
import zipfile

import numpy as np
import pytest

from libs.errors import VOSError
from libs.evaluation import youtube
from libs.evaluation.synthetic import save_label_png

META = {"videos": {
    "vid_a": {"objects": {"1": {"category": "cat", "frames": ["00000", "00005", "00010", "00015"]},
                          "2": {"category": "dog", "frames": ["00010", "00015"]}}},
    "vid_b": {"objects": {"3": {"category": "car", "frames": ["00005", "00010"]}}},
}}


@pytest.fixture
def meta_path(tmp_path):
    """meta.json on disk."""
    path = tmp_path / "meta.json"
    path.write_text(json.dumps(META))
    return str(path)


def write_results(root, plans, override=None):
    """Label PNGs holding every allowed id (a small square each) for every planned frame."""
    for name, plan in plans.items():
        for frame in plan.frames:
            labels = np.zeros((24, 32), dtype=np.uint8)
            for k in plan.allowed_ids(frame):
                labels[2 * k:2 * k + 2, 2 * k:2 * k + 2] = k
            if override and (name, frame) in override:
                labels = override[(name, frame)]
            save_label_png(os.path.join(root, "Annotations", name, frame + ".png"), labels)


def test_plan_lists_frames_from_the_first_given_mask_and_allowed_ids(meta_path):
    plans = youtube.all_plans(meta_path)
    assert plans["vid_a"].frames == ("00000", "00005", "00010", "00015")
    assert plans["vid_a"].starts == {1: "00000", 2: "00010"}
    assert plans["vid_a"].allowed_ids("00005") == (1,)
    assert plans["vid_a"].allowed_ids("00010") == (1, 2)
    assert plans["vid_b"].frames == ("00005", "00010")


def test_plan_from_jpeg_frames_keeps_every_frame_from_the_first_mask(meta_path, tmp_path):
    jpegs = tmp_path / "JPEGImages"
    for name, frames in [("vid_a", ["00000", "00005", "00010", "00015", "00020"]),
                         ("vid_b", ["00000", "00005", "00010", "00015"])]:
        (jpegs / name).mkdir(parents=True)
        for frame in frames:
            (jpegs / name / f"{frame}.jpg").write_bytes(b"")
    plans = youtube.all_plans(meta_path, str(jpegs))
    assert plans["vid_a"].frames[-1] == "00020"  # a JPEG after the last listed frame is expected too
    assert plans["vid_b"].frames == ("00005", "00010", "00015")  # 00000 precedes the first mask


def test_pack_writes_the_expected_layout(meta_path, tmp_path):
    results = tmp_path / "out"
    write_results(str(results), youtube.all_plans(meta_path))
    zip_path = tmp_path / "sub" / "submission.zip"
    assert youtube.pack_submission(str(results), meta_path, str(zip_path)) == 6
    with zipfile.ZipFile(zip_path) as archive:
        assert archive.namelist() == ["Annotations/vid_a/00000.png", "Annotations/vid_a/00005.png",
                                      "Annotations/vid_a/00010.png", "Annotations/vid_a/00015.png",
                                      "Annotations/vid_b/00005.png", "Annotations/vid_b/00010.png"]
    assert os.listdir(tmp_path / "sub") == ["submission.zip"]


def test_missing_and_extra_frames_are_named(meta_path, tmp_path):
    results = tmp_path / "out"
    plans = youtube.all_plans(meta_path)
    write_results(str(results), plans)
    os.remove(results / "Annotations" / "vid_b" / "00010.png")
    with pytest.raises(VOSError, match=r"'vid_b': frame 00010.png is missing"):
        youtube.check_results(str(results), plans)
    write_results(str(results), plans)
    save_label_png(str(results / "Annotations" / "vid_b" / "00000.png"), np.zeros((24, 32), np.uint8))
    with pytest.raises(VOSError, match=r"'vid_b'.*00000.png, which the server does not expect"):
        youtube.check_results(str(results), plans)


def test_an_object_before_its_first_mask_is_refused(meta_path, tmp_path):
    results = tmp_path / "out"
    early = np.zeros((24, 32), dtype=np.uint8)
    early[0:3, 0:3] = 2  # object 2 starts at 00010
    plans = youtube.all_plans(meta_path)
    write_results(str(results), plans, override={("vid_a", "00005"): early})
    zip_path = tmp_path / "submission.zip"
    with pytest.raises(VOSError, match=r"'vid_a' frame 00005.*object id 2"):
        youtube.pack_submission(str(results), meta_path, str(zip_path))
    assert not zip_path.exists() and [p.name for p in tmp_path.iterdir() if p.name.startswith(".tmp")] == []


def test_verify_zip_rejects_a_wrong_layout(meta_path, tmp_path):
    plans = youtube.all_plans(meta_path)
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as archive:
        for name in youtube.expected_names(plans):
            archive.writestr(name.replace("Annotations/", ""), b"x")
    with pytest.raises(VOSError, match="submission layout"):
        youtube.verify_zip(str(bad), plans)


def test_bad_meta_and_missing_annotations_folder(tmp_path, meta_path):
    broken = tmp_path / "broken.json"
    broken.write_text('{"objects": {}}')
    with pytest.raises(VOSError, match='no "videos" mapping'):
        youtube.load_meta(str(broken))
    with pytest.raises(VOSError, match="Annotations/<video>/<frame>.png"):
        youtube.check_results(str(tmp_path), youtube.all_plans(meta_path))


def test_command_line_packs_and_reports_errors(meta_path, tmp_path, capsys):
    results = tmp_path / "out"
    write_results(str(results), youtube.all_plans(meta_path))
    zip_path = tmp_path / "s.zip"
    assert youtube.main(["--results", str(results), "--meta", meta_path, "--out", str(zip_path)]) == 0
    assert "packed 6 PNGs" in capsys.readouterr().out
    assert youtube.main(["--results", str(tmp_path / "none"), "--meta", meta_path, "--out", str(zip_path)]) == 2
    assert capsys.readouterr().err.startswith("error: ")


def test_videos_not_in_meta_are_refused(meta_path, tmp_path):
    results = tmp_path / "out"
    plans = youtube.all_plans(meta_path)
    write_results(str(results), plans)
    (results / "Annotations" / "notes.txt").write_text("ignored: not a folder")
    assert youtube.check_results(str(results), plans) == 6
    (results / "Annotations" / "vid_zzz").mkdir()
    with pytest.raises(VOSError, match="not in meta.json, e.g. 'vid_zzz'"):
        youtube.check_results(str(results), plans)
