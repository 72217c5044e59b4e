"""Tests of libs/quickstart.py: the command lines it echoes paste into a shell at the repository root."""
import os
import shlex
import sys

from libs import quickstart


def test_echoed_command_lines_round_trip_through_a_shell(monkeypatch):
    monkeypatch.setattr(sys, "executable", os.path.join(quickstart.ROOT, ".venv", "bin", "python"))
    args = ["train.py", "--cfg", "configs/quickstart.yaml", "checkpoint",
            os.path.join(quickstart.ROOT, "quickstart", "checkpoint"), "resume", "", "trainset", "['SYNTHETIC']"]
    line = quickstart.command_line(args)
    assert line.startswith(".venv/bin/python train.py ") and " resume '' " in line
    assert shlex.split(line) == [".venv/bin/python", "train.py", "--cfg", "configs/quickstart.yaml", "checkpoint",
                                 "quickstart/checkpoint", "resume", "", "trainset", "['SYNTHETIC']"]


def test_paths_outside_the_repository_stay_absolute(monkeypatch):
    monkeypatch.setattr(sys, "executable", "/usr/bin/python3")
    assert quickstart.command_line(["test.py", "output_dir", "/tmp/out"]) == "/usr/bin/python3 test.py output_dir /tmp/out"
