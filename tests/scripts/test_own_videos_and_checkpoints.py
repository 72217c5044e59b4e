"""The newcomer and own-videos paths through the real command lines: a FOLDER set scored, a run that goes
on past a bad video, checkpoints that carry their model config, clear errors, --help.

Every command line of this module is started at once by the `runs` fixture (two at a time).
"""
import csv
import os
import shutil

import pytest
import torch

from tests.helpers.scripts import DEMO_CMD, FRAME_SIZE, REPO, TEST_CMD, TINY, Job, read_png, write_synthetic
from libs.config import load_cfg
from libs.models import STM, save_weights

TRAIN_CMD = TEST_CMD[:1] + ["train.py", "--cfg", "config.yaml"]
STORED = ["arch", "resnet18", "keydim", "8", "valdim", "16"]     # the shape the trained checkpoint stores


def _train_checkpoint(path):
    """A checkpoint in train.py's layout (weights + the YAML config it was trained with), keydim 8 valdim 16."""
    cfg = load_cfg(os.path.join(REPO, "configs", "quickstart.yaml"), STORED)
    torch.save({"state_dict": STM("resnet18", 8, 16).state_dict(), "epoch": 6, "config": cfg.dump()}, path)
    return str(path)


def _folder_set(root, template):
    """A FOLDER data set (ROOT/JPEGImages/<video>, ROOT/Annotations/<video>, every frame annotated)."""
    shutil.copytree(template / "JPEGImages" / "480p", root / "JPEGImages")
    shutil.copytree(template / "Annotations" / "480p", root / "Annotations")
    return root


def _test_args(data_root, out, valset, *extra):
    """test.py with the tiny network, loop 0."""
    return TEST_CMD + TINY + ["loop", "0", "valset", valset, "data_root", str(data_root),
                              "output_dir", str(out)] + [str(e) for e in extra]


def _submit(pool, base, template):
    """name -> Job (with `.paths` of what the test checks)."""
    jobs = {}
    good = _folder_set(base / "good" / "FOLDER", template)
    jobs["folder"] = Job(pool, _test_args(good.parent, base / "good" / "out", "FOLDER"), [str(good)])
    bad = _folder_set(base / "bad" / "FOLDER", template)
    with open(bad / "JPEGImages" / "synth-val-000" / "00001.jpg", "wb") as f:
        f.write(b"not a jpeg" * 10)
    jobs["bad_video"] = Job(pool, _test_args(bad.parent, base / "bad" / "out", "FOLDER"), [str(bad)])
    trained = _train_checkpoint(base / "epoch-0006.pth")
    jobs["test_stored"] = Job(pool, _test_args(good.parent, base / "stored" / "out", "FOLDER", "initial", trained))
    demo = DEMO_CMD + ["initial", trained, "gpu_id", "-1", "loop", "0", "output_dir", str(base / "demo")]
    jobs["demo_stored"] = Job(pool, demo)              # runs at the checkpoint's input_size [48, 84]
    unsized = [a for a in _test_args(good.parent, base / "size" / "own", "FOLDER", "initial", trained)]
    unsized[unsized.index("input_size"):unsized.index("input_size") + 2] = []
    jobs["size_own"] = Job(pool, unsized)              # no input_size: the checkpoint's
    jobs["size_given"] = Job(pool, _test_args(good.parent, base / "size" / "given", "FOLDER", "initial", trained,
                                              "input_size", "[48,84]"))
    released = str(base / "released.pth")
    save_weights(STM("resnet18", 8, 16), released)
    jobs["released"] = Job(pool, _test_args(good.parent, base / "rel" / "out", "FOLDER", "initial", released))
    (base / "model.pth").write_text("these are not weights\n" * 10)
    jobs["text_pth"] = Job(pool, _test_args(good.parent, base / "txt" / "out", "FOLDER", "initial", base / "model.pth"))
    (base / "broken.yaml").write_text("arch: resnet18\nloop: [1, 2\nkeydim: 8\n")
    jobs["yaml"] = Job(pool, TEST_CMD[:2] + ["--cfg", str(base / "broken.yaml")])
    jobs["proc"] = Job(pool, TRAIN_CMD + ["checkpoint", "/proc/stm-cycle-test", "gpu_id", "-1"])
    for script in ("train.py", "test.py", "demo/demo.py"):
        jobs["help " + script] = Job(pool, TEST_CMD[:1] + [script, "--help"])
    return jobs


@pytest.fixture(scope="module")
def runs(script_pool, tmp_path_factory):
    """Every command line of this module, submitted at once."""
    base = tmp_path_factory.mktemp("own_videos")
    template = base / "template"
    write_synthetic(str(template), 2, 4, seed=11)
    jobs = _submit(script_pool, base, template)
    jobs["base"] = base
    return jobs


def _global_jf(folder):
    """The J&F-Mean of global_results-FOLDER.csv in `folder`."""
    with open(os.path.join(folder, "global_results-FOLDER.csv"), newline="") as f:
        return float(next(csv.DictReader(f))["J&F-Mean"])


def _sequences(folder):
    """The Sequence column of per-sequence_results-FOLDER.csv in `folder`."""
    with open(os.path.join(folder, "per-sequence_results-FOLDER.csv"), newline="") as f:
        return [row["Sequence"] for row in csv.DictReader(f)]


def test_folder_set_with_full_ground_truth_is_scored(runs):
    """FOLDER with a PNG for every frame: exit 0, masks, CSVs and plot beside them, J&F printed."""
    run = runs["folder"].result()
    assert run.returncode == 0, run.describe()
    out = runs["base"] / "good" / "out" / "FOLDER"
    assert 0.0 <= _global_jf(out) <= 1.0
    assert {s.rsplit("_", 1)[0] for s in _sequences(out)} == {"synth-val-000", "synth-val-001"}
    assert os.path.isfile(out / "per-sequence_results-FOLDER.png")
    assert read_png(str(out / "synth-val-001" / "00003.png"))[3] == FRAME_SIZE
    assert "J&F-Mean" in run.output and "Traceback" not in run.stderr
    assert runs["folder"].changed_outside() == []


def test_a_bad_video_is_reported_and_the_others_are_segmented_and_scored(runs):
    """A corrupt frame in video 000: one-line reason, video 001 still segmented and scored, summary, exit 2."""
    run = runs["bad_video"].result()
    assert run.returncode == 2, run.describe()
    bad_frame = str(runs["base"] / "bad" / "FOLDER" / "JPEGImages" / "synth-val-000" / "00001.jpg")
    assert "video synth-val-000 FAILED" in run.stderr and bad_frame in run.stderr
    assert len(run.error_lines()) == 1 and "Traceback" not in run.stderr, run.describe()
    assert run.error_lines()[0].startswith("error: 1 of 2 videos failed")
    assert f"  synth-val-000: cannot read frame {bad_frame}" in run.error_text()
    out = runs["base"] / "bad" / "out" / "FOLDER"
    assert sorted(os.listdir(out / "synth-val-001")) == [f"{t:05d}.png" for t in range(4)]
    assert {s.rsplit("_", 1)[0] for s in _sequences(out)} == {"synth-val-001"}
    assert "[2/2] synth-val-001: 4 frames" in run.stderr


def test_progress_is_plain_lines_when_not_on_a_terminal(runs):
    """stderr is a pipe: a line for the set's progress and one per finished video, no carriage-return redraws."""
    run = runs["folder"].result()
    assert "\r" not in run.output
    assert "2 videos, 1 at once: 8/8 frame" in run.stderr
    assert "[1/2] synth-val-000: 4 frames" in run.stderr and "[2/2] synth-val-001: 4 frames" in run.stderr


def test_test_py_takes_the_model_shape_from_a_train_checkpoint(runs):
    """The run says keydim 16 valdim 32 but the checkpoint stores 8 / 16: one log line, then it runs."""
    run = runs["test_stored"].result()
    assert run.returncode == 0, run.describe()
    assert "was trained with keydim 8, valdim 16: using those (the config says keydim 16, valdim 32)" in run.stderr
    assert os.path.isfile(runs["base"] / "stored" / "out" / "FOLDER" / "global_results-FOLDER.csv")


def test_demo_runs_the_bundled_sample_with_trained_weights(runs):
    """The README's demo command after the quickstart (demo.yaml says keydim 128 valdim 512)."""
    run = runs["demo_stored"].result()
    assert run.returncode == 0, run.describe()
    assert ("was trained with keydim 8, valdim 16, input_size [48, 84]: using those (the config says keydim 128, "
            "valdim 512, input_size [240, 427])") in run.stderr
    out = runs["base"] / "demo" / "sample"
    assert len([f for f in os.listdir(out) if f.endswith(".png")]) == 30
    assert os.path.isfile(out / "overlay.mp4") and "UNTRAINED" not in run.output


def test_test_py_runs_at_the_checkpoint_training_size_unless_one_is_given(runs):
    """No input_size on the command line or in config.yaml: test.py runs at the [48, 84] the checkpoint was
    trained at (one log line), with the same masks as a run given input_size [48, 84]."""
    own, given = runs["size_own"].result(), runs["size_given"].result()
    assert own.returncode == 0 and given.returncode == 0, own.describe() + given.describe()
    assert own.stderr.count("was trained with") == 1 and "input_size [48, 84]: using those" in own.stderr
    assert "on the CPU: resnet18 at 48x84" in own.stderr
    assert "was trained with keydim 8, valdim 16: using those (the config says keydim 16, valdim 32)" in given.stderr
    for video, frame in (("synth-val-000", "00003.png"), ("synth-val-001", "00002.png")):
        a, b = (read_png(str(runs["base"] / "size" / run / "FOLDER" / video / frame))[1] for run in ("own", "given"))
        assert (a == b).all()


def test_checkpoint_without_config_names_the_values_that_fit(runs):
    """A weights-only checkpoint of another shape: the error says which keys to pass."""
    run = runs["released"].result()
    assert run.returncode == 2 and len(run.error_lines()) == 1, run.describe()
    assert "this checkpoint has keydim 8, valdim 16: pass `keydim 8 valdim 16`" in run.error_text()


def test_text_file_named_model_pth_is_a_clear_error(runs):
    """No Python exception names, the file named, what to pass instead."""
    run = runs["text_pth"].result()
    assert run.returncode == 2 and len(run.error_lines()) == 1, run.describe()
    text = run.error_text()
    assert str(runs["base"] / "model.pth") in text and "not a PyTorch weights file" in text
    assert "Error" not in text and "Traceback" not in run.stderr


def test_yaml_syntax_error_gives_the_line(runs):
    """A syntax error on line 3 of --cfg (the bracket opened on line 2 meets `keydim:`)."""
    run = runs["yaml"].result()
    assert run.returncode == 2, run.describe()
    assert "is not valid YAML: line 3, column 7" in run.error_text()


def test_unwritable_checkpoint_names_the_key(runs):
    """train.py checkpoint /proc/x: the error names `checkpoint`, not output_dir."""
    run = runs["proc"].result()
    assert run.returncode == 2, run.describe()
    text = run.error_text()
    assert "/proc/stm-cycle-test" in text and "set `checkpoint`" in text and "output_dir" not in text


@pytest.mark.parametrize("script", ["train.py", "test.py", "demo/demo.py"])
def test_help_shows_examples_keys_and_defaults(runs, script):
    """--help: usage examples that paste (.venv/bin/python), most used keys, where every key is."""
    run = runs["help " + script].result()
    assert run.returncode == 0, run.describe()
    assert "examples:" in run.stdout and f".venv/bin/python {script}" in run.stdout
    assert "most used keys" in run.stdout and "libs/config/defaults.py" in run.stdout
    assert "gpu_id" in run.stdout and "initial" in run.stdout
