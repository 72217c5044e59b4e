"""benchmarks/training_curve.py --tiny: both runs train through train.py and the curve is read back."""
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "benchmarks", "training_curve.py")


def test_tiny_curve_has_one_row_per_validated_epoch(tmp_path):
    out = str(tmp_path / "curve")
    done = subprocess.run([sys.executable, SCRIPT, "--tiny", "--out", out], cwd=ROOT, capture_output=True,
                          text=True, timeout=600, env=dict(os.environ, OMP_NUM_THREADS="2"))
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in done.stdout.splitlines()
            if re.match(r"\| (synthetic|static\+synthetic) \|", line)]
    for run in ("synthetic", "static+synthetic"):
        mine = [r for r in rows if r[0] == run]
        assert [int(r[1]) for r in mine] == list(range(len(mine))) and len(mine) >= 2   # 0: untrained
        minutes = [float(r[2]) for r in mine]
        assert minutes == sorted(minutes) and all(0 <= float(r[3]) <= 1 for r in mine)
        assert os.path.isfile(os.path.join(out, run, "latest.pth"))
        assert os.path.isfile(os.path.join(out, run, "untrained.pth")) and float(mine[0][2]) == 0.0
    static = os.path.join(out, "data", "STATIC")
    assert sorted(os.listdir(os.path.join(static, "JPEGImages"))) == [f"static-{i:04d}.jpg" for i in range(4)]
    assert sorted(os.listdir(os.path.join(static, "Annotations"))) == [f"static-{i:04d}.png" for i in range(4)]
