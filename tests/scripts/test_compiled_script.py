"""test.py with `fast_inference True compile True`: the real command line writes the plain path's masks."""
import os

import numpy as np
import pytest

from tests.helpers.scripts import TEST_CMD, TINY, Job, agreement, read_png, write_synthetic

# the shapes of tests/engine/test_compiled.py's inductor run (2 objects, 32x64, rate 50), so that one of
# the two compiles and the other reads inductor's on-disk cache. The checkpoint's random weights are not
# saturated: there the compiled and plain probabilities stay within 1e-3 through the rate-50 chain (that test
# bounds them), so a label can differ only on a near-tie pixel, far fewer than the 0.5 % allowed below.
COMMON = ["loop", "1", "save_freq", "2", "correction_rate", "50", "valset", "SYNTHETIC"]


@pytest.fixture(scope="module")
def runs(script_pool, tmp_path_factory, r18_checkpoint):
    """The plain and the compiled run of test.py on one 2-object, 8-frame video."""
    base = tmp_path_factory.mktemp("compiled_script")
    data = base / "data" / "SYNTHETIC"
    write_synthetic(str(data), 1, 8, seed=7, num_objects=2)
    jobs = {}
    for name, extra in (("plain", []), ("compiled", ["fast_inference", "True", "compile", "True"])):
        out = base / name
        args = TEST_CMD + TINY + COMMON + ["data_root", str(data.parent), "output_dir", str(out),
                                           "initial", r18_checkpoint] + extra
        jobs[name] = (Job(script_pool, args), out / "SYNTHETIC")
    return jobs


@pytest.mark.slow
def test_compiled_run_writes_the_plain_paths_masks(runs):
    results = {name: (job.result(), out) for name, (job, out) in runs.items()}
    for run, _ in results.values():
        assert run.returncode == 0, run.describe()
    plain_dir, compiled_dir = results["plain"][1], results["compiled"][1]
    video = os.listdir(plain_dir)
    video = [v for v in video if os.path.isdir(plain_dir / v)]
    assert len(video) == 1
    stems = sorted(os.listdir(plain_dir / video[0]))
    assert len(stems) == 8 and stems == sorted(os.listdir(compiled_dir / video[0]))
    plain = np.stack([read_png(str(plain_dir / video[0] / s))[1] for s in stems])
    compiled = np.stack([read_png(str(compiled_dir / video[0] / s))[1] for s in stems])
    assert agreement(plain, compiled) >= 0.995
    assert {1, 2} <= set(np.unique(plain[1:]).tolist())      # both objects are still segmented


def test_compile_without_the_fast_path_is_a_one_line_error(script_pool, tmp_path):
    run = Job(script_pool, TEST_CMD + TINY + ["compile", "True", "output_dir", str(tmp_path)]).result()
    assert run.returncode != 0 and len(run.error_lines()) == 1, run.describe()
    assert "'compile' True needs 'fast_inference' True" in run.error_lines()[0]
    assert "Traceback" not in run.stderr
