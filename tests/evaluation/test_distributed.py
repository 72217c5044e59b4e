"""Sharing a set's videos out among torchrun ranks, and the per-video completion markers."""
import os
from types import SimpleNamespace

import pytest

from libs.dataset.base import Video
from libs.evaluation import distributed


def test_shards_balance_frames_and_cover_every_video_once():
    counts = [100, 10, 60, 50, 40, 30, 5]
    shares = distributed.shard_videos(counts, 3)
    assert sorted(i for share in shares for i in share) == list(range(len(counts)))
    loads = [sum(counts[i] for i in share) for share in shares]
    assert loads == [100, 100, 95]            # 100 | 60+30+10 | 50+40+5 (longest first to the least loaded, ties: lower rank)
    assert distributed.shard_videos(counts, 3) == shares          # deterministic
    assert distributed.shard_videos([3, 3], 4) == [[0], [1], [], []]
    with pytest.raises(ValueError):
        distributed.shard_videos(counts, 0)


def test_marker_is_written_atomically_and_cleared(tmp_path):
    root = str(tmp_path / "out")
    assert not distributed.is_done(root, "a")
    distributed.mark_done(root, "a")
    assert distributed.is_done(root, "a")
    assert os.listdir(tmp_path / ".out-done") == ["a"]          # beside the results, no temporary file left
    assert not (tmp_path / "out").exists()                       # the results folder itself is untouched
    distributed.clear_markers(root, ["a", "b"])
    assert not distributed.is_done(root, "a")


def _dataset(lengths):
    videos = [Video(name=f"v{i}", frames=["f"] * n, frame_names=[str(t) for t in range(n)], given={})
              for i, n in enumerate(lengths)]
    return SimpleNamespace(videos=videos)


def test_first_attempt_redoes_its_share_and_a_restart_skips_marked_videos(tmp_path):
    root = str(tmp_path / "out")
    dataset = _dataset([9, 8, 7, 6])
    for name in ("v0", "v1", "v3"):
        distributed.mark_done(root, name)                          # left by an earlier run
    share, skipped = distributed.rank_share(dataset, 1, 2, root, restarts=0)
    assert [v.name for v in share.videos] == ["v1", "v2"] and skipped == []   # 8+7 vs 9+6
    assert not distributed.is_done(root, "v1") and distributed.is_done(root, "v0")   # only its own cleared
    distributed.mark_done(root, "v1")
    share, skipped = distributed.rank_share(dataset, 1, 2, root, restarts=1)
    assert [v.name for v in share.videos] == ["v2"] and skipped == ["v1"]
    assert [v.name for v in dataset.videos] == ["v0", "v1", "v2", "v3"]       # the set itself is untouched
    assert distributed.restart_count({"TORCHELASTIC_RESTART_COUNT": "2"}) == 2
    assert distributed.restart_count({}) == 0


def test_failures_of_videos_finished_later_are_dropped(tmp_path):
    parts = [{"a": "out of memory"}, {"b": "cannot read"}]
    assert distributed.merge_failures(parts, done=["a"]) == {"b": "cannot read"}
    distributed.mark_done(str(tmp_path / "out"), "x")
    assert distributed.unseen_results([(["x", "y"], {})], str(tmp_path / "out")) == ["y"]
