"""train.py facing faults: unreadable training files, non-finite losses, a checkpoint write that fails.

The first runs go through train.py's own `main` in this process (sys.argv set: no start-up cost); the
disk-full run is a subprocess, whose file-size limit makes every checkpoint write fail as a full disk does.
"""
import logging
import os
import re
import resource
import signal
import subprocess
import sys

import pytest
import torch

from libs.runner.cli import run_main
from tests.helpers.training import write_train_val

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY = ["arch", "resnet18", "keydim", "8", "valdim", "16", "input_size", "[32,48]", "gpu_id", "-1",
        "trainset", "['SYNTHETIC']", "datafreq", "[1]", "max_skip", "[2]", "valset", "SYNTHETIC",
        "max_training_obj", "2", "samples_per_video", "1", "train_batch", "1", "iter_size", "1",
        "epochs", "1", "epoch_per_test", "100", "loop", "0", "workers", "0", "learning_rate", "1e-4"]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return write_train_val(str(tmp_path_factory.mktemp("train_faults")), train_frames=4, seed=5)


def _args(data_root, ckpt, *extra):
    return ["--cfg", "config.yaml", "data_root", data_root, "checkpoint", ckpt, "output_dir", ckpt + "-out",
            *TINY, *extra]


@pytest.fixture
def train_main(monkeypatch):
    """Runs train.py's `main` through `run_main` in this process; returns its exit code (0 when it ends)
    and leaves the logging set-up as it found it."""
    import train

    monkeypatch.chdir(ROOT)
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level

    def run(args):
        monkeypatch.setattr(sys, "argv", ["train.py", *args])
        try:
            run_main(train.main)
            return 0
        except SystemExit as stop:
            return stop.code
        finally:
            for handler in root.handlers:
                if handler not in handlers:
                    handler.close()
            root.handlers[:] = handlers
            root.setLevel(level)
    return run


def _log(ckpt):
    with open(os.path.join(ckpt, "train.log")) as handle:
        return handle.read()


@pytest.mark.slow
def test_unreadable_training_files_are_replaced_named_and_counted(data_root, tmp_path, train_main, capsys):
    import shutil

    data = str(tmp_path / "data")
    shutil.copytree(data_root, data)
    video = os.path.join(data, "SYNTHETIC", "JPEGImages", "480p", "synth-train-000")
    masks = os.path.join(data, "SYNTHETIC", "Annotations", "480p", "synth-train-000")
    bad = [os.path.join(video, f"0000{t}.jpg") for t in (0, 1)] + [os.path.join(masks, f"0000{t}.png") for t in (2, 3)]
    for path in bad[:2]:                                   # truncated JPEGs
        with open(path, "rb") as handle:
            head = handle.read()[:80]
        with open(path, "wb") as handle:
            handle.write(head)
    for path in bad[2:]:                                   # masks that are not images
        with open(path, "wb") as handle:
            handle.write(b"\x89PNG garbage")
    ckpt = str(tmp_path / "ok")                            # a DataLoader worker reads the clips
    assert train_main(_args(data, ckpt, "workers", "1", "max_bad_samples", "10")) == 0
    log = _log(ckpt)
    named = re.findall(r"unreadable training sample replaced by another: (.*)", log)
    paths = [next(p for p in bad if p in line) for line in named]
    assert named and len(paths) == len(set(paths))         # each file named once, with the reason
    assert all("cannot read" in line for line in named)
    summary = re.search(r"epoch 1/1: (\d+) unreadable samples? replaced \(synth-train-000/0000\d\.(jpg|png)", log)
    count = int(summary.group(1))
    assert count >= 1 and f"finished 1 epochs (2 optimizer steps; {count} unreadable sample" in log
    capsys.readouterr()
    strict = str(tmp_path / "strict")                      # a count of 0: the first one stops the run
    assert train_main(_args(data, strict, "max_bad_samples", "0")) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert re.match(r"error: \d+ unreadable training samples in epoch 1 of 2 clips, more than max_bad_samples 0 "
                    r"allows \(0\) \(the first here: cannot read .*synth-train-000", lines[-1])
    assert "Traceback" not in "\n".join(lines)


@pytest.mark.slow
def test_a_non_finite_step_is_skipped_and_too_many_stop(data_root, tmp_path, train_main, capsys, monkeypatch):
    from libs.training.cyclic import CyclicObjective

    forward, calls = CyclicObjective.forward, []

    def nan_on_second_call(self, *args):
        out = forward(self, *args)
        calls.append(1)
        return {**out, "loss": out["loss"] * float("nan")} if len(calls) == 2 else out
    monkeypatch.setattr(CyclicObjective, "forward", nan_on_second_call)
    ckpt = str(tmp_path / "once")
    assert train_main(_args(data_root, ckpt, "samples_per_video", "2")) == 0     # 4 clips: step 2 skipped
    log = _log(ckpt)
    assert re.search(r"non-finite loss or gradient \(loss nan\) at epoch 1/1 batch 2: optimizer step skipped "
                     r"\(clips of this process: synth-train-00\d\)", log)
    assert "epoch 1/1: 1 optimizer step skipped (non-finite loss)" in log
    assert "finished 1 epochs (3 optimizer steps; 1 optimizer step skipped (non-finite loss))" in log
    state = torch.load(os.path.join(ckpt, "latest.pth"), map_location="cpu", weights_only=True)
    assert all(torch.isfinite(v).all() for v in state["state_dict"].values() if v.is_floating_point())
    assert {int(s["step"]) for s in state["optimizer"]["state"].values()} == {3}   # Adam counted 3 steps
    monkeypatch.setattr(CyclicObjective, "forward", forward)
    capsys.readouterr()
    blown = str(tmp_path / "blown")          # a huge learning rate: every step after the first is non-finite
    code = train_main(_args(data_root, blown, "samples_per_video", "2", "learning_rate", "1e30",
                            "max_nonfinite_steps", "2", "checkpoint_every_steps", "1"))
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith("error: 2 optimizer step(s) in a row had a non-finite loss or gradient "
                                            "(the last at epoch 1/1 batch 3, loss nan), max_nonfinite_steps is 2")
    state = torch.load(os.path.join(blown, "latest.pth"), map_location="cpu", weights_only=True)
    assert state["step"] == 1 and all(torch.isfinite(v).all() for v in state["state_dict"].values()
                                      if v.is_floating_point())


def _no_large_files(limit):
    """preexec_fn: writes past `limit` bytes fail with EFBIG (as on a full disk) instead of killing the process."""
    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
    return apply


@pytest.mark.slow
def test_a_failed_checkpoint_write_keeps_the_last_one_and_stops_in_one_line(data_root, tmp_path, train_main):
    ckpt = str(tmp_path / "full")
    assert train_main(_args(data_root, ckpt)) == 0                              # epoch 1 saved
    before = torch.load(os.path.join(ckpt, "latest.pth"), map_location="cpu", weights_only=True)
    assert (before["epoch"], before["step"]) == (1, 2)
    size = os.path.getsize(os.path.join(ckpt, "latest.pth"))
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "train.py", *_args(data_root, ckpt, "epochs", "2", "resume", "auto",
                                                               "checkpoint_every_steps", "1")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
                          preexec_fn=_no_large_files(size // 4))
    assert proc.returncode == 2, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last == (f"error: cannot write checkpoints to {ckpt!r} (File too large); the checkpoints already there "
                    "are intact: free space there (or make it writable) and run again with `resume auto`, or set "
                    f"`checkpoint` to another folder (with `resume {ckpt}/latest.pth`)")
    assert "Traceback" not in proc.stderr and "resumed from" in proc.stderr
    after = torch.load(os.path.join(ckpt, "latest.pth"), map_location="cpu", weights_only=True)
    assert (after["epoch"], after["step"]) == (1, 2)
    assert all(torch.equal(before["state_dict"][k], after["state_dict"][k]) for k in before["state_dict"])
    assert not [name for name in os.listdir(ckpt) if name.endswith(".tmp.pth")]
