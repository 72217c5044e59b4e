"""test.py on generated tiny sets in the MOSE, MOSEv2, LVOS and SA-V layouts (segmented and scored through
the real command line), and under torchrun with 2 gloo processes on the CPU: a rank killed mid-set is
restarted by torchrun, the group finishes the rest, redoes no finished video, and the masks and CSVs are
those of one process.
"""
import os
import sys
import zipfile

import numpy as np
import pytest

from tests.helpers.scripts import FRAME_SIZE, REPO, TINY, Job, run_inprocess
from libs.dataset.benchmark_sets import write_layout
from libs.evaluation.png import read_label_png

SIZE = (24, 32)
COMMON = TINY + ["loop", "0"]
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--standalone"]
KILLER = '''import os, runpy, sys
sys.path.insert(0, {repo!r})
import libs.runner.run as run
attempt, rank, log = os.environ["TORCHELASTIC_RESTART_COUNT"], os.environ["RANK"], {log!r}
def note(what):
    with open(log, "a") as handle:
        handle.write(what + "\\n")
prepare_video, mark_done = run.prepare_video, run.mark_done
def started(video, *args, **kwargs):
    note(f"start {{attempt}} {{rank}} {{video.name}}")
    return prepare_video(video, *args, **kwargs)
def done(root, name):
    mark_done(root, name)
    note(f"done {{attempt}} {{rank}} {{name}}")
    if attempt == "0" and rank == "1":
        os._exit(3)                              # rank 1 dies right after its first video
run.prepare_video, run.mark_done = started, done
sys.argv = [os.path.join({repo!r}, "test.py")] + sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
'''


def _args(checkpoint, data, out, valset):
    return ["--cfg", "config.yaml"] + COMMON + ["initial", checkpoint, "data_root", str(data), "valset", valset,
                                                "output_dir", str(out)]


def _test(checkpoint, data, out, valset, *extra):
    """test.py run in this process (cheap); the Run."""
    return run_inprocess(["test.py"] + _args(checkpoint, data, out, valset) + list(extra))


@pytest.fixture(scope="module")
def data(tmp_path_factory, r18_checkpoint):
    root = tmp_path_factory.mktemp("bench") / "data"
    write_layout(str(root), "MOSE", 2, 4, SIZE, 0)
    write_layout(str(root), "MOSEv2", 2, 4, SIZE, 1, full_gt=True)
    write_layout(str(root), "LVOS", 1, 12, SIZE, 2)
    write_layout(str(root), "SAV", 4, 13, FRAME_SIZE, 3)
    return root


@pytest.mark.slow
def test_mose_valid_becomes_a_server_zip(data, r18_checkpoint, tmp_path):
    run = _test(r18_checkpoint, data, tmp_path, "MOSE", "batch_videos", "2")
    assert run.returncode == 0, run.describe()
    assert sorted(os.listdir(tmp_path / ".MOSE-done")) == ["valid-000", "valid-001"]   # batched run marks too
    with zipfile.ZipFile(tmp_path / "MOSE.zip") as archive:
        assert sorted(archive.namelist()) == [f"valid-{v:03d}/{t:05d}.png" for v in range(2) for t in range(4)]
    assert "submission ready to upload" in run.output


@pytest.mark.slow
def test_mosev2_full_ground_truth_is_scored_with_the_adaptive_boundary(data, r18_checkpoint, tmp_path):
    run = _test(r18_checkpoint, data, tmp_path, "MOSEv2")
    assert run.returncode == 0, run.describe()
    lines = (tmp_path / "MOSEv2" / "global_results-MOSEv2-val.csv").read_text().splitlines()
    assert lines[0] == "J&F_new,J,F_new,disappear_J&F_new,reappear_J&F_new,F,J&F"
    assert all(0 <= float(v) <= 1 for v in lines[1].split(",") if v)


@pytest.mark.slow
def test_lvos_object_appearing_later_and_sparse_scoring(data, r18_checkpoint, tmp_path):
    run = _test(r18_checkpoint, data, tmp_path, "LVOS")
    assert run.returncode == 0, run.describe()
    out, truth = tmp_path / "LVOS" / "valid-000", data / "LVOS" / "valid" / "Annotations" / "valid-000"
    assert len(os.listdir(out)) == 12 and (tmp_path / ".LVOS-done" / "valid-000").is_file()   # masks, marker
    assert all(not (read_label_png(str(out / f"{n:08d}.png")) == 2).any() for n in range(1, 6))
    assert np.array_equal(read_label_png(str(out / "00000006.png")) == 2,
                          read_label_png(str(truth / "00000006.png")) == 2)    # given where it starts
    rows = (tmp_path / "LVOS" / "per-sequence_results-LVOS-val.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows] == ["Sequence", "valid-000_1", "valid-000_2"]


@pytest.fixture(scope="module")
def torchrun_runs(script_pool, data, r18_checkpoint, tmp_path_factory):
    base = tmp_path_factory.mktemp("torchrun")
    killer = base / "killer.py"
    killer.write_text(KILLER.format(repo=REPO, log=str(base / "log.txt")))
    jobs = {"killed": Job(script_pool, TORCHRUN + ["--max-restarts", "1", str(killer)]
                          + _args(r18_checkpoint, data, base / "killed", "SAV"))}
    single = _test(r18_checkpoint, data, base / "one", "SAV")
    return base, single, jobs


def _outputs(folder):
    """Every label map and per-object PNG (bytes) and the CSVs under a SAV output folder."""
    found = {}
    for sub, _, files in os.walk(folder):
        for name in files:
            if name.endswith((".png", ".csv")):
                path = os.path.join(sub, name)
                found[os.path.relpath(path, folder)] = open(path, "rb").read()
    return found


@pytest.mark.slow
def test_sav_through_one_process(torchrun_runs, data):
    base, single, _ = torchrun_runs
    assert single.returncode == 0, single.describe()
    out = base / "one" / "SAV"
    assert sorted(os.listdir(out / "label_maps" / "val-000")) == [f"{t:05d}.png" for t in range(13)]
    assert sorted(os.listdir(out / "Annotations_6fps" / "val-000" / "001")) == [f"{t:05d}.png" for t in (0, 4, 8, 12)]
    assert not (read_label_png(str(out / "label_maps" / "val-000" / "00002.png")) == 2).any()   # 001 not yet given
    assert (out / "global_results-SAV-val.csv").read_text().startswith("J&F-Mean,J-Mean,F-Mean\n")


@pytest.mark.slow
def test_torchrun_two_ranks_one_killed_write_what_one_process_writes(torchrun_runs):
    """One torchrun run covers both: 2 gloo ranks, rank 1 killed after its first video; the restarted group
    finishes the rest, redoes no finished video, and rank 0 scores the whole set once."""
    base, _, jobs = torchrun_runs
    run = jobs["killed"].result()
    assert run.returncode == 0, run.describe()
    events = [line.split() for line in (base / "log.txt").read_text().splitlines()]
    finished_first = {name for kind, attempt, _, name in events if kind == "done" and attempt == "0"}
    started_again = {name for kind, attempt, _, name in events if kind == "start" and attempt == "1"}
    finished_again = {name for kind, attempt, _, name in events if kind == "done" and attempt == "1"}
    assert ["done", "0", "1"] in [e[:3] for e in events]              # rank 1 died after a video
    assert started_again and not started_again & finished_first        # nothing segmented twice
    assert finished_first | finished_again == {f"val-{i:03d}" for i in range(4)}    # nothing lost
    assert {e[2] for e in events if e[0] == "start"} == {"0", "1"}    # both ranks had a share
    one, two = _outputs(base / "one" / "SAV"), _outputs(base / "killed" / "SAV")
    assert len(one) == 4 * 13 + 4 * 2 * 4 + 2 and one == two          # label maps, per-object PNGs, 2 CSVs
    assert run.output.count("J&F-Mean on") == 1                        # scored once, by rank 0
