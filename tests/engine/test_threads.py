"""Nothing process-wide changes per frame: sessions in two threads and a batched set in a third, sharing
one backend, give each video the masks it gets one at a time."""
import threading

import numpy as np
import torch

from libs.dataset.synthetic import generate_video
from libs.inference import InferenceCore, InferenceSettings
from libs.inference.backend import Backend
from libs.inference.frames import Letterbox, ObjectTable
from libs.inference.scheduler import Job, run_jobs
from libs.inference.session import VideoSession
from libs.runner.run import job_frames
from libs.runner.writer import Output

SIZE = (32, 64)
SETTINGS = InferenceSettings(save_freq=2, loop=1, correction_rate=20.0)     # the plain path, correcting
VIDEOS = [generate_video(seed, 5, SIZE, objects) for seed, objects in ((0, 2), (1, 1), (2, 3), (3, 2))]


def _session(backend, i):
    """Labels of every frame of video i, propagated by a session of its own."""
    frames, labels = VIDEOS[i]
    session = VideoSession(frames, [f"{t:05d}" for t in range(len(frames))], 25.0, backend, SETTINGS, SIZE)
    session.add_mask(0, labels[0])
    return dict(session.propagate())


def _batched(backend, videos):
    """Labels of every frame of `videos`, segmented together by a core of two slots."""
    outputs, jobs = {}, []
    for i in videos:
        frames, labels = VIDEOS[i]
        outputs[i] = Output(str(i), str, Letterbox(SIZE, SIZE), ObjectTable(), {0: labels[0]})
        jobs.append(Job(i, job_frames(frames, outputs[i], torch.device("cpu"))))
    found = {i: {} for i in videos}
    for event in run_jobs(InferenceCore(backend, SETTINGS, slots=2), jobs, SETTINGS.align):
        if event.kind == "frame":
            out = outputs[event.job.key]
            found[event.job.key][event.t] = out.objects.to_ids(out.letterbox.labels(event.probs.numpy()))
    return found


def test_two_sessions_in_two_threads_and_a_batched_set_at_once_give_the_one_at_a_time_masks(small_stm, one_thread):
    backend = Backend(small_stm)
    alone = {i: _session(backend, i) for i in range(4)}
    results = {}
    threads = [threading.Thread(target=lambda i=i: results.__setitem__(i, _session(backend, i))) for i in (0, 1)]
    threads.append(threading.Thread(target=lambda: results.update(_batched(backend, (2, 3)))))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert sorted(results) == [0, 1, 2, 3]
    for i in (0, 1):                                   # the same computation: the same masks, exactly
        assert all(np.array_equal(results[i][t], alone[i][t]) for t in range(5))
    for i in (2, 3):                                   # batched: the same up to rounding (near-ties may flip)
        agree = np.mean([np.mean(results[i][t] == alone[i][t]) for t in range(1, 5)])
        assert agree >= 0.999 and np.array_equal(results[i][0], VIDEOS[i][1][0])
    assert all(p.requires_grad for p in small_stm.parameters())      # the shared model was never frozen
