"""The core over B videos and its steps: B videos in lockstep give each video the results it gets alone (up
to rounding), padding objects and weight-0 rows are exact, the batch's objects follow its videos."""
import pytest
import torch

from libs.dataset.synthetic import generate_video
from libs.inference import InferenceCore, InferenceSettings
from libs.inference.backend import Backend
from libs.inference.frames import Letterbox
from libs.inference.scheduler import Job, run_jobs
from libs.inference.steps import correction_step, probabilities
from tests.engine.single import OneVideo

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
    """(video, t) -> probabilities [K+1, H, W], each video alone in a core of one slot."""
    out = {}
    for i, (frames, given) in enumerate(videos):
        engine = OneVideo(model, **settings)
        for t, x in enumerate(frames):
            probs = engine.step(x, given.get(t))
            out[(i, t)] = None if probs is None else probs[0]
    return out


def _batched(model, videos, settings, slots):
    """The same through a core of `slots` slots (continuous batching); also the batch's widths as it goes."""
    settings = InferenceSettings(**settings)
    core = InferenceCore(Backend.from_settings(model, settings), settings, slots)
    jobs = [Job(i, iter([(x, given.get(t)) for t, x in enumerate(frames)])) for i, (frames, given) in enumerate(videos)]
    events = list(run_jobs(core, jobs, settings.align))
    assert sorted(e.job.key for e in events if e.kind == "end") == list(range(len(videos)))
    return {(e.job.key, e.t): None if e.probs is None else e.probs.clone() for e in events if e.kind == "frame"}


@pytest.mark.parametrize("settings", [
    dict(save_freq=2, loop=0),                                               # the plain (exact) path
    dict(save_freq=2, loop=1, correction_rate=20.0, fast=True, max_memory_frames=2),   # fast, correcting
    dict(save_freq=2, loop=1, correction_rate=20.0, fast=True, compile=True, compile_backend="eager"),  # all rows
], ids=["plain-loop0", "fast-loop1-bounded", "compiled-loop1"])
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
        probs = probabilities(small_stm, query, key, value, None, present, SIZE, sdpa=False)
        alone = probabilities(small_stm, query._replace(**{k: v[1:] for k, v in query._asdict().items()}),
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
    corrected = correction_step(*args, torch.tensor([1.0, 0.0]), 50.0, SIZE, False)
    assert torch.equal(corrected[1], out[1])
    assert (corrected[0] - out[0]).abs().max() > 1e-4


def test_the_batch_objects_follow_its_videos_and_rows_stay_packed(small_stm, one_thread):
    """A 3-object video leaves: K falls back to the remaining videos' widest; the rows are packed at the next
    step; an eager core computes only busy rows."""
    settings = InferenceSettings(save_freq=2)
    core = InferenceCore(Backend(small_stm), settings, slots=3)
    videos = _videos()
    for key in (0, 2, 1):                                       # 2, 3 and 1 objects
        frames, given = videos[key]
        core.start(key, frames[min(given)], given[min(given)])
    assert core.K == 3 and core.keys == [0, 2, 1] and core.prev_mask is None     # they join at the step
    out = core.step({key: videos[key][0][1] for key in core.keys})
    assert {key: p.shape[0] for key, p in out.items()} == {0: 3, 2: 4, 1: 2}
    assert core.prev_mask.shape[:2] == (3, 4)
    core.stop(2)
    assert core.K == 2 and core.keys == [0, 1]
    out = core.step({key: videos[key][0][2] for key in core.keys})
    assert {key: p.shape[0] for key, p in out.items()} == {0: 3, 1: 2}
    assert core.prev_mask.shape[:2] == (2, 3) and core.bank.rows[1].frame_ids == [0]   # video 1 moved up
    assert core.bank.key.shape[:2] == (3, 2)                    # rows kept for the slots, 2 objects wide
