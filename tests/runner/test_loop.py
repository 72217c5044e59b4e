"""Tests of libs/runner: the per-video loop over any evaluation set, scoring through the contract,
validation that goes on past a bad video."""
import logging
import os
from typing import List

import pytest
import torch

import libs.dataset  # noqa: F401  (registers the readers)
from libs.config import load_cfg
from libs.dataset.base import SCORE_DAVIS, SCORE_YOUTUBE, Scoring, Video
from libs.dataset.davis import SyntheticDataset
from libs.dataset.synthetic import write_dataset
from libs.inference import InferenceCore, InferenceSettings, build_backend, build_core
from libs.inference.backend import Backend
from libs.runner import run_and_score, run_set, score_results, validate
from tests.helpers.models import tiny_stm

TINY = ["arch", "resnet18", "keydim", "8", "valdim", "16", "input_size", "[32,48]", "loop", "0", "gpu_id", "-1"]
CPU = torch.device("cpu")


class PlainSet:
    """An evaluation set that is no FolderReader: videos from a DAVIS layout, ground truth elsewhere."""

    merge_objects = False
    results_subdir = "masks"

    def __init__(self, root: str, gt_root: str):
        self.root, self.split = root, "mine"
        self.videos: List[Video] = SyntheticDataset(root, "val").videos
        self.gt_root = gt_root

    def scoring(self) -> Scoring:
        """J&F against gt_root/<video>."""
        return Scoring(SCORE_DAVIS, {v.name: os.path.join(self.gt_root, v.name) for v in self.videos})


def _tiny(seed=0):
    return tiny_stm(seed, keydim=8, valdim=16).eval()


def _data(tmp_path, videos=2):
    root = str(tmp_path / "SYNTHETIC")
    write_dataset(root, videos, 4, (40, 64), seed=3)
    return root


def test_a_set_implementing_the_contract_is_segmented_and_scored_against_its_folders(tmp_path):
    root = _data(tmp_path)
    dataset = PlainSet(root, os.path.join(root, "Annotations", "480p"))
    cfg = load_cfg(None, TINY)
    report = run_and_score(build_core(cfg, build_backend(cfg, _tiny())), dataset, str(tmp_path / "out"), cfg.input_size, "index", CPU)
    assert report.done == ["synth-val-000", "synth-val-001"] and report.failed == {} and report.frames == 8
    assert sorted(os.listdir(tmp_path / "out" / "masks" / "synth-val-001")) == [f"{t:05d}.png" for t in range(4)]
    assert os.path.isfile(tmp_path / "out" / "masks" / "global_results-mine.csv")
    assert 0.0 <= report.score <= 1.0


def test_a_failing_video_is_reported_and_left_out_of_the_score(tmp_path):
    root = _data(tmp_path)
    bad = os.path.join(root, "JPEGImages", "480p", "synth-val-000", "00002.jpg")
    with open(bad, "wb") as f:
        f.write(b"garbage")
    dataset = SyntheticDataset(root, "val")
    cfg = load_cfg(None, TINY)
    report = run_and_score(build_core(cfg, build_backend(cfg, _tiny())), dataset, str(tmp_path / "out"), cfg.input_size, "index", CPU)
    assert report.done == ["synth-val-001"] and list(report.failed) == ["synth-val-000"]
    assert bad in report.failed["synth-val-000"] and "\n" not in report.failed["synth-val-000"]
    summary = report.failure_summary("OUT")
    assert summary.splitlines()[0] == "1 of 2 videos failed (the masks of the other 1 are in OUT):"
    with open(tmp_path / "out" / "per-sequence_results-val.csv") as f:
        assert all(line.startswith(("Sequence", "synth-val-001_")) for line in f)


def test_validation_goes_on_past_a_bad_video_and_restores_training_mode(tmp_path, caplog):
    root = _data(tmp_path)
    with open(os.path.join(root, "JPEGImages", "480p", "synth-val-001", "00001.jpg"), "wb") as f:
        f.write(b"garbage")
    cfg = load_cfg(None, TINY + ["valset", "SYNTHETIC", "data_root", str(tmp_path)])
    model = _tiny().train()
    with caplog.at_level(logging.INFO):
        score = validate(cfg, model, CPU, str(tmp_path / "val"))
    assert model.training and score is not None and 0.0 <= score <= 1.0
    assert "synth-val-001: cannot read frame" in caplog.text and "1 of 2 videos failed" in caplog.text


def test_youtube_results_with_a_missing_video_are_not_packed(tmp_path, caplog):
    class Half(PlainSet):
        def scoring(self):
            return Scoring(SCORE_YOUTUBE, meta_path="unused.json", frames_root="unused")

    root = _data(tmp_path)
    with caplog.at_level(logging.INFO):
        assert score_results(Half(root, ""), str(tmp_path / "out"), "index", videos=["synth-val-000"]) is None
    assert "not packed" in caplog.text and not os.path.exists(tmp_path / "out.zip")


def test_a_video_too_short_to_score_is_left_out_with_a_warning(tmp_path, caplog):
    root = _data(tmp_path)
    gt = os.path.join(root, "Annotations", "480p", "synth-val-000")
    for name in ("00001.png", "00002.png"):        # 2 annotated frames left: first and last are not scored
        os.remove(os.path.join(gt, name))
    dataset = PlainSet(root, os.path.join(root, "Annotations", "480p"))
    cfg = load_cfg(None, TINY)
    with caplog.at_level(logging.WARNING):
        report = run_and_score(build_core(cfg, build_backend(cfg, _tiny())), dataset, str(tmp_path / "out"), cfg.input_size, "index",
                               CPU)
    assert report.done == ["synth-val-000", "synth-val-001"] and 0.0 <= report.score <= 1.0
    assert "not scored (fewer than 3 annotated frames" in caplog.text and "synth-val-000" in caplog.text
    with open(tmp_path / "out" / "masks" / "per-sequence_results-mine.csv") as f:
        assert all(line.startswith(("Sequence", "synth-val-001_")) for line in f)


OOM = torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")


@pytest.mark.parametrize("where", ["start", "step"])
@pytest.mark.parametrize("slots", [1, 2])
def test_out_of_gpu_memory_fails_the_videos_in_the_core_and_the_others_finish(tmp_path, monkeypatch, where, slots):
    """Injected at a video's start or in a step of its: that video is reported (never lost), the memory is
    freed (a fresh bank), the next videos finish and test.py would exit 2."""
    root = _data(tmp_path, videos=3)
    core = InferenceCore(Backend(_tiny(), fast=True), InferenceSettings(save_freq=2), slots)
    banks, calls = [], {"n": 0}
    real = getattr(core, where)

    def runs_out(*args, **kwargs):
        calls["n"] += 1
        banks.append(core.bank)
        if calls["n"] == (1 if where == "start" else 2):
            raise OOM
        return real(*args, **kwargs)

    monkeypatch.setattr(core, where, runs_out)
    report = run_set(core, SyntheticDataset(root, "val"), str(tmp_path / "out"), (32, 48), "index", CPU)
    failed = set(report.failed)
    assert failed and all(reason.startswith("out of GPU memory") for reason in report.failed.values())
    assert len(failed) <= slots and "synth-val-002" in report.done
    assert failed | set(report.done) == {"synth-val-000", "synth-val-001", "synth-val-002"}
    assert banks[-1] is not banks[0]                    # the memory was freed for the next videos
    for name in report.done:
        assert len(os.listdir(tmp_path / "out" / name)) == 4
