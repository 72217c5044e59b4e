"""test.py under torchrun: share a set's videos out among ranks (balanced by frame count), mark each
finished video on disk, and after a restart of the worker group skip the videos already marked.

A video's marker is the file `.<results folder name>-done/<video>` beside the results folder (e.g.
output/.DAVIS17-done/bear for output/DAVIS17/bear/), written atomically once its last mask is written
(`mark_done`); the result folders themselves hold only masks. Markers are honoured only by a group that torchrun restarted
(TORCHELASTIC_RESTART_COUNT > 0): the first attempt removes the markers of its share, so a new run never
skips a video on the word of an earlier run.
"""
import copy
import json
import os
from typing import Dict, List, Sequence, Tuple

from ..io.paths import atomic_path



def shard_videos(frame_counts: Sequence[int], world: int) -> List[List[int]]:
    """Indices of the videos each of `world` ranks runs: longest video first to the least-loaded rank
    (ties: the lower rank), so the frame totals are close; each list ascending. Deterministic."""
    if world < 1:
        raise ValueError(f"world size must be at least 1, got {world}")
    loads = [0] * world
    shares: List[List[int]] = [[] for _ in range(world)]
    for index in sorted(range(len(frame_counts)), key=lambda i: (-frame_counts[i], i)):
        rank = min(range(world), key=lambda r: (loads[r], r))
        shares[rank].append(index)
        loads[rank] += frame_counts[index]
    return [sorted(share) for share in shares]


def restart_count(environ: Dict[str, str]) -> int:
    """How often torchrun restarted this worker group (0 on the first attempt or without torchrun)."""
    return int(environ.get("TORCHELASTIC_RESTART_COUNT", "0") or "0")


def marker_path(videos_root: str, name: str) -> str:
    """Where the completion marker of video `name` lives: beside `videos_root`, not inside it."""
    parent, folder = os.path.split(os.path.abspath(videos_root))
    return os.path.join(parent, f".{folder}-done", name)


def mark_done(videos_root: str, name: str) -> None:
    """Record atomically that every mask of video `name` is written (call after its last frame)."""
    path = marker_path(videos_root, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump({"video": name}, handle)


def is_done(videos_root: str, name: str) -> bool:
    """True when video `name` has its completion marker."""
    return os.path.isfile(marker_path(videos_root, name))


def clear_markers(videos_root: str, names: Sequence[str]) -> None:
    """Remove the markers of `names` (an earlier run's), so that they are segmented again."""
    for name in names:
        if is_done(videos_root, name):
            os.remove(marker_path(videos_root, name))


def rank_share(dataset, rank: int, world: int, videos_root: str, restarts: int) -> Tuple[object, List[str]]:
    """(a copy of `dataset` holding only the videos rank `rank` still has to run, names of its share
    skipped because a restarted group finds them marked). The first attempt clears its share's markers."""
    counts = [len(v) for v in dataset.videos]
    mine = [dataset.videos[i] for i in shard_videos(counts, world)[rank]]
    names = [v.name for v in mine]
    if restarts == 0:
        clear_markers(videos_root, names)
        skipped: List[str] = []
    else:
        skipped = [n for n in names if is_done(videos_root, n)]
    share = copy.copy(dataset)
    share.videos = [v for v in mine if v.name not in skipped]
    return share, skipped


def finished_videos(dataset, videos_root: str) -> List[str]:
    """Names of the set's videos that have a completion marker, in the set's order."""
    return [v.name for v in dataset.videos if is_done(videos_root, v.name)]


def merge_failures(parts: Sequence[Dict[str, str]], done: Sequence[str]) -> Dict[str, str]:
    """The failures every rank reported, without videos that a later attempt finished."""
    merged: Dict[str, str] = {}
    for part in parts:
        merged.update({name: why for name, why in part.items() if name not in done})
    return merged



def gather_reports(group, done: Sequence[str], failed: Dict[str, str]) -> List[Tuple[List[str], Dict[str, str]]]:
    """(videos done, failures) of every rank, on every rank; also waits until every rank has finished."""
    import torch.distributed as dist

    parts: List[Tuple[List[str], Dict[str, str]]] = [([], {}) for _ in range(dist.get_world_size(group))]
    dist.all_gather_object(parts, (list(done), dict(failed)), group=group)
    return parts


def unseen_results(parts: Sequence[Tuple[List[str], Dict[str, str]]], videos_root: str) -> List[str]:
    """Videos a rank reported done whose marker this rank cannot see (output_dir not shared by the nodes)."""
    return [name for done, _ in parts for name in done if not is_done(videos_root, name)]
