"""Tests of libs/engine/batched.py and its steps: B videos in lockstep give each video the results the
single-video engine gives it (up to rounding), padding objects and weight-0 slots are exact."""
import pytest
import torch

from libs.dataset.synthetic import generate_video
from libs.engine.batched import BatchedEngine
from libs.engine.batched_steps import batched_correction_step, masked_probabilities
from libs.engine.inference import InferenceEngine
from libs.engine.preprocess import Letterbox
from libs.runner.batched_loop import BatchScheduler, Job

SIZE = (32, 64)
# (frames, objects) per video: different lengths and object counts; video 1's first mask is at frame 1,
# video 3 gets a mask again at frame 3
SPECS = [(5, 2), (4, 1), (3, 3), (5, 2)]
GIVEN = {1: (1,), 3: (0, 3)}


def _videos():
    """Frames [1, 3, H, W] and given masks {t: [1, K+1, H, W]} of the videos of SPECS."""
    videos = []
    for i, (frames, objects) in enumerate(SPECS):
        rgb, labels = generate_video(i, frames, SIZE, objects)
        box = Letterbox(SIZE, SIZE)
        given = {t: box.mask(labels[t], objects) for t in GIVEN.get(i, (0,))}
        videos.append(([box.frame(x) for x in rgb], given))
    return videos


def _single(model, videos, settings):
    """(video, t) -> probabilities [K+1, H, W] from one InferenceEngine per video."""
    out = {}
    for i, (frames, given) in enumerate(videos):
        engine = InferenceEngine(model, **settings)
        for t, x in enumerate(frames):
            probs = engine.step(x, given.get(t))
            out[(i, t)] = None if probs is None else probs[0]
    return out


def _batched(model, videos, settings, slots):
    """The same through a BatchedEngine of `slots` slots (continuous batching)."""
    engine = BatchedEngine(InferenceEngine(model, **settings), slots)
    jobs = iter([Job(i, iter([(x, given.get(t)) for t, x in enumerate(frames)]))
                 for i, (frames, given) in enumerate(videos)])
    align = settings["save_freq"] if settings.get("loop") else 1
    events = list(BatchScheduler(engine, jobs, align).events())
    assert sorted(e.key for e in events if e.kind == "end") == list(range(len(videos)))
    return {(e.key, e.t): None if e.probs is None else e.probs.clone() for e in events if e.kind == "frame"}


@pytest.mark.parametrize("settings", [
    dict(save_freq=2, loop=0),                                               # the plain (exact) path
    dict(save_freq=2, loop=1, correction_rate=20.0, fast=True, max_memory_frames=2),   # fast, correcting
], ids=["plain-loop0", "fast-loop1-bounded"])
def test_each_video_gets_its_single_engine_results(small_stm, one_thread, settings):
    videos = _videos()
    single, batched = _single(small_stm, videos, settings), _batched(small_stm, videos, settings, slots=2)
    assert set(batched) == set(single)
    for key, ref in single.items():
        got = batched[key]
        if ref is None:                                         # before the video's first given mask
            assert got is None, key
            continue
        assert got.shape == ref.shape, key                      # the video's own objects, no padding
        assert (got - ref).abs().max() < 1e-4, key
        top2 = ref.topk(2, dim=0).values                        # labels agree wherever they are not a tie
        clear = (top2[0] - top2[1]) > 1e-3
        assert torch.equal(got.argmax(0)[clear], ref.argmax(0)[clear]), key


def test_padding_objects_get_exactly_zero_and_leave_the_others_unchanged(small_stm, one_thread):
    torch.manual_seed(1)
    frame = torch.randn(2, 3, *SIZE)
    query = small_stm.encode_query(frame)
    key, value = small_stm.encode_memory(frame, torch.rand(2, 3, *SIZE))          # [2, 3, hw, C]
    present = torch.tensor([[True, True, True], [True, False, False]])
    with torch.no_grad():
        probs = masked_probabilities(small_stm, query, key, value, None, present, SIZE, sdpa=False)
        alone = masked_probabilities(small_stm, query._replace(**{k: v[1:] for k, v in query._asdict().items()}),
                                     key[1:, :1], value[1:, :1], None, present[1:, :1], SIZE, sdpa=False)
    assert torch.equal(probs[1, 2:], torch.zeros_like(probs[1, 2:]))
    assert (probs[1, :2] - alone[0]).abs().max() < 1e-6
    assert torch.allclose(probs.sum(1), torch.ones(2, *SIZE))


def test_a_slot_at_weight_zero_is_not_corrected(small_stm, one_thread):
    torch.manual_seed(2)
    frame = torch.randn(2, 3, *SIZE)
    out = torch.softmax(torch.randn(2, 3, *SIZE), dim=1)
    ref_mask = torch.nn.functional.one_hot(torch.randint(0, 3, (2, *SIZE)), 3).permute(0, 3, 1, 2).float()
    present = torch.ones(2, 2, dtype=torch.bool)
    args = (small_stm, frame, small_stm.memory_stem(frame), out, small_stm.encode_query(frame), ref_mask,
            torch.tensor([2, 2]), present)
    corrected = batched_correction_step(*args, torch.tensor([1.0, 0.0]), 50.0, SIZE, False)
    assert torch.equal(corrected[1], out[1])
    assert (corrected[0] - out[0]).abs().max() > 1e-4
