"""Tests of libs/runner/cli.py: model keys taken from the checkpoint to load, --help."""
import logging

import pytest
import torch

from libs.errors import VOSError
from libs.runner.cli import parse_cfg

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


def test_the_training_input_size_is_taken_unless_the_file_or_the_options_set_one(tmp_path, caplog):
    """test.py, the demo, the app and the API run at the size the checkpoint was trained at, said in the one
    line; a size the user gives (options or config file) wins."""
    path = _ckpt(tmp_path / "m.pth", STORED + "input_size: [48, 84]\n")
    with caplog.at_level(logging.INFO):
        cfg = parse_cfg("t", ["initial", path, "arch", "resnet34", "keydim", "8", "valdim", "16"])
    assert tuple(cfg.input_size) == (48, 84)
    assert caplog.text.count("was trained with") == 1 and "input_size [48, 84]: using it" in caplog.text
    assert tuple(parse_cfg("t", ["initial", path, "input_size", "[64, 96]"]).input_size) == (64, 96)
    own = tmp_path / "own.yaml"
    own.write_text("input_size: [240, 427]\n")
    assert tuple(parse_cfg("t", ["--cfg", str(own), "initial", path]).input_size) == (240, 427)


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
