"""train.py through its real command line: a short run, SIGKILL + `resume auto`, SIGTERM, bad input."""
import os
import re
import shlex
import signal
import subprocess
import sys
import time

import pytest
import torch

from libs.config import get_cfg
from tests.helpers.training import write_train_val

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY = ["arch", "resnet18", "keydim", "8", "valdim", "16", "input_size", "[32,48]", "gpu_id", "-1",
        "trainset", "['SYNTHETIC']", "datafreq", "[1]", "max_skip", "[2]", "valset", "SYNTHETIC",
        "max_training_obj", "2", "samples_per_video", "2", "train_batch", "1", "iter_size", "2",
        "epochs", "2", "epoch_per_test", "2", "loop", "0", "workers", "0", "learning_rate", "1e-4",
        "milestone", "[1]", "epochs_per_increment", "1", "max_skip_cap", "3"]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return write_train_val(str(tmp_path_factory.mktemp("train_script")), train_frames=5, seed=5)


def _cmd(data_root, ckpt, *extra):
    return [sys.executable, "train.py", "--cfg", "config.yaml", "data_root", data_root, "checkpoint", ckpt,
            "output_dir", ckpt + "-out"] + TINY + list(extra)


def _weights(path):
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


def _env():
    return dict(os.environ, OMP_NUM_THREADS="2")


@pytest.mark.slow
def test_train_runs_validates_and_sigkill_resume_is_exact(data_root, tmp_path):
    full = str(tmp_path / "full")
    proc = subprocess.run(_cmd(data_root, full), cwd=ROOT, capture_output=True, text=True, env=_env(), timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert {"epoch-0001.pth", "epoch-0002.pth", "latest.pth", "config.yaml", "train.log"} <= set(os.listdir(full))
    assert "validation J&F-Mean" in proc.stderr and "effective batch 2" in proc.stderr
    assert "finished 2 epochs (4 optimizer steps)" in proc.stderr
    assert re.search(r"^epoch 2/2: 4/4 batch \(.*\) loss=", proc.stderr, re.M) and "\r" not in proc.stderr
    assert os.listdir(os.path.join(full, "tb"))
    killed = str(tmp_path / "killed")                      # keeps one epoch checkpoint: resume after pruning
    run = subprocess.Popen(_cmd(data_root, killed, "keep_checkpoints", "1"), cwd=ROOT, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, env=_env())
    deadline = time.time() + 600
    while not os.path.exists(os.path.join(killed, "epoch-0001.pth")) and time.time() < deadline:
        time.sleep(0.2)
    run.send_signal(signal.SIGKILL)
    run.wait()
    resumed = subprocess.run(_cmd(data_root, killed, "resume", "auto", "keep_checkpoints", "1"), cwd=ROOT,
                             capture_output=True, text=True, env=_env(), timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resumed from" in resumed.stderr
    assert {n for n in os.listdir(killed) if n.endswith(".pth")} == {"epoch-0002.pth", "latest.pth"}
    a, b = _weights(os.path.join(full, "epoch-0002.pth")), _weights(os.path.join(killed, "epoch-0002.pth"))
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_sigterm_saves_and_exits_cleanly(data_root, tmp_path):
    ckpt = str(tmp_path / "term")
    run = subprocess.Popen(_cmd(data_root, ckpt, "epochs", "50"), cwd=ROOT, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True, env=_env())
    deadline = time.time() + 300
    while not os.path.exists(os.path.join(ckpt, "epoch-0001.pth")) and time.time() < deadline:
        time.sleep(0.2)
    run.send_signal(signal.SIGTERM)
    _, err = run.communicate(timeout=300)
    assert run.returncode == 0, err[-2000:]
    assert "SIGTERM: saving a checkpoint at the next step" in err
    assert re.search(r"training interrupted \(SIGTERM\) (in epoch \d+/50 after batch \d+|after epoch \d+/50)", err)
    state = torch.load(os.path.join(ckpt, "latest.pth"), map_location="cpu", weights_only=True)
    assert state["epoch"] < 50 and set(state) >= {"optimizer", "rng", "curriculum", "step", "batch"}


def test_max_minutes_stops_with_a_checkpoint(data_root, tmp_path):
    ckpt = str(tmp_path / "timed")
    extra = ["epochs", "50", "max_minutes", "1e-5", "fast_training", "True"]       # fused optimizer too
    proc = subprocess.run(_cmd(data_root, ckpt, *extra), cwd=ROOT, capture_output=True, text=True, env=_env(),
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "max_minutes 1e-05 reached" in proc.stderr
    state = torch.load(os.path.join(ckpt, "latest.pth"), map_location="cpu", weights_only=True)
    assert (state["epoch"], state["step"]) == (0, 1)
    assert "training interrupted (max_minutes 1e-05) in epoch 1/50 after batch 2 (optimizer step 1); saved " \
        f"{ckpt}/latest.pth. Resume with:" in proc.stderr
    command = proc.stderr.split("Resume with:\n", 1)[1].splitlines()[0].strip()
    args = shlex.split(command)
    assert args[1:4] == ["train.py", "--cfg", "config.yaml"] and args[-2:] == ["resume", "auto"]
    assert args[args.index("max_minutes") + 1] == "1e-5" and "epoch 1/50" in proc.stderr
    assert os.path.samefile(args[0], sys.executable)


@pytest.mark.parametrize("argv,expected", [
    (["train.py", "--cfg", "c.yaml", "epochs", "3"], "train.py --cfg c.yaml epochs 3 resume auto"),
    (["train.py", "--cfg=c.yaml", "resume", "x.pth", "output_dir", ""],
     "train.py --cfg=c.yaml output_dir '' resume auto"),
    (["train.py", "--local_rank=1", "trainset", "['A', 'B']", "resume", ""],
     "train.py trainset '['\"'\"'A'\"'\"', '\"'\"'B'\"'\"']' resume auto"),
])
def test_resume_command_repeats_the_arguments_with_resume_auto(argv, expected):
    import train

    command = train.resume_command(argv)
    assert command.split(" ", 1)[1] == expected
    assert shlex.split(command)[1:] == shlex.split(expected)
    under_torchrun = shlex.split(train.resume_command(argv, nproc=4))      # launched by torchrun: again by it
    assert os.path.basename(under_torchrun[0]) == "torchrun" and under_torchrun[1:3] == ["--nproc_per_node", "4"]
    assert under_torchrun[3:] == shlex.split(expected)


@pytest.mark.parametrize("fast,solver", [(False, "adam"), (True, "adam"), (True, "sgd")])
def test_fast_training_fuses_the_optimizer_step(fast, solver):
    import train       # the repository root is on sys.path (tests/conftest.py)

    cfg = get_cfg()
    cfg.fast_training, cfg.solver = fast, solver
    model = torch.nn.Linear(3, 2)
    optimizer = train.build_optimizer(cfg, model)
    assert bool(optimizer.defaults["fused"]) is fast
    model(torch.ones(1, 3)).sum().backward()
    before = model.weight.detach().clone()
    optimizer.step()
    assert not torch.equal(before, model.weight)


@pytest.mark.parametrize("extra,message", [
    (["trainset", "['SYNTHETIC', 'DAVIS17']", "datafreq", "[1]"], "must be lists of the same length"),
    (["data_root", "/nonexistent/place"], "DATASET.md"),
    (["resume", "/nonexistent/ckpt.pth"], "not found"),
])
def test_bad_input_is_one_error_line(data_root, tmp_path, extra, message):
    proc = subprocess.run(_cmd(data_root, str(tmp_path / "c"), *extra), cwd=ROOT, capture_output=True,
                          text=True, env=_env(), timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("error:") or "error:" in proc.stderr
    assert message in proc.stderr


def test_resume_from_other_arch_names_it(data_root, tmp_path):
    from libs.models import STM, save_weights
    path = str(tmp_path / "r34.pth")
    save_weights(STM("resnet34", 8, 16), path)
    proc = subprocess.run(_cmd(data_root, str(tmp_path / "c"), "resume", path), cwd=ROOT, capture_output=True,
                          text=True, env=_env(), timeout=300)
    assert proc.returncode == 2 and "built with arch resnet34" in proc.stderr


def test_unwritable_checkpoint_folder(data_root, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    proc = subprocess.run(_cmd(data_root, str(blocker / "ckpt")), cwd=ROOT, capture_output=True, text=True,
                          env=_env(), timeout=300)
    assert proc.returncode == 2 and "not writable" in proc.stderr
