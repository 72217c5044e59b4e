"""Helpers of the end-to-end script tests: the tiny network's keys, generated data, checkpoints, and jobs
that run the real command lines as subprocesses (the pool that runs them, two at a time with one thread
each, is the `script_pool` fixture of tests/scripts/conftest.py).

Each test module submits all of its command lines at once (a module-scoped fixture) and every test then
waits for, and checks, its own run.
"""
import os
import subprocess
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Tuple

import numpy as np
from PIL import Image

from tests.helpers.models import save_stm  # noqa: F401  (the script tests import it from here)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# the small network every run uses: fast on a CPU
TINY = ["arch", "resnet18", "keydim", "16", "valdim", "32", "input_size", "[32,64]", "gpu_id", "-1"]
TEST_CMD = [sys.executable, "test.py", "--cfg", "config.yaml"]
DEMO_CMD = [sys.executable, "demo/demo.py", "--cfg", "demo/demo.yaml"]
FRAME_SIZE = (48, 80)          # (H, W) of every generated frame
RUN_TIMEOUT_S = 300
WORKERS = 2                    # script runs at the same time


@dataclass
class Run:
    """The outcome of one command line."""

    args: List[str]
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        """stdout and stderr together."""
        return self.stdout + self.stderr

    def error_lines(self) -> List[str]:
        """Lines of stderr that start with 'error:'."""
        return [line for line in self.stderr.splitlines() if line.startswith("error:")]

    def error_text(self) -> str:
        """stderr from the first 'error:' line to the end (a layout error adds an indented tree)."""
        start = self.stderr.find("error:")
        return self.stderr[start:] if start >= 0 else ""

    def describe(self) -> str:
        """For assertion messages: the command and the tail of its output."""
        return f"command: {' '.join(self.args)}\nexit {self.returncode}\n--- output tail ---\n{self.output[-3000:]}"


def run_script(args: List[str]) -> Run:
    """Run a command line from the repository root, as a user would, with one compute thread."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    proc = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=RUN_TIMEOUT_S)
    return Run(list(args), proc.returncode, proc.stdout, proc.stderr)


def tree_state(path: str, exclude: Tuple[str, ...] = ()) -> Dict[str, Tuple[int, int]]:
    """relative path -> (size, mtime_ns) of everything under `path` (empty when it does not exist),
    leaving out the sub-trees named in `exclude` (paths relative to `path`)."""
    state = {}
    if not os.path.exists(path):
        return state
    if os.path.isfile(path):
        info = os.stat(path)
        return {".": (info.st_size, info.st_mtime_ns)}
    for folder, dirs, files in os.walk(path):
        for name in dirs + files:
            full = os.path.join(folder, name)
            rel = os.path.relpath(full, path)
            if any(rel == e or rel.startswith(e + os.sep) for e in exclude):
                continue
            info = os.lstat(full)
            state[rel] = (info.st_size if name in files else 0, info.st_mtime_ns)
    return state


class Job:
    """A command line submitted to the pool, with snapshots of the paths it must not change.

    The repository is not watched as a whole: it is shared with concurrent work; watch the exact
    repository paths a run could write by mistake (e.g. output/demo/<unique video name>).
    """

    def __init__(self, pool: ThreadPoolExecutor, args: List[str], watch: Iterable[str] = (),
                 exclude: Tuple[str, ...] = ()):
        self.args = list(args)
        self.watch, self.exclude = list(watch), tuple(exclude)
        self.before = {path: tree_state(path, self.exclude) for path in self.watch}
        self.future: Future = pool.submit(run_script, self.args)

    def result(self) -> Run:
        """Wait for the run and return it."""
        return self.future.result()

    def changed_outside(self) -> List[str]:
        """Watched paths whose content changed since submission."""
        return [path for path in self.watch if tree_state(path, self.exclude) != self.before[path]]


def write_synthetic(root: str, videos: int, frames: int, seed: int, num_objects: Optional[int] = None) -> List[str]:
    """A SYNTHETIC-layout data set of tiny videos under `root`; returns the video names."""
    from libs.dataset.synthetic import write_dataset

    return write_dataset(root, videos, frames, FRAME_SIZE, seed=seed, num_objects=num_objects)


def read_png(path: str) -> Tuple[str, np.ndarray, Optional[List[int]], Tuple[int, int]]:
    """(mode, pixels, palette of 768 ints or None, (H, W)) of an image file."""
    with Image.open(path) as img:
        img.load()
        palette = img.getpalette() if img.mode == "P" else None
        if palette is not None:
            palette = list(palette) + [0] * (768 - len(palette))
        return img.mode, np.asarray(img), palette, (img.height, img.width)


def agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Fraction of pixels where two label maps agree."""
    assert a.shape == b.shape, (a.shape, b.shape)
    return float(np.mean(a == b))


def run_inprocess(args: List[str], cwd: str = REPO) -> Run:
    """Run a script's command line in this process (runpy, `sys.argv` set, run from `cwd`), as cheap as a
    function call: `args` is ['train.py', KEY, VAL, ...] or ['-m', 'module', ...]; stdout and stderr
    (log lines included) are captured; the root logger's set-up is restored afterwards."""
    import contextlib
    import io
    import logging
    import runpy
    import warnings

    out, err = io.StringIO(), io.StringIO()
    module = args[1] if args[0] == "-m" else None
    argv = args[1:] if module else [os.path.join(REPO, args[0])] + list(args[1:])
    saved = (sys.argv, os.getcwd(), logging.root.handlers[:], logging.root.level)
    code = 0
    try:
        sys.argv = list(argv)
        os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*found in sys.modules after import of package")
            try:
                if module:
                    runpy.run_module(module, run_name="__main__", alter_sys=True)
                else:
                    runpy.run_path(argv[0], run_name="__main__")
            except SystemExit as stop:
                code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    finally:
        sys.argv = saved[0]
        os.chdir(saved[1])
        for handler in logging.root.handlers[:]:
            if handler not in saved[2]:
                logging.root.removeHandler(handler)
                handler.close()
        logging.root.handlers[:] = saved[2]
        logging.root.setLevel(saved[3])
    return Run(list(args), code, out.getvalue(), err.getvalue())
