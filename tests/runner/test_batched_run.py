"""Tests of libs/runner/batched_run.py: a set segmented several videos at once writes the masks of
one-at-a-time runs, goes on past a failing video, and validation uses it."""
import logging
import os

import numpy as np
import pytest
import torch

import libs.dataset  # noqa: F401  (registers the readers)
from libs.config import load_cfg
from libs.dataset.davis import SyntheticDataset
from libs.dataset.synthetic import write_dataset
from libs.inference import build_backend, build_core
from libs.errors import VOSError
from libs.io import read_mask
from libs.runner import run_and_score, validate
from tests.helpers.models import tiny_stm

TINY = ["arch", "resnet18", "keydim", "8", "valdim", "16", "input_size", "[32,48]", "loop", "0", "gpu_id", "-1"]
CPU = torch.device("cpu")


pytestmark = pytest.mark.usefixtures("one_thread")    # tests/helpers/fixtures.py


def _tiny():
    return tiny_stm(0, keydim=8, valdim=16).eval()


def _masks(folder):
    """file name -> labels of every PNG in `folder`."""
    return {name: read_mask(os.path.join(folder, name))[0] for name in sorted(os.listdir(folder))}


def test_batched_masks_equal_one_at_a_time_and_a_failing_video_leaves_its_slot(tmp_path, capsys):
    root = str(tmp_path / "SYNTHETIC")
    names = write_dataset(root, 3, 4, (40, 64), seed=5)
    bad = os.path.join(root, "JPEGImages", "480p", names[1], "00002.jpg")
    with open(bad, "wb") as f:
        f.write(b"garbage")
    dataset = SyntheticDataset(root, "val")
    model = _tiny()
    reports = {}
    for batch in (1, 2):
        cfg = load_cfg(None, TINY + ["batch_videos", str(batch)])
        core = build_core(cfg, build_backend(cfg, model), len(dataset.videos))
        assert core.slots == batch
        reports[batch] = run_and_score(core, dataset, str(tmp_path / f"b{batch}"), cfg.input_size, "index", CPU)
        # the progress line ends at every frame of the set, the failed video's included (not 10/12)
        assert f"3 videos, {batch} at once: 12/12 frame" in capsys.readouterr().err
    one, two = reports[1], reports[2]
    assert sorted(two.done) == [names[0], names[2]] and list(two.failed) == [names[1]]
    assert two.failed[names[1]] == one.failed[names[1]] and bad in two.failed[names[1]]
    assert two.frames == one.frames == 8 and two.score == pytest.approx(one.score, abs=1e-3)
    for name in two.done:
        a, b = _masks(tmp_path / "b1" / name), _masks(tmp_path / "b2" / name)
        assert list(a) == list(b) == [f"{t:05d}.png" for t in range(4)]
        assert np.mean([np.mean(a[k] == b[k]) for k in a]) >= 0.9999      # ties may flip by rounding


def test_more_slots_than_videos_are_clamped_with_one_line(caplog):
    cfg = load_cfg(None, TINY + ["batch_videos", "5"])
    with caplog.at_level(logging.INFO):
        core = build_core(cfg, build_backend(cfg, _tiny()), 3)
    assert core.slots == 3
    assert "batch_videos 5: the set has 3 videos, segmenting 3 at once" in caplog.text


@pytest.mark.parametrize("value", ["0", "-2"])
def test_batch_videos_below_one_is_a_config_error(value):
    with pytest.raises(VOSError, match=f"config key 'batch_videos' must be positive; got {value}"):
        load_cfg(None, TINY + ["batch_videos", value])


def test_validation_with_batch_videos_scores_the_set(tmp_path):
    write_dataset(str(tmp_path / "SYNTHETIC"), 2, 3, (40, 64), seed=3)
    cfg = load_cfg(None, TINY + ["valset", "SYNTHETIC", "data_root", str(tmp_path), "batch_videos", "2"])
    model = _tiny().train()
    score = validate(cfg, model, CPU, str(tmp_path / "val"))
    assert model.training and score is not None and 0.0 <= score <= 1.0
    for name in ("synth-val-000", "synth-val-001"):
        assert sorted(os.listdir(tmp_path / "val" / name)) == ["00000.png", "00001.png", "00002.png"]
    assert os.path.isfile(tmp_path / "val" / "global_results-val.csv")
