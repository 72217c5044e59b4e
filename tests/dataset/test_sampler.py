"""ClipSampler: temporal order, gap bound, the max_skip curriculum and its checkpoint state."""
import random

import numpy as np
import pytest

from libs.dataset.sampler import ClipSampler
from libs.errors import VOSError


@pytest.mark.parametrize("make_rng", [lambda s: random.Random(s), lambda s: np.random.default_rng(s)])
def test_positions_are_ordered_in_range_with_bounded_gaps(make_rng):
    sampler = ClipSampler(sampled_frames=4, max_skip=3, increment=0)
    gaps = set()
    for seed in range(400):
        n = 4 + seed % 30
        positions = sampler.sample(n, make_rng(seed))
        assert len(positions) == 4
        assert 0 <= positions[0] and positions[-1] < n
        steps = np.diff(positions)
        assert (steps >= 1).all() and (steps <= 3).all()
        gaps.update(int(s) for s in steps)
    firsts = {sampler.sample(10, make_rng(seed))[0] for seed in range(300)}
    assert gaps == {1, 2, 3}                  # every allowed gap occurs, none beyond max_skip
    assert firsts == set(range(0, 10 - 4 + 1))  # the first frame reaches every position leaving room


def test_exactly_enough_frames_gives_consecutive_positions():
    sampler = ClipSampler(sampled_frames=5, max_skip=10, increment=0)
    assert sampler.sample(5, random.Random(3)) == [0, 1, 2, 3, 4]


def test_same_seed_same_positions():
    sampler = ClipSampler(3, 7, 0)
    assert sampler.sample(50, np.random.default_rng(9)) == sampler.sample(50, np.random.default_rng(9))


def test_short_video_is_an_error_naming_it():
    sampler = ClipSampler(3, 5, 0, name="DAVIS17")
    with pytest.raises(VOSError, match=r"'bear'.*DAVIS17.*2 frames.*sampled_frames=3"):
        sampler.sample(2, random.Random(0), video="bear")


def test_curriculum_grows_every_period_up_to_the_cap():
    sampler = ClipSampler(3, max_skip=5, increment=5, max_skip_cap=20)
    assert [sampler.max_skip_at(e, 5) for e in (0, 4, 5, 9, 10, 14, 15, 30, 1000)] == [5, 5, 10, 10, 15, 15, 20, 20, 20]
    assert sampler.max_skip == 5
    sampler.set_epoch(11, 5)
    assert sampler.max_skip == 15


def test_set_epoch_widens_the_sampled_gaps():
    sampler = ClipSampler(2, max_skip=1, increment=3, max_skip_cap=100)
    narrow = {np.diff(sampler.sample(40, random.Random(s)))[0] for s in range(200)}
    sampler.set_epoch(4, 2)   # two completed periods: 1 + 2 * 3 = 7
    wide = {np.diff(sampler.sample(40, random.Random(s)))[0] for s in range(200)}
    assert narrow == {1}
    assert wide == set(range(1, 8))


def test_state_round_trip_restores_the_curriculum():
    trained = ClipSampler(3, max_skip=5, increment=5, max_skip_cap=25)
    trained.set_epoch(12, 5)
    fresh = ClipSampler(3, max_skip=2, increment=1, max_skip_cap=100)
    fresh.load_state_dict(trained.state_dict())
    assert fresh.state_dict() == trained.state_dict()
    assert fresh.max_skip == 15
    assert fresh.max_skip_at(20, 5) == 25
    assert fresh.sample(60, random.Random(4)) == trained.sample(60, random.Random(4))


def test_incomplete_state_is_an_error():
    with pytest.raises(VOSError, match="lacks max_skip"):
        ClipSampler(3, 5, 5).load_state_dict({"base_max_skip": 5, "increment": 5, "max_skip_cap": 9, "epoch": 0})


@pytest.mark.parametrize("args, message", [((0, 5, 0), "sampled_frames"), ((3, 0, 0), "max_skip must"),
                                           ((3, 5, -1), "increment"), ((3, 50, 1, 10), "exceeds max_skip_cap")])
def test_bad_settings_are_errors(args, message):
    with pytest.raises(VOSError, match=message):
        ClipSampler(*args)


def test_bad_epochs_per_increment_is_an_error():
    with pytest.raises(VOSError, match="epochs_per_increment"):
        ClipSampler(3, 5, 5).set_epoch(3, 0)
