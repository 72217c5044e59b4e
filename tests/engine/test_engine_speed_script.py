"""benchmarks/engine_speed.py --tiny runs on a CPU and prints the engine and training tables (run in this
process: the command line is parsed and its errors printed as from a shell)."""
import os
import re

import pytest

from tests.inprocess import run_main

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "benchmarks", "engine_speed.py")


@pytest.fixture
def run(capsys):
    """run(*args): `python benchmarks/engine_speed.py ARGS` in this process."""
    return lambda *args: run_main(SCRIPT, list(args), capsys)


def _cells(line):
    return [c.strip() for c in line.strip().strip("|").split("|")]


def test_tiny_run_prints_both_paths_and_training_rows(run):
    done = run("--tiny", "--ops")
    assert done.returncode == 0, done.stderr
    engine, train = {}, []
    for line in done.stdout.splitlines():
        if line.startswith("| resnet18 64x112 loop 1 |"):
            cells = _cells(line)
            engine[cells[1]] = cells
        elif line.startswith("| resnet18 64x112 3 frames |"):
            train.append(_cells(line))
    plain, fast = engine["plain"], engine["fast"]
    assert float(plain[2]) > 0 and float(fast[2]) > 0                     # FPS
    assert plain[3] == "1.00x" and re.fullmatch(r"\d+\.\d\dx", fast[3])
    assert float(plain[6]) == 100.0 and float(fast[6]) >= 99.5             # agreement with the plain path
    assert 0 < float(fast[8]) < 0.9 * float(plain[8])                       # batch norm folded: fewer operators
    assert [(c[1], c[2]) for c in train] == [("1", "fp32"), ("2", "fp32")]
    for c in train:
        assert float(c[3]) > 0 and abs(float(c[4]) - int(c[1]) / float(c[3])) < 0.02 * float(c[4]) + 0.01


def test_unknown_path_is_a_one_line_error(run):
    done = run("--tiny", "--paths", "plain,quick")
    assert done.returncode == 2
    assert done.stderr.strip() == ("error: --paths: unknown path(s) quick; known: plain, fast, fast-bf16, compiled, "
                                   "compiled-bf16")


def test_long_mode_prints_the_memory_curve_with_bounded_memory(run):
    done = run("--tiny", "--long", "7", "--every", "3", "--max_memory_frames", "2", "--paths", "fast")
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if line.startswith("long |")]
    assert [_cells(line)[3] for line in lines] == ["frame 3", "frame 6"]
    assert all(_cells(line)[2] == "fast" and _cells(line)[5] == "memory frames 2/2" for line in lines)
    assert all(re.fullmatch(r"resident \d+ MiB", _cells(line)[6]) for line in lines)


def test_read_mode_times_every_memory_read(run):
    done = run("--tiny", "--read", "2,3")
    assert done.returncode == 0, done.stderr
    rows = [_cells(line) for line in done.stdout.splitlines() if re.match(r"\| \d+ \| \d+ \|", line)]
    # plain and fast read the used slots (28 positions each), compiled the whole fixed buffers (8 slots)
    assert [(r[0], r[1], r[2]) for r in rows] == [("2", "56", "plain"), ("2", "56", "fast"), ("2", "224", "compiled"),
                                                  ("3", "84", "plain"), ("3", "84", "fast"), ("3", "224", "compiled")]
    assert all(float(r[3]) >= 0 and float(r[4]) >= 0 and r[5] == "-" for r in rows)
