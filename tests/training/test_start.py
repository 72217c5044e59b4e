"""Where a training run starts (libs/training/start.py): one decision, one read of the checkpoint, the model
keys of that checkpoint adopted; parsing builds no Checkpointer."""
import logging

import pytest
import torch

import libs.training.start as start_module
import train
from libs.errors import VOSError
from libs.training import checkpointer as checkpointer_module
from libs.training.start import decide_start, torchrun_restarts

STORED = "arch: resnet34\nkeydim: 8\nvaldim: 16\n"
RESUMABLE = {"optimizer": {}, "epoch": 1, "batch": 0, "step": 3, "rng": {}}


def _ckpt(path, config=STORED, resumable=True) -> str:
    torch.save({"state_dict": {"w": torch.zeros(1)}, "config": config, **(RESUMABLE if resumable else {})}, path)
    return str(path)


@pytest.fixture
def reads(monkeypatch):
    """The paths the start decision reads, in order; and no Checkpointer may be built meanwhile."""
    seen, read = [], start_module.read_checkpoint
    monkeypatch.setattr(start_module, "read_checkpoint", lambda path: (seen.append(path), read(path))[1])

    def refuse(*_args, **_kwargs):
        raise AssertionError("parsing the config built a training Checkpointer")
    monkeypatch.setattr(checkpointer_module.Checkpointer, "__init__", refuse)
    monkeypatch.delenv(start_module.RESTART_COUNT, raising=False)
    return seen


def test_each_kind_of_start_reads_its_checkpoint_once(tmp_path, reads):
    folder = tmp_path / "ck"
    folder.mkdir()
    weights = _ckpt(tmp_path / "w.pth", resumable=False)
    never = lambda data: pytest.fail("same_run asked without a restart")     # noqa: E731
    assert decide_start("", "", str(folder), never).kind == "fresh" and reads == []
    start = decide_start("", weights, str(folder), never)
    assert (start.kind, start.path, start.resumes, reads) == ("initial", weights, False, [weights])
    with pytest.raises(VOSError, match=r"resume auto: no checkpoint in .*ck.* \(latest.pth or epoch-\*.pth\)"):
        decide_start("auto", weights, str(folder), never)
    _ckpt(folder / "epoch-0001.pth", "keydim: 4\n")
    newest = _ckpt(folder / "epoch-0002.pth")
    reads.clear()
    start = decide_start("auto", weights, str(folder), never)
    assert (start.kind, start.path, start.resumes, reads) == ("resume", newest, True, [newest])
    assert start.data["step"] == 3
    assert decide_start(weights, "", str(folder), never).kind == "resume"    # the trainer refuses it (weights only)


def test_a_torchrun_restart_continues_from_latest_only_when_this_run_wrote_it(tmp_path, reads, monkeypatch):
    folder = str(tmp_path)
    same = lambda data: data["config"] == "cfg A"       # noqa: E731
    monkeypatch.setenv(start_module.RESTART_COUNT, "1")
    assert torchrun_restarts() == 1
    explicit = _ckpt(tmp_path / "x.pth")
    assert decide_start(explicit, "", folder, same, torchrun_restarts()).path == explicit   # restarted before a save
    latest = _ckpt(tmp_path / "latest.pth", "cfg A")
    reads.clear()
    start = decide_start("auto", "", folder, same, torchrun_restarts())
    assert (start.kind, start.path, reads) == ("restart", latest, [latest])                # read once
    assert start.notes == ((logging.INFO, f"torchrun restart 1: continuing from {latest}"),)
    assert decide_start(explicit, "", folder, same, 1).kind == "restart"
    reads.clear()
    _ckpt(tmp_path / "latest.pth", "cfg B")                                                 # another run's file
    start = decide_start("", "", folder, same, 1)
    assert start.kind == "fresh" and reads == [latest] and "written with another config" in start.notes[0][1]
    reads.clear()
    assert decide_start("auto", "", folder, same, 1).path == latest and reads == [latest]   # auto: not read again
    assert decide_start("", "", folder, same, 0).kind == "fresh"                             # the first start
    monkeypatch.setenv(start_module.RESTART_COUNT, "")
    assert torchrun_restarts() == 0


def test_train_takes_the_model_keys_of_the_checkpoint_it_starts_from(tmp_path, reads):
    folder = tmp_path / "ck"
    folder.mkdir()
    _ckpt(folder / "latest.pth")
    start, cfg = train.parse_training_cfg(["checkpoint", str(folder), "resume", "auto"])
    assert (start.kind, cfg.arch, cfg.keydim, cfg.valdim, reads) == ("resume", "resnet34", 8, 16,
                                                                     [str(folder / "latest.pth")])
    explicit = _ckpt(tmp_path / "e.pth", "arch: resnet18\nkeydim: 32\nvaldim: 64\n")
    start, cfg = train.parse_training_cfg(["resume", explicit, "initial", str(folder / "latest.pth")])
    assert (start.path, cfg.arch, cfg.keydim, cfg.valdim) == (explicit, "resnet18", 32, 64)   # resume wins
    start, cfg = train.parse_training_cfg(["initial", _ckpt(tmp_path / "i.pth", STORED + "input_size: [48, 84]\n")])
    assert start.kind == "initial" and cfg.keydim == 8 and tuple(cfg.input_size) == (240, 427)   # training: own size
