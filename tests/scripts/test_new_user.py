"""What a new user hit on a fresh clone (issue 18), each through the real command line, in-process
(`run_inprocess`: the scripts' main with sys.argv set) except the one SIGINT run."""
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest
from PIL import Image

from tests.helpers.scripts import REPO, TINY, read_png, run_inprocess, write_synthetic
from libs.dataset.synthetic import write_dataset

TRAIN_TINY = ["arch", "resnet18", "keydim", "8", "valdim", "16", "input_size", "[32,48]", "gpu_id", "-1",
              "trainset", "['SYNTHETIC']", "datafreq", "[1]", "max_skip", "[2]", "valset", "SYNTHETIC",
              "max_training_obj", "2", "samples_per_video", "1", "train_batch", "1", "iter_size", "1",
              "epochs", "1", "epoch_per_test", "100", "loop", "0", "learning_rate", "1e-4"]
DEMO = ["demo/demo.py", "--cfg", "demo/demo.yaml"] + TINY + ["loop", "0", "input_size", "[24,40]"]


def _test_cmd(data_root, out, *extra):
    return ["test.py", "--cfg", "config.yaml", "data_root", str(data_root), "output_dir", str(out),
            "valset", "SYNTHETIC"] + TINY + ["loop", "0", "input_size", "[24,40]"] + [str(e) for e in extra]


def _pngs(folder):
    return sorted(f for f in os.listdir(folder) if f.endswith(".png"))


def _video(root, name="synth-val-000"):
    """(frame folder, first mask) of a SYNTHETIC-layout video."""
    return (os.path.join(root, "JPEGImages", "480p", name),
            os.path.join(root, "Annotations", "480p", name, "00000.png"))


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    """Two SYNTHETIC sets with the same video names: 2 videos of 4 frames, then 1 video of 2 frames."""
    base = tmp_path_factory.mktemp("newuser")
    long_root, short_root = base / "long" / "SYNTHETIC", base / "short" / "SYNTHETIC"
    write_synthetic(str(long_root), 2, 4, seed=11)
    write_synthetic(str(short_root), 1, 2, seed=12)
    return base, long_root, short_root


@pytest.fixture(scope="module")
def test_runs(sets):
    """test.py on the long set, then on the short one into the same output_dir (input_size 24x40)."""
    base, long_root, short_root = sets
    out = base / "test-out"
    first = run_inprocess(_test_cmd(long_root.parent, out))
    other = out / "SYNTHETIC" / "synth-val-001"
    before = {f: os.stat(other / f).st_mtime_ns for f in _pngs(other)} if other.is_dir() else {}
    second = run_inprocess(_test_cmd(short_root.parent, out))
    return out, first, second, before


@pytest.fixture(scope="module")
def demo_runs(sets):
    """The demo on the long set's first video, then on the short set's one into the same output_dir."""
    base, long_root, short_root = sets
    out = base / "demo-out"
    (out / "other").mkdir(parents=True)
    (out / "other" / "keep.png").write_bytes(b"not ours")       # another video's folder: untouched
    runs = []
    for root in (long_root, short_root):
        frames, mask = _video(str(root))
        runs.append(run_inprocess(DEMO + ["video_path", frames, "mask_path", mask, "output_dir", str(out)]))
    return out, runs


# 1. stale results ---------------------------------------------------------------------------------
def test_demo_rerun_with_fewer_frames_leaves_no_earlier_results(demo_runs):
    out, runs = demo_runs
    assert [r.returncode for r in runs] == [0, 0], runs[-1].describe()
    folder = out / "synth-val-000"
    assert _pngs(folder) == ["00000.png", "00001.png"]
    assert sorted(os.listdir(folder / "overlay")) == ["00000.jpg", "00001.jpg"]
    assert "removed 9 result file(s) of an earlier run" in runs[1].stderr   # 4 PNGs, 4 overlays, overlay.mp4
    assert (out / "other" / "keep.png").read_bytes() == b"not ours"


def test_test_py_rerun_clears_only_the_rerun_videos_folder(test_runs):
    out, first, second, before = test_runs
    assert first.returncode == 0 and second.returncode == 0, (first.describe(), second.describe())
    assert _pngs(out / "SYNTHETIC" / "synth-val-000") == ["00000.png", "00001.png"]
    other = out / "SYNTHETIC" / "synth-val-001"
    assert len(before) == 4
    assert {f: os.stat(other / f).st_mtime_ns for f in _pngs(other)} == before   # the other video: kept


def test_results_folder_holding_the_input_frames_is_refused(sets, tmp_path):
    _, long_root, _ = sets
    frames = tmp_path / "clip"
    shutil.copytree(_video(str(long_root))[0], frames)
    mask = _video(str(long_root))[1]
    run = run_inprocess(DEMO + ["video_path", str(frames), "mask_path", mask, "output_dir", str(tmp_path)])
    assert run.returncode == 2 and len(run.error_lines()) == 1, run.describe()
    assert "output_dir" in run.error_lines()[0] and str(frames) in run.error_lines()[0]
    assert sorted(os.listdir(frames)) == [f"{i:05d}.jpg" for i in range(4)]


# 2. one unannotated FOLDER video, and 10. scores named after the set -------------------------------
def _folder_set(root, synthetic):
    """A FOLDER-layout set from a SYNTHETIC one."""
    for name in sorted(os.listdir(os.path.join(synthetic, "JPEGImages", "480p"))):
        frames, mask = _video(synthetic, name)
        shutil.copytree(frames, os.path.join(root, "FOLDER", "JPEGImages", name))
        shutil.copytree(os.path.dirname(mask), os.path.join(root, "FOLDER", "Annotations", name))


def test_an_unannotated_folder_video_is_skipped_and_scores_are_named_after_the_set(sets, tmp_path):
    _, long_root, _ = sets
    _folder_set(str(tmp_path / "data"), str(long_root))
    shutil.rmtree(tmp_path / "data" / "FOLDER" / "Annotations" / "synth-val-000")
    run = run_inprocess(["test.py", "--cfg", "config.yaml", "valset", "FOLDER", "data_root", str(tmp_path / "data"),
                         "output_dir", str(tmp_path / "out")] + TINY + ["loop", "0", "input_size", "[24,40]"])
    results = tmp_path / "out" / "FOLDER"
    assert run.returncode == 2, run.describe()
    assert run.error_lines() == [f"error: 1 of 2 videos failed (the masks of the other 1 are in {results}):"
                                 ], run.describe()
    assert re.search(r"^  synth-val-000: .*has no annotation PNG", run.stderr, re.M), run.describe()
    assert len(_pngs(results / "synth-val-001")) == 4
    assert {"global_results-FOLDER.csv", "per-sequence_results-FOLDER.csv"} <= set(os.listdir(results))
    assert "Global results for FOLDER" in run.stderr and "DAVIS 2017" not in run.stderr


# 3. epochs 0 ----------------------------------------------------------------------------------------
def test_epochs_0_is_refused_with_one_line(tmp_path):
    write_dataset(str(tmp_path / "SYNTHETIC"), num_videos=1, num_frames=4, size=(40, 64), seed=5, split="train")
    run = run_inprocess(["train.py", "--cfg", "config.yaml", "data_root", str(tmp_path), "checkpoint",
                         str(tmp_path / "ck")] + TRAIN_TINY + ["epochs", "0"])
    assert run.returncode == 2 and run.error_lines() == [
        "error: epochs 0: there is nothing to train and no checkpoint would be written; set epochs to 1 or more"
    ], run.describe()
    assert "checkpoints in" not in run.output


# 4. the quickstart streams its steps' output --------------------------------------------------------
class _Watcher:
    """A stdout that creates `flag` once it has seen `text` (while the child still runs)."""

    def __init__(self, text, flag):
        self.text, self.flag, self.seen = text, flag, ""

    def write(self, s):
        self.seen += s
        if self.text in self.seen and not os.path.exists(self.flag):
            open(self.flag, "w").close()

    def flush(self):
        pass


def test_quickstart_prints_each_line_of_a_step_as_it_comes(tmp_path, monkeypatch):
    from libs import quickstart
    from libs.config import load_cfg

    flag = str(tmp_path / "seen")
    child = ("import os, sys, time\nprint('first line', flush=False)\nstart = time.time()\n"
             f"while not os.path.exists({flag!r}) and time.time() - start < 15: time.sleep(0.05)\n"
             f"sys.exit(0 if os.path.exists({flag!r}) else 3)")
    watcher = _Watcher("first line", flag)
    monkeypatch.setattr(sys, "stdout", watcher)
    output = quickstart.run(["-c", child])           # on a pipe without PYTHONUNBUFFERED: held to the end
    assert output == "first line\n" and "first line" in watcher.seen
    assert load_cfg(os.path.join(REPO, "configs/quickstart.yaml")).progress_every_s <= 10


# 5. data_root that is a file -----------------------------------------------------------------------
def test_data_root_that_is_a_file_is_named_as_a_file(tmp_path):
    path = tmp_path / "data.zip"
    path.write_bytes(b"zip")
    run = run_inprocess(["test.py", "--cfg", "config.yaml", "valset", "FOLDER", "data_root", str(path)] + TINY)
    assert run.returncode == 2 and len(run.error_lines()) == 1, run.describe()
    assert f"data_root {path} is a file, not a folder" in run.error_lines()[0]


# 6. a colour mask with too many flat colours ---------------------------------------------------------
def test_flat_colour_mask_with_too_many_colours_names_the_limit(sets, tmp_path):
    _, long_root, _ = sets
    frames = _video(str(long_root))[0]
    rgb = np.zeros((48, 80, 3), np.uint8)
    for k in range(300):                                   # 300 flat 3x3 squares of distinct colours
        y, x = divmod(k, 20)
        rgb[3 * y:3 * y + 3, 4 * x:4 * x + 3] = (k % 250 + 1, k // 250 + 1, 9)
    mask = tmp_path / "colours.png"
    Image.fromarray(rgb).save(mask)
    run = run_inprocess(DEMO + ["video_path", frames, "mask_path", str(mask), "output_dir", str(tmp_path / "o")])
    assert run.returncode == 2 and len(run.error_lines()) == 1, run.describe()
    line = run.error_lines()[0]
    assert "300 flat colours" in line and "at most 32 objects" in line and "JPEG" not in line


# 7. given masks are written as given ----------------------------------------------------------------
def test_given_first_masks_are_written_exactly_as_given(sets, test_runs, demo_runs):
    _, long_root, short_root = sets
    out, first, second, _ = test_runs
    for root, video in ((long_root, "synth-val-001"), (short_root, "synth-val-000")):
        given = np.asarray(Image.open(_video(str(root), video)[1]))
        written = read_png(str(out / "SYNTHETIC" / video / "00000.png"))[1]
        assert np.array_equal(written, np.where(given == 255, 0, given)), video
    given = np.asarray(Image.open(_video(str(short_root))[1]))
    assert np.array_equal(read_png(str(demo_runs[0] / "synth-val-000" / "00000.png"))[1], given)


def test_a_later_given_mask_is_written_over_the_prediction():
    from libs.runner.writer import GivenLabels

    first, later = np.array([[1, 255], [0, 0]], np.uint8), np.array([[0, 0], [2, 255]], np.uint8)
    given = {0: first, 3: later}
    predicted = np.array([[1, 1], [1, 1]], np.uint8)
    assert GivenLabels.of(given, 0).labels(predicted).tolist() == [[1, 0], [0, 0]]       # as given
    assert GivenLabels.of(given, 3).labels(predicted).tolist() == [[1, 1], [2, 1]]       # given over predicted
    assert GivenLabels.of(given, 1) is None


# 8. the checkpoint folder README names, 9. README's no-download training, 10. workers beyond the cores
def _readme():
    with open(os.path.join(REPO, "README.md"), encoding="utf-8") as f:
        return f.read()


def _readme_commands(marker):
    """The commands of README's bash block that holds `marker`, comments dropped."""
    for block in re.findall(r"```bash\n(.*?)```", _readme(), re.S):
        if marker in block:
            return [line.split("  #")[0].strip() for line in block.splitlines() if line.strip()]
    raise AssertionError(f"no README block with {marker!r}")


@pytest.fixture(scope="module")
def readme_training(tmp_path_factory):
    """README's no-download commands pasted in order in a scratch folder holding config.yaml, with cheap
    sizes appended (later values win) and `workers 100`; no `checkpoint` key: config.yaml's folder."""
    import shlex

    from libs.utils import device

    cwd = tmp_path_factory.mktemp("readme_cwd")
    shutil.copy(os.path.join(REPO, "config.yaml"), cwd / "config.yaml")
    commands = [c for c in _readme_commands("# no download") if "SYNTHETIC" in c]
    if hasattr(device, "usable_workers"):
        device.usable_workers.cache_clear()        # it says its line once per process
    runs, caught = [], []
    for command in commands:
        args = shlex.split(command)
        assert args[0] == ".venv/bin/python", command
        if "libs.dataset.synthetic" in command:
            args += ["--videos", "2", "--frames", "4", "--size", "40", "64"]
        else:
            args += TRAIN_TINY + ["workers", "100"]
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            runs.append(run_inprocess(args[1:], cwd=str(cwd)))
        caught += [str(w.message) for w in seen]
    return cwd, commands, runs, caught


def test_readme_no_download_training_works_as_pasted(readme_training):
    cwd, commands, runs, _ = readme_training
    assert any("libs.dataset.synthetic" in c and "--split train" in c for c in commands), commands
    assert "train.py" in commands[-1]
    for run in runs:
        assert run.returncode == 0, run.describe()


def test_checkpoints_go_where_readme_and_config_say(readme_training):
    from libs.config import get_cfg, load_cfg

    cwd, _, runs, _ = readme_training
    assert runs[-1].returncode == 0, runs[-1].describe()
    readme = _readme()
    folder = re.search(r"Checkpoints go to `([^`/]+)/`", readme).group(1)
    assert folder == load_cfg(os.path.join(REPO, "config.yaml"), []).checkpoint == get_cfg().checkpoint
    assert re.search(rf"resume auto +# continue from {folder}/latest\.pth", readme)
    assert {"epoch-0001.pth", "latest.pth"} <= set(os.listdir(cwd / folder))
    assert "github.com/lyxok1/STM-Training" in readme


def test_more_workers_than_cores_are_clamped_with_one_line(readme_training):
    from libs.utils.device import cpu_cores

    _, _, runs, caught = readme_training
    run = runs[-1]
    assert run.returncode == 0, run.describe()
    cores = cpu_cores()
    if cores >= 100:
        pytest.skip("this machine has 100 cores or more")
    lines = [ln for ln in run.stderr.splitlines() if "workers 100" in ln]
    assert len(lines) == 1 and f"using {cores} worker processes" in lines[0], run.describe()
    assert not [w for w in caught if "worker" in w], caught


def test_test_py_on_the_cpu_says_what_to_expect(test_runs):
    run = test_runs[1]
    lines = [line for line in run.stderr.splitlines() if "on the CPU: resnet18 at 24x40, loop 0; " in line]
    assert len(lines) == 1 and "README: 'On a CPU'" in lines[0], run.describe()
    assert "for a quick look" not in lines[0], lines[0]         # loop 0 and a small size are set already (issue 27)
    assert "**On a CPU.**" in _readme()


# 10. SIGINT logs its warning once -------------------------------------------------------------------
@pytest.mark.slow
def test_sigint_to_the_process_group_logs_once(tmp_path):
    """Ctrl-C reaches the DataLoader worker too (workers 1): one warning, a clean stop."""
    write_dataset(str(tmp_path / "SYNTHETIC"), num_videos=2, num_frames=4, size=(40, 64), seed=5, split="train")
    cmd = [sys.executable, "train.py", "--cfg", "config.yaml", "data_root", str(tmp_path), "checkpoint",
           str(tmp_path / "ck")] + TRAIN_TINY + ["samples_per_video", "40", "epochs", "5", "workers", "1"]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(cmd, cwd=REPO, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                            env=env, start_new_session=True)
    lines = []
    for line in proc.stderr:
        lines.append(line)
        if "effective batch" in line:
            time.sleep(3)                                # the worker is loading batches
            os.killpg(proc.pid, signal.SIGINT)
            break
    lines += proc.stderr.read().splitlines(keepends=True)
    assert proc.wait(timeout=300) == 0, "".join(lines)
    assert sum("SIGINT: saving a checkpoint" in ln for ln in lines) == 1, "".join(lines)
    assert any("training interrupted (SIGINT)" in ln for ln in lines), "".join(lines)
