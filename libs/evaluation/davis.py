"""DAVIS 2016/2017 semi-supervised evaluation with the official toolkit's numbers, in parallel.

Facts reproduced from the official davis2017-evaluation package:
- sequences come from ROOT/ImageSets/<year>/<set>.txt (duplicates once, in first-seen order);
- the frames are the sorted GT PNGs of ROOT/Annotations/480p/<seq> (or of any folder per sequence
  passed as `ground_truth`, e.g. a custom data set's annotations); the first and the last are
  not scored;
- 2017: GT label 255 (void) counts as background and is NOT excluded from J or F in the
  semi-supervised task; the object count is the largest id of the first GT frame (ids above it in
  later frames are ignored, ids missing from the prediction score as empty masks);
- 2016 (the single-object benchmark, as its toolkit's single-object mode): one object per
  sequence, every non-zero GT or predicted pixel is foreground (so 0/255 DAVIS 2016 masks and
  0/1 predictions both work);
- a predicted id above the object count is an error (the toolkit silently exits there).
"""
import ctypes
import os
import sys
import time
from dataclasses import dataclass
from multiprocessing import get_context
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import VOSError
from .metrics import BOUND_TH, boundary_radius, disk, frame_scores
from .png import read_label_png
from .report import DavisResults, SequenceScores
from ..io.paths import natural_key
from ..utils.constants import VOID_LABEL
from ..utils.device import resolve_device_kind

RESOLUTION = "480p"


@dataclass(frozen=True)
class SequenceTask:
    """Everything a worker needs to score one sequence."""

    name: str
    gt_dir: str
    result_dir: str
    frames: Tuple[str, ...]   # stems of all GT frames, sorted; frames[1:-1] are scored
    year: int
    bound_th: float


def evaluate_davis(davis_path: str, results_path: str, set_name: str = "val", year: int = 2017,
                   sequences: Optional[List[str]] = None, workers: int = 1,
                   device: str = "cpu", bound_th: float = BOUND_TH,
                   ground_truth: Optional[Dict[str, str]] = None) -> DavisResults:
    """Score results_path/<seq>/<frame>.png against DAVIS; VOSError for every input problem.

    set_name: ImageSets/<year>/<set_name>.txt lists the sequences (unless `sequences` is given);
    ground_truth: sequence name -> folder of its GT PNGs, for any data set layout (then `davis_path`,
    `sequences` and the image set are not used); by default davis_path/Annotations/480p/<seq>;
    workers > 1 scores sequences in that many processes (spawned: call it under
    `if __name__ == "__main__"`); device 'cuda' / 'auto' scores with torch on a GPU.
    The result holds per-frame J/F (`.sequences`), `.per_object` rows and `.global_row`.
    Side effect: `keep_freed_memory` tunes this process's allocator (see there).
    """
    start = time.perf_counter()
    if year not in (2016, 2017):
        raise VOSError(f"--year must be 2016 or 2017, got {year}")
    if workers < 1:
        raise VOSError(f"--workers must be at least 1, got {workers}")
    if ground_truth is None:
        names = sequences if sequences else read_image_set(davis_path, set_name, year)
        ground_truth = {name: os.path.join(davis_path, "Annotations", RESOLUTION, name) for name in names}
    tasks = build_tasks(ground_truth, results_path, year, bound_th)
    keep_freed_memory()
    if resolve_device_kind(device) == "cuda":
        from .metrics_torch import evaluate_sequence_torch
        scores = [evaluate_sequence_torch(task) for task in tasks]
    elif workers == 1 or len(tasks) == 1:
        scores = [evaluate_sequence(task) for task in tasks]
    else:
        scores = _run_pool(tasks, workers)
    return DavisResults(scores, set_name=set_name, year=year, seconds=time.perf_counter() - start)


def read_image_set(davis_path: str, set_name: str, year: int) -> List[str]:
    """Sequence names of ImageSets/<year>/<set>.txt, blank lines skipped, duplicates once."""
    if not os.path.isdir(davis_path):
        raise VOSError(f"--davis_path {davis_path} is not a folder; point it at the DAVIS root "
                       "(the folder holding JPEGImages, Annotations and ImageSets)")
    set_dir = os.path.join(davis_path, "ImageSets", str(year))
    path = os.path.join(set_dir, f"{set_name}.txt")
    if not os.path.isfile(path):
        found = sorted(f[:-4] for f in os.listdir(set_dir) if f.endswith(".txt")) if os.path.isdir(set_dir) else []
        raise VOSError(f"no sequence list {path}; sets available for {year}: {', '.join(found) or 'none'}")
    with open(path, "r", encoding="utf-8") as f:
        names = [line.strip() for line in f]
    names = list(dict.fromkeys(n for n in names if n))
    if not names:
        raise VOSError(f"{path} lists no sequence")
    return names


def build_tasks(ground_truth: Dict[str, str], results_path: str, year: int,
                bound_th: float) -> List[SequenceTask]:
    """Check that GT and results exist for every scored frame, then describe one task per sequence
    (`ground_truth`: sequence name -> folder of its GT PNGs)."""
    names = list(ground_truth)
    gt_frames = {name: _gt_frames(gt_dir, name) for name, gt_dir in ground_truth.items()}
    if not os.path.isdir(results_path):
        raise VOSError(f"--results_path {results_path} is not a folder")
    if not any(os.path.isdir(os.path.join(results_path, n)) for n in names):
        shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
        raise VOSError(f"--results_path {results_path} holds none of the {len(names)} sequences to "
                       f"evaluate ({shown}); it must contain one folder of PNGs per sequence")
    tasks = []
    for name, gt_dir in ground_truth.items():
        result_dir = os.path.join(results_path, name)
        _check_results_present(name, result_dir, gt_frames[name][1:-1])
        tasks.append(SequenceTask(name, gt_dir, result_dir, tuple(gt_frames[name]), year, bound_th))
    return tasks


def _gt_frames(gt_dir: str, name: str) -> List[str]:
    """Sorted GT frame stems of a sequence; VOSError if absent or shorter than 3 frames."""
    frames = list_pngs(gt_dir)
    if frames is None:
        raise VOSError(f"no ground truth for sequence {name!r}: {gt_dir} is not a folder")
    if len(frames) < 3:
        raise VOSError(f"sequence {name!r} has {len(frames)} annotated frames in {gt_dir}; the "
                       "evaluation skips the first and the last, so it needs at least 3")
    return frames


def list_pngs(folder: str) -> Optional[List[str]]:
    """Stems of the *.png files of a folder (hidden files ignored), natural-sorted as the readers sort
    frames ('2' before '10'); None if no folder."""
    if not os.path.isdir(folder):
        return None
    return sorted((f[:-4] for f in os.listdir(folder) if f.endswith(".png") and not f.startswith(".")),
                  key=natural_key)


def _check_results_present(name: str, result_dir: str, scored: Sequence[str]) -> None:
    """VOSError naming the sequence and the first scored frame without a result PNG."""
    if not os.path.isdir(result_dir):
        raise VOSError(f"results for sequence {name!r} are missing: {result_dir} is not a folder")
    have = set(list_pngs(result_dir) or [])
    missing = [frame for frame in scored if frame not in have]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise VOSError(f"sequence {name!r}: result frame {missing[0]}.png is missing from "
                       f"{result_dir}{more}; every frame but the first and last is scored")


def evaluate_sequence(task: SequenceTask) -> SequenceScores:
    """Per-object, per-frame J and F [K, T] of one sequence (CPU, frame by frame)."""
    first = read_gt(task, task.frames[0])
    n_objects = count_objects(first, task.year)
    height, width = first.shape
    kernel = disk(boundary_radius(height, width, task.bound_th))
    scored = task.frames[1:-1]
    j_scores = np.zeros((n_objects, len(scored)))
    f_scores = np.zeros((n_objects, len(scored)))
    for index, frame in enumerate(scored):
        gt, pred = load_pair(task, frame, first.shape, n_objects)
        j_scores[:, index], f_scores[:, index] = frame_scores(gt, pred, n_objects, kernel)
    return SequenceScores(task.name, list(scored), j_scores, f_scores)


def read_gt(task: SequenceTask, frame: str) -> np.ndarray:
    """GT label map [H, W] of a frame: void (255) becomes background; 2016 merges all ids into 1."""
    path = os.path.join(task.gt_dir, frame + ".png")
    labels = _as_label_map(read_label_png(path), path)
    if task.year == 2016:
        return (labels != 0).view(np.uint8)
    if labels.dtype == bool:
        return labels.view(np.uint8)
    void = labels == VOID_LABEL
    return np.where(void, 0, labels).astype(labels.dtype, copy=False) if void.any() else labels


def count_objects(first_gt: np.ndarray, year: int) -> int:
    """Number of objects: 2017, the largest id of the first GT frame (void already removed);
    2016, always one."""
    return int(first_gt.max(initial=0)) if year == 2017 else 1


def load_pair(task: SequenceTask, frame: str, shape: Tuple[int, int],
              n_objects: int) -> Tuple[np.ndarray, np.ndarray]:
    """GT and predicted label maps [H, W] of a scored frame, with size and id checks."""
    gt = read_gt(task, frame)
    if gt.shape != shape:
        raise VOSError(f"sequence {task.name!r}: ground-truth frame {frame}.png is {_size(gt.shape)} "
                       f"but the first frame is {_size(shape)}")
    path = os.path.join(task.result_dir, frame + ".png")
    pred = _as_label_map(read_label_png(path), path)
    if pred.shape != shape:
        raise VOSError(f"sequence {task.name!r} frame {frame}: prediction {path} is {_size(pred.shape)} "
                       f"but the ground truth is {_size(shape)}; write results at the annotation size")
    if task.year == 2016:
        return gt, (pred != 0).view(np.uint8)
    top = int(pred.max(initial=0))
    if top > n_objects:
        raise VOSError(f"sequence {task.name!r} frame {frame}: prediction {path} has object id {top} "
                       f"but the ground truth has {n_objects} object(s) (ids 1..{n_objects} of the "
                       "first frame); 0 is background, no other ids are allowed")
    return gt, pred


def _as_label_map(array: np.ndarray, path: str) -> np.ndarray:
    """The 2-D label array of a PNG; VOSError for colour images."""
    if array.ndim != 2:
        raise VOSError(f"{path} is a colour image (shape {array.shape}); masks must be indexed "
                       "(palette) or greyscale PNGs holding object ids")
    return array


def _size(shape: Tuple[int, ...]) -> str:
    """'WxH' of an array shape."""
    return f"{shape[1]}x{shape[0]}"


def _run_pool(tasks: List[SequenceTask], workers: int) -> List[SequenceScores]:
    """Score sequences in `workers` processes, results in task order."""
    context = get_context("spawn")  # safe even when the caller has threads (torch, CUDA)
    with context.Pool(min(workers, len(tasks)), initializer=_init_worker) as pool:
        return list(pool.imap(evaluate_sequence, tasks, chunksize=1))


def _init_worker() -> None:
    """One OpenCV thread per worker process (parallelism comes from the processes)."""
    import cv2
    cv2.setNumThreads(1)
    keep_freed_memory()


def keep_freed_memory() -> None:
    """Ask glibc's malloc to reuse freed memory instead of returning it to the system.

    Every frame allocates and frees arrays of about 0.4 MB (a 480p label map); by default glibc
    often maps fresh pages for them, about 100 page faults per array, which doubled the time per
    frame. Blocks up to 16 MiB now come from the heap, and up to 64 MiB of free heap is kept.
    This lasts for the process (it is harmless for the rest of it); no-op off glibc.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 16 << 20)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, 64 << 20)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):
        return
