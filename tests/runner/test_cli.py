"""Tests of libs/runner/cli.py: model keys taken from the checkpoint to load, --help."""
import logging
import os

import pytest
import torch

from libs.errors import VOSError
from libs.runner.cli import parse_cfg, weights_to_load

STORED = "arch: resnet34\nkeydim: 8\nvaldim: 16\nloop: 3\n"


def _ckpt(path, config=STORED):
    data = {"state_dict": {"w": torch.zeros(1)}}
    if config is not None:
        data["config"] = config
    torch.save(data, path)
    return str(path)


def test_initial_with_a_stored_config_sets_only_the_model_keys(tmp_path, caplog):
    path = _ckpt(tmp_path / "m.pth")
    with caplog.at_level(logging.INFO):
        cfg = parse_cfg("t", ["initial", path, "keydim", "64"])
    assert (cfg.arch, cfg.keydim, cfg.valdim, cfg.loop) == ("resnet34", 8, 16, 10)   # loop stays the run's
    assert caplog.text.count("was trained with") == 1
    assert "arch resnet34, keydim 8, valdim 16: using those (the config says arch resnet50, keydim 64" in caplog.text


def test_resume_auto_reads_checkpoint_latest_when_training(tmp_path):
    folder = tmp_path / "ck"
    folder.mkdir()
    _ckpt(folder / "latest.pth")
    argv = ["checkpoint", str(folder), "resume", "auto"]
    assert parse_cfg("t", argv, training=True).keydim == 8
    assert parse_cfg("t", argv).keydim == 128               # test.py and the demo do not resume
    with pytest.raises(VOSError, match=r"resume auto: no checkpoint in .*none.* \(latest.pth or epoch-\*.pth\)"):
        parse_cfg("t", ["checkpoint", str(tmp_path / "none"), "resume", "auto"], training=True)
    os.rename(folder / "latest.pth", folder / "epoch-0002.pth")
    _ckpt(folder / "epoch-0001.pth", "keydim: 4\n")
    assert parse_cfg("t", argv, training=True).keydim == 8               # the newest epoch file
    explicit = _ckpt(tmp_path / "e.pth", "arch: resnet18\nkeydim: 32\nvaldim: 64\n")
    cfg = parse_cfg("t", ["resume", explicit, "initial", str(folder / "latest.pth")], training=True)
    assert (cfg.arch, cfg.keydim, cfg.valdim) == ("resnet18", 32, 64)    # resume wins over initial


def test_checkpoint_without_config_and_unreadable_ones(tmp_path):
    assert parse_cfg("t", ["initial", _ckpt(tmp_path / "w.pth", None)]).keydim == 128
    garbage = tmp_path / "g.pth"
    garbage.write_bytes(b"\x80\x02garbage" * 50)
    with pytest.raises(VOSError, match="it is not a PyTorch weights file") as err:
        parse_cfg("t", ["initial", str(garbage)])
    assert "Error" not in str(err.value) and str(garbage) in str(err.value)


def test_help_lists_examples_and_keys(capsys):
    with pytest.raises(SystemExit):
        parse_cfg("Describe.", ["--help"], examples="  run it", keys=[("loop", "iterations")])
    out = capsys.readouterr().out
    assert "examples:\n  run it" in out and "  loop  iterations" in out and "libs/config/defaults.py" in out
