"""`python3 -m libs.evaluation` end to end: files, printed tables, exit codes of user errors."""
import os
import subprocess
import sys

import pytest

from libs.evaluation import __main__ as cli
from libs.evaluation.synthetic import write_davis_like

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def data(tmp_path):
    """Generated DAVIS folder and results: (davis, results)."""
    davis, res = str(tmp_path / "davis"), str(tmp_path / "res")
    write_davis_like(davis, res, n_sequences=2, n_frames=5, size=(64, 96), seed=1)
    return davis, res


def run_cli(*args):
    """Run the module as a user would; CompletedProcess with text output."""
    return subprocess.run([sys.executable, "-m", "libs.evaluation", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def test_cli_writes_the_official_files_and_prints_the_tables(data):
    davis, res = data
    done = run_cli("--davis_path", davis, "--results_path", res, "--set", "val",
                   "--task", "semi-supervised", "--device", "cpu")
    assert done.returncode == 0, done.stderr
    for name in ["global_results-val.csv", "per-sequence_results-val.csv", "per-sequence_results-val.png"]:
        assert os.path.isfile(os.path.join(res, name))
    assert "Global results for val" in done.stdout and "seq001_1" in done.stdout
    assert "Total time:" in done.stdout
    with open(os.path.join(res, "per-sequence_results-val.csv")) as f:
        assert f.readline() == "Sequence,J-Mean,F-Mean\n"


def test_cli_user_errors_print_one_line_and_exit_2(data, capsys):
    davis, res = data
    os.remove(os.path.join(res, "seq000", "00002.png"))
    assert cli.main(["--davis_path", davis, "--results_path", res, "--no_plot"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: sequence 'seq000': result frame 00002.png is missing")
    assert err.count("\n") == 1 and "Traceback" not in err


def test_cli_refuses_other_tasks_and_runs_in_a_subprocess_with_exit_2(data):
    davis, res = data
    done = run_cli("--davis_path", davis, "--results_path", res, "--task", "unsupervised")
    assert done.returncode == 2
    assert done.stderr.strip() == "error: --task 'unsupervised' is not supported; only semi-supervised is"


def test_cli_restricts_to_the_listed_sequences_and_year(data, capsys):
    davis, res = data
    assert cli.main(["--davis_path", davis, "--results_path", res, "--sequences", "seq001",
                     "--no_plot", "--workers", "1"]) == 0
    with open(os.path.join(res, "per-sequence_results-val.csv")) as f:
        names = [line.split(",")[0] for line in f.read().splitlines()[1:]]
    assert names and all(n.startswith("seq001_") for n in names)
    assert cli.main(["--davis_path", davis, "--results_path", res, "--year", "2016", "--no_plot"]) == 2
    assert "ImageSets/2016/val.txt" in capsys.readouterr().err
