"""benchmarks/gpu_check.sh --tiny: the one-call GPU check's CPU dry run writes every section and a summary."""
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "benchmarks", "gpu_check.sh")


def _cells(line):
    return [c.strip() for c in line.strip().strip("|").split("|")]


def test_tiny_dry_run_writes_all_sections_and_a_summary(tmp_path):
    out = tmp_path / "check"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHON=sys.executable)
    done = subprocess.run(["bash", SCRIPT, str(out), "--tiny"], cwd=ROOT, capture_output=True, text=True,
                          timeout=900, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    for name in ("machine", "gpu_tests", "engine", "training", "long", "batched"):
        assert (out / f"{name}.txt").stat().st_size > 0, name
    summary = done.stdout[done.stdout.index("== gpu_check summary"):]
    assert [m for m in re.findall(r"^-- (\w+): ok", summary, re.M)] == ["gpu_tests", "engine", "training", "long",
                                                                       "batched"]
    batched = [_cells(line) for line in summary.splitlines() if line.startswith("| resnet18 32x64 loop 1, 2 videos |")]
    assert [c[2] for c in batched] == ["1", "2"] and float(batched[1][6].rstrip("x")) >= 1.6   # operators per frame fall
    rows = {_cells(line)[1]: _cells(line) for line in summary.splitlines()
            if line.startswith("| resnet18 32x64 loop 1 |")}
    assert sorted(rows) == ["compiled", "fast", "fast-bf16", "plain"]
    assert float(rows["compiled"][6]) >= 99.5 and float(rows["compiled"][9]) >= 0      # agree %, compile s
    assert rows["fast"][9] == "-" and float(rows["compiled"][2]) > 0
    # the bf16 copy holds bf16 weights: no cast per layer as under autocast (491 operations per frame against
    # fp32's 231 on --tiny, counted the old way), only the mask's cast per frame and the prediction's per
    # correction iteration (267 against 263 here)
    assert 100 < float(rows["fast"][8]) and float(rows["fast-bf16"][8]) <= 1.03 * float(rows["fast"][8])
    assert any(line.startswith("| resnet18 32x64 3 frames | 1 | fp32 |") for line in summary.splitlines())
    long_lines = [line for line in summary.splitlines() if line.startswith("long |")]
    assert {_cells(line)[2] for line in long_lines} == {"fast", "compiled"}
    assert all("memory frames 7/7" in line for line in long_lines if "frame 19" in line)


def test_without_an_output_folder_it_prints_its_usage():
    done = subprocess.run(["bash", SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stderr.startswith("usage: bash benchmarks/gpu_check.sh OUTDIR [--tiny]")
