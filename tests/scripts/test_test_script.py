"""End-to-end tests of test.py: the real command line on tiny generated data sets.

Every command line of this module is started at once by the `runs` fixture (two at a time); each test
waits for its own run and checks what it wrote.
"""
import csv
import os
import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.ndimage import binary_erosion

from tests.helpers.scripts import (FRAME_SIZE, TEST_CMD, TINY, Job, agreement, read_png, save_stm, write_synthetic)
from libs.io import davis_palette, read_frame

FORMATS = ("segmentation", "heatmap", "mask")
CSVS = ("global_results-val.csv", "per-sequence_results-val.csv")


class RunsCode:
    """Unpickling this calls open(marker, 'w'): a file that would only exist if the pickle ran code."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _args(data_root, out, valset="SYNTHETIC", *extra):
    """test.py's command line with the tiny network and loop 0 (later KEY VAL pairs win)."""
    return TEST_CMD + TINY + ["loop", "0", "valset", valset, "data_root", str(data_root),
                              "output_dir", str(out)] + [str(e) for e in extra]


def _video_dirs(root, video):
    """(frame folder, annotation folder) of a video of a DAVIS-layout set."""
    return (os.path.join(root, "JPEGImages", "480p", video), os.path.join(root, "Annotations", "480p", video))


def _garbage(path):
    """Overwrite a file with bytes that are no image."""
    with open(path, "wb") as f:
        f.write(b"this is not an image \x00\x01\x02" * 20)


def _write_p(path, labels):
    """An indexed PNG with the DAVIS palette."""
    img = Image.fromarray(labels.astype(np.uint8))
    img.putpalette(davis_palette())
    img.save(path)


def _bad_args(case, name):
    """(extra KEY VAL, substrings the error must contain) of a case that is bad on the command line."""
    if name == "data_root_missing":
        return ["data_root", case / "nowhere"], ["DATASET.md", str(case / "nowhere")]
    if name == "unknown_valset":
        return ["valset", "NOSUCHSET"], ["NOSUCHSET", "DAVIS17", "SYNTHETIC", "FOLDER"]
    if name == "initial_missing":
        return ["initial", case / "missing.pth"], [str(case / "missing.pth")]
    if name == "initial_other_arch":
        path = save_stm(str(case / "r50.pth"), "resnet50")
        return ["initial", path], ["built with arch resnet50", path]
    if name == "initial_runs_code":
        torch.save({"state_dict": RunsCode(str(case / "marker"))}, case / "evil.pth")
        return ["initial", case / "evil.pth"], ["refused", str(case / "evil.pth")]
    if name in ("output_is_file", "output_under_file"):
        (case / "file.txt").write_text("keep me\n")
        out = case / "file.txt" if name == "output_is_file" else case / "file.txt" / "sub"
        return ["output_dir", out], [str(case / "file.txt"), "writ"]
    if name == "unknown_key":
        return ["loops", "1"], ["loops", "'loop'"]
    if name == "odd_items":
        return ["loop"], ["odd number"]
    return None


def _bad_data(root, name):
    """Spoil the copy of the one-video template at `root`; returns the substrings the error must contain."""
    frames, masks = _video_dirs(root, "synth-val-000")
    first_mask = os.path.join(masks, "00000.png")
    if name == "corrupt_frame":
        _garbage(os.path.join(frames, "00001.jpg"))
        return [os.path.join(frames, "00001.jpg")]
    if name == "corrupt_first_mask":
        _garbage(first_mask)
        return [first_mask]
    if name == "corrupt_later_mask":
        _garbage(os.path.join(masks, "00001.png"))  # the scored frame (the first and last are not)
        return [os.path.join(masks, "00001.png")]
    if name == "mask_size_differs":
        _write_p(first_mask, np.asarray(Image.open(first_mask).resize((64, 40), Image.NEAREST)))
        return [first_mask, "64x40", "80x48"]
    if name == "mask_no_object":
        _write_p(first_mask, np.zeros(FRAME_SIZE, np.uint8))
        return [first_mask, "no object"]
    if name == "one_frame_video":
        for stem in ("00001", "00002"):
            os.remove(os.path.join(frames, stem + ".jpg"))
            os.remove(os.path.join(masks, stem + ".png"))
        return ["synth-val-000", "1 frame"]
    raise AssertionError(f"unknown case {name}")


def _bad_case(case, template, name):
    """(extra KEY VAL, substrings the error must contain); the case's data set is a copy of `template`."""
    shutil.copytree(template, case / "data" / "SYNTHETIC")
    bad = _bad_args(case, name)
    return bad if bad is not None else ([], _bad_data(str(case / "data" / "SYNTHETIC"), name))


BAD_CASES = ("data_root_missing", "unknown_valset", "initial_missing", "initial_other_arch",
             "initial_runs_code", "output_is_file", "output_under_file", "corrupt_frame",
             "corrupt_first_mask", "corrupt_later_mask", "mask_size_differs", "mask_no_object",
             "one_frame_video", "unknown_key", "odd_items")


BAD_PARAMS = list(BAD_CASES)


def _void_and_gap_ids(root):
    """Rewrite every mask of a 2-object set: object 2 becomes id 3, object boundaries become void 255."""
    for video in sorted(os.listdir(os.path.join(root, "Annotations", "480p"))):
        folder = _video_dirs(root, video)[1]
        for name in sorted(os.listdir(folder)):
            labels = np.asarray(Image.open(os.path.join(folder, name))).copy()  # [H, W]
            edge = (labels > 0) & ~binary_erosion(labels > 0, iterations=1)
            labels[labels == 2] = 3
            labels[edge] = 255
            _write_p(os.path.join(folder, name), labels)


def _submit_good(pool, base, ckpt):
    """Start the runs that must succeed; returns name -> (Job, data set root, output folder)."""
    jobs = {}
    happy = base / "happy" / "data" / "SYNTHETIC"
    write_synthetic(str(happy), 2, 4, seed=1)
    out = base / "happy" / "out"
    jobs["happy"] = (Job(pool, _args(happy.parent, out, "SYNTHETIC", "initial", ckpt), [str(happy)]), happy, out)
    small = base / "small" / "SYNTHETIC"
    write_synthetic(str(small), 1, 3, seed=2)
    for fmt in FORMATS:
        out = base / fmt / "out"
        jobs[fmt] = (Job(pool, _args(small.parent, out, "SYNTHETIC", "save_indexed_format", fmt)), small, out)
    out = base / "loop1" / "out"
    jobs["loop1"] = (Job(pool, _args(small.parent, out, "SYNTHETIC", "loop", 1, "save_freq", 2)), small, out)
    for name, keep_image_sets in (("davis17", True), ("davis17_db_info", False)):
        root = base / name / "data" / "DAVIS17"
        write_synthetic(str(root), 1, 3, seed=3)
        if not keep_image_sets:
            shutil.rmtree(root / "ImageSets")
        out = base / name / "out"
        jobs[name] = (Job(pool, _args(root.parent, out, "DAVIS17", "initial", ckpt), [str(root)]), root, out)
    void = base / "void" / "data" / "SYNTHETIC"
    write_synthetic(str(void), 1, 3, seed=5, num_objects=2)
    _void_and_gap_ids(str(void))
    out = base / "void" / "out"
    jobs["void"] = (Job(pool, _args(void.parent, out, "SYNTHETIC", "initial", ckpt), [str(void)]), void, out)
    return jobs


@pytest.fixture(scope="module")
def runs(script_pool, tmp_path_factory, r18_checkpoint):
    """Every command line of this module, submitted at once: name -> (Job, data root, output folder)."""
    base = tmp_path_factory.mktemp("test_script")
    jobs = _submit_good(script_pool, base, r18_checkpoint)
    template = base / "template" / "SYNTHETIC"
    write_synthetic(str(template), 1, 3, seed=4)
    for name in BAD_CASES:
        case = base / name
        case.mkdir()
        extra, expect = _bad_case(case, template, name)
        args = _args(case / "data", case / "out", "SYNTHETIC", "initial", r18_checkpoint, *extra)
        job = Job(script_pool, args, [str(case), r18_checkpoint], exclude=("out",))
        job.expect = expect
        jobs[name] = (job, case, case / "out")
    return jobs


def _check_masks(data_root, out_dir, min_agreement=0.95):
    """Every frame has an indexed PNG with the set's palette at its size; frame 0 matches the given mask."""
    videos = sorted(os.listdir(os.path.join(data_root, "JPEGImages", "480p")))
    assert videos
    for video in videos:
        frames, masks = _video_dirs(data_root, video)
        stems = sorted(os.path.splitext(f)[0] for f in os.listdir(frames))
        with Image.open(os.path.join(masks, "00000.png")) as given:
            palette, given_labels = given.getpalette(), np.asarray(given)
        for stem in stems:
            mode, labels, written_palette, size = read_png(os.path.join(out_dir, video, stem + ".png"))
            assert mode == "P" and size == read_frame(os.path.join(frames, stem + ".jpg")).shape[:2]
            assert written_palette[:len(palette)] == palette
        first = read_png(os.path.join(out_dir, video, "00000.png"))[1]
        assert agreement(first, np.where(given_labels == 255, 0, given_labels)) >= min_agreement
    return videos


def _object_count(data_root, video):
    """Number of objects in a video's first mask."""
    labels = np.asarray(Image.open(os.path.join(_video_dirs(data_root, video)[1], "00000.png")))
    return len([v for v in np.unique(labels) if v not in (0, 255)])


def _check_scores(out_dir, data_root, videos):
    """J&F CSVs beside the masks: one global row in 0..1, one per-sequence row per object."""
    for name in CSVS:
        assert os.path.isfile(os.path.join(out_dir, name)), name
    with open(os.path.join(out_dir, "global_results-val.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 1 and 0.0 <= float(rows[0]["J&F-Mean"]) <= 1.0
    with open(os.path.join(out_dir, "per-sequence_results-val.csv"), newline="") as f:
        sequences = [row["Sequence"] for row in csv.DictReader(f)]
    assert len(sequences) == sum(_object_count(data_root, v) for v in videos)


@pytest.mark.slow
def test_happy_path_writes_indexed_masks_and_scores(runs):
    """SYNTHETIC with a checkpoint: masks for every frame, J&F printed and written as CSVs."""
    job, data_root, out = runs["happy"]
    run = job.result()
    assert run.returncode == 0, run.describe()
    videos = _check_masks(str(data_root), str(out / "SYNTHETIC"))
    assert len(videos) == 2
    _check_scores(str(out / "SYNTHETIC"), str(data_root), videos)
    assert "J&F" in run.output
    assert "UNTRAINED" not in run.output and "error:" not in run.stderr
    assert job.changed_outside() == []


@pytest.mark.parametrize("fmt", FORMATS)
def test_overlay_formats_write_rgb_images_and_no_scores(runs, fmt):
    """save_indexed_format segmentation|heatmap|mask: RGB overlays of the frame size, not evaluated."""
    job, data_root, out = runs[fmt]
    run = job.result()
    assert run.returncode == 0, run.describe()
    assert "UNTRAINED" in run.output
    frames, masks = _video_dirs(str(data_root), "synth-val-000")
    folder = out / "SYNTHETIC" / "synth-val-000"
    for stem in ("00000", "00001", "00002"):
        mode, pixels, _, size = read_png(str(folder / f"{stem}.png"))
        assert mode == "RGB" and size == FRAME_SIZE
    for name in CSVS:
        assert not os.path.exists(out / "SYNTHETIC" / name)
    rgb = read_frame(os.path.join(frames, "00000.jpg")).astype(np.int32)       # [H, W, 3]
    drawn = read_png(str(folder / "00000.png"))[1].astype(np.int32)              # [H, W, 3]
    given = np.asarray(Image.open(os.path.join(masks, "00000.png")))             # [H, W]
    inside = binary_erosion(given > 0, iterations=2)                            # [H, W] object interiors
    background = binary_erosion(given == 0, iterations=2)                        # [H, W] far from objects
    if fmt == "heatmap":
        assert np.abs(drawn - rgb).mean() > 10
        return
    table = np.asarray(davis_palette()).reshape(256, 3)
    expected = (rgb + table[np.ones_like(given) if fmt == "mask" else given]) / 2.0   # [H, W, 3] tinted
    assert np.mean(np.all(np.abs(drawn - expected) <= 2, axis=-1)[inside]) > 0.9
    assert np.abs(drawn[background] - rgb[background]).mean() < 1


@pytest.mark.slow
def test_loop_one_corrects_and_writes_every_frame(runs):
    """loop 1 save_freq 2 (test-time correction) runs and writes every frame."""
    job, data_root, out = runs["loop1"]
    run = job.result()
    assert run.returncode == 0, run.describe()
    _check_masks(str(data_root), str(out / "SYNTHETIC"))
    assert "loop 1" in run.output


@pytest.mark.parametrize("name", ["davis17", "davis17_db_info"])
def test_davis17_layouts(runs, name):
    """DAVIS17 under data_root/DAVIS17 with ImageSets, or with the original data/db_info.yaml only."""
    job, data_root, out = runs[name]
    run = job.result()
    assert run.returncode == 0, run.describe()
    videos = _check_masks(str(data_root), str(out / "DAVIS17"))
    _check_scores(str(out / "DAVIS17"), str(data_root), videos)
    assert job.changed_outside() == []


def test_void_and_non_consecutive_ids_are_handled(runs):
    """Masks with ids {1, 3} and void 255 boundaries: exit 0, frame 0 keeps ids 1 and 3, no 255 written."""
    job, data_root, out = runs["void"]
    run = job.result()
    assert run.returncode == 0, run.describe()
    _check_masks(str(data_root), str(out / "SYNTHETIC"))
    first = read_png(str(out / "SYNTHETIC" / "synth-val-000" / "00000.png"))[1]
    assert set(np.unique(first)) <= {0, 1, 3} and {1, 3} <= set(np.unique(first))
    for stem in ("00001", "00002"):
        assert 255 not in read_png(str(out / "SYNTHETIC" / "synth-val-000" / f"{stem}.png"))[1]


@pytest.mark.parametrize("name", BAD_PARAMS)
def test_bad_input_fails_with_one_error_line(runs, name):
    """Bad input: non-zero exit, exactly one `error:` line naming the problem, no traceback,
    nothing changed outside output_dir."""
    job = runs[name][0]
    run = job.result()
    assert run.returncode != 0, run.describe()
    assert len(run.error_lines()) == 1, run.describe()
    assert "Traceback" not in run.stderr, run.describe()
    for text in job.expect:
        assert text in run.error_text(), f"{text!r} missing\n{run.describe()}"
    assert job.changed_outside() == []


def test_pickle_that_runs_code_is_refused_without_running_it(runs, tmp_path):
    """The refused checkpoint's code did not run (its marker file is absent), though plain torch.load would."""
    job, case, _ = runs["initial_runs_code"]
    job.result()
    assert not os.path.exists(case / "marker")
    twin = tmp_path / "twin.pth"
    torch.save({"state_dict": RunsCode(str(tmp_path / "marker"))}, twin)
    torch.load(twin, weights_only=False)["state_dict"].close()   # unpickling ran open(marker, "w")
    assert os.path.exists(tmp_path / "marker")
