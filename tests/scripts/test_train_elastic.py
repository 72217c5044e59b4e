"""torchrun elastic training through the real command line: 2 gloo workers under c10d rendezvous on localhost;
one is SIGKILLed mid-epoch, torchrun restarts the group, which continues from the step checkpoint and ends with
the weights and optimizer state of an uninterrupted run."""
import os
import re
import signal
import socket
import subprocess
import sys
import time
from typing import List, Optional

import pytest
import torch

from tests.helpers.training import write_train_val


ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY = ["arch", "resnet18", "keydim", "8", "valdim", "16", "input_size", "[32,48]", "gpu_id", "-1",
        "trainset", "['SYNTHETIC']", "datafreq", "[1]", "max_skip", "[2]", "valset", "SYNTHETIC",
        "max_training_obj", "2", "samples_per_video", "4", "train_batch", "1", "iter_size", "2",
        "epochs", "2", "epoch_per_test", "100", "workers", "0", "learning_rate", "1e-4", "milestone", "[1]",
        "checkpoint_every_steps", "1"]
TRIES = 3                     # ports tried when another process takes the chosen one first


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _start(data_root: str, ckpt: str, log_path: str) -> subprocess.Popen:
    """torchrun, as the README's recipe runs it, on a free port; its output goes to `log_path`."""
    port = _free_port()
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1:2", "--nproc-per-node", "2",
           "--max-restarts", "3", "--rdzv-backend", "c10d", "--rdzv-endpoint", f"localhost:{port}",
           "--rdzv-id", f"elastic-{port}", "--rdzv-conf", "last_call_timeout=1",
           "train.py", "--cfg", "config.yaml", "data_root", data_root, "checkpoint", ckpt,
           "output_dir", ckpt + "-out", *TINY]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    with open(log_path, "w") as log:
        return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)


def _port_clash(log_path: str) -> bool:
    text = open(log_path).read().lower()
    return "address already in use" in text or "eaddrinuse" in text


def _launch(data_root: str, ckpt: str, log_path: str) -> subprocess.Popen:
    """Start torchrun; on a port taken in the meantime (it fails at once, saying so), again on another port."""
    for _ in range(TRIES):
        proc = _start(data_root, ckpt, log_path)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            return proc                               # rendezvous done: running
        if proc.returncode == 0 or not _port_clash(log_path):
            return proc
    pytest.fail(f"no free port for the c10d rendezvous after {TRIES} tries")


def _children(pid: int) -> List[int]:
    """Process ids whose parent is `pid` (from /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    ppid = int(handle.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == pid:
                found.append(int(entry))
    return found


def _worker(agent: int, rank: int) -> Optional[int]:
    """The pid of torchrun's worker of `rank`, or None."""
    for pid in _children(agent):
        try:
            with open(f"/proc/{pid}/environ", "rb") as handle:
                env = dict(item.split(b"=", 1) for item in handle.read().split(b"\0") if b"=" in item)
        except OSError:
            continue
        if env.get(b"RANK") == str(rank).encode():
            return pid
    return None


def _finish(proc: subprocess.Popen, log_path: str) -> str:
    try:
        proc.wait(timeout=900)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    text = open(log_path).read()
    assert proc.returncode == 0, text[-4000:]
    return text


def _state(ckpt: str):
    return torch.load(os.path.join(ckpt, "epoch-0002.pth"), map_location="cpu", weights_only=True)


def _equal(a, b) -> bool:
    """Nested dicts / lists of tensors and numbers are equal."""
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, torch.Tensor):
        return torch.equal(a, b)
    return a == b


@pytest.mark.slow
def test_a_killed_worker_restarts_from_the_step_checkpoint_and_ends_as_an_uninterrupted_run(tmp_path):
    data = str(tmp_path / "data")
    write_train_val(data, train_frames=4, seed=5)
    full, killed = str(tmp_path / "full"), str(tmp_path / "killed")
    runs = [_launch(data, full, str(tmp_path / "full.log")), _launch(data, killed, str(tmp_path / "killed.log"))]
    try:
        deadline = time.time() + 600
        while not os.path.exists(os.path.join(killed, "latest.pth")) and time.time() < deadline:
            assert runs[1].poll() is None, open(tmp_path / "killed.log").read()[-4000:]
            time.sleep(0.05)
        victim = _worker(runs[1].pid, 0)                 # the writer: it dies between two checkpoints
        assert victim is not None
        os.kill(victim, signal.SIGKILL)
        full_log = _finish(runs[0], str(tmp_path / "full.log"))
        killed_log = _finish(runs[1], str(tmp_path / "killed.log"))
    finally:
        for proc in runs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    assert "torchrun restart 1: continuing from" in killed_log and "torchrun restart" not in full_log
    assert re.search(r"resumed from \S+latest\.pth in epoch 1/2 after batch 2 \(optimizer step 1\)", killed_log)
    a, b = _state(full), _state(killed)
    assert a["step"] == b["step"] == 4 and a["world_size"] == b["world_size"] == 2
    assert _equal(a["state_dict"], b["state_dict"])
    assert _equal(a["optimizer"]["state"], b["optimizer"]["state"])     # no step counted twice by Adam
