"""Run a script's command line inside the test process (no new interpreter, no second torch import)."""
import runpy
import sys
from dataclasses import dataclass
from typing import List

import torch


@dataclass
class Done:
    """What a command line left: its exit status and its output."""

    returncode: int
    stdout: str
    stderr: str


def run_main(script: str, args: List[str], capsys) -> Done:
    """Run `python SCRIPT ARGS` as `__main__` in this process, with `capsys` capturing its output; torch's
    thread count and cuDNN flag, which scripts set, are restored after."""
    argv, threads, benchmark = sys.argv, torch.get_num_threads(), torch.backends.cudnn.benchmark
    sys.argv = [script, *args]
    code = 0
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    finally:
        sys.argv = argv
        torch.set_num_threads(threads)
        torch.backends.cudnn.benchmark = benchmark
    out = capsys.readouterr()
    return Done(code, out.out, out.err)
