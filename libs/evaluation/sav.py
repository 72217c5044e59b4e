"""SA-V val/test: per-object result PNGs and J&F as the official SA-V evaluator (sam2 `sav_dataset/`)
defines them (facts only, no code of it here):

- ground truth and predictions are laid out <root>/<video>/<object>/<frame>.png, one binary mask per
  object and frame (any non-zero pixel is the object); the frames of an object are the sorted names of
  its ground-truth folder (6 fps) without the first and the last;
- an object is scored from the first of those frames where its ground truth or its prediction is not
  empty; frames before that are not counted;
- J = |G & P| / |G | P| (1 when both are empty); F as DAVIS: 1-px boundaries matched within a disk of
  radius ceil(0.008 * image diagonal), both boundaries empty -> 1, one empty -> 0;
- an object's J and F are the means over its frames; the global J and F are the means over every object
  of every video, J&F their mean (the evaluator prints them x100; here they stay in 0..1);
- an object whose ground truth is empty in every scored frame makes the evaluator fail (an error here).
"""
import os
from typing import Dict, List, Sequence, Tuple

import numpy as np

from ..errors import VOSError
from .metrics import BOUND_TH, boundary_f, boundary_radius, disk
from .png import read_label_png
from .tables import ScoreTable
from ..io import write_indexed_png
from ..io.paths import natural_key

BINARY_PALETTE = [0, 0, 0, 255, 255, 255]     # exported object masks: 0 black, 1 white


def object_folders(video_dir: str) -> List[str]:
    """The object folders ('000', '001', ...) of one video, sorted; object i gets label i + 1."""
    if not os.path.isdir(video_dir):
        raise VOSError(f"SA-V: no annotation folder {video_dir}")
    names = sorted(e.name for e in os.scandir(video_dir) if e.is_dir() and not e.name.startswith("."))
    if not names:
        raise VOSError(f"SA-V: {video_dir} has no object folder (expected <video>/<object>/<frame>.png)")
    if len(names) > 254:
        raise VOSError(f"SA-V: {video_dir} has {len(names)} objects; at most 254 fit in a label map")
    return names


def object_frames(object_dir: str) -> List[str]:
    """Stems of an object's annotation PNGs, sorted."""
    return sorted((f[:-4] for f in os.listdir(object_dir) if f.endswith(".png") and not f.startswith(".")),
                  key=natural_key)


def binary(path: str) -> np.ndarray:
    """[H, W] bool: the non-zero pixels of a mask PNG."""
    labels = read_label_png(path)
    if labels.ndim != 2:
        raise VOSError(f"{path} is a colour image; SA-V masks are one-channel PNGs (0 = background)")
    return labels > 0


def export_objects(label_dir: str, gt_video_dir: str, out_video_dir: str) -> int:
    """Write <out_video_dir>/<object>/<frame>.png (0/1) for every annotated frame of every object from
    the label maps in `label_dir` (object i = label i + 1); returns the number of PNGs written."""
    count = 0
    for index, obj in enumerate(object_folders(gt_video_dir)):
        for frame in object_frames(os.path.join(gt_video_dir, obj)):
            path = os.path.join(label_dir, frame + ".png")
            if not os.path.isfile(path):
                raise VOSError(f"SA-V: no result {path} for annotated frame {frame} (every 24 fps frame is "
                               "segmented; was the video finished?)")
            mask = (read_label_png(path) == index + 1).astype(np.uint8)      # [H, W] 0/1
            write_indexed_png(os.path.join(out_video_dir, obj, frame + ".png"), mask, BINARY_PALETTE)
            count += 1
    return count


def score_object(gt_dir: str, pred_dir: str, where: str) -> Tuple[float, float]:
    """(J, F) of one object: means over its scored frames from its first appearance."""
    j_scores, f_scores, seen, gt_seen = [], [], False, False
    for frame in object_frames(gt_dir)[1:-1]:
        pred_path = os.path.join(pred_dir, frame + ".png")
        if not os.path.isfile(pred_path):
            raise VOSError(f"SA-V: prediction {pred_path} is missing ({where})")
        gt, pred = binary(os.path.join(gt_dir, frame + ".png")), binary(pred_path)
        if gt.shape != pred.shape:
            raise VOSError(f"SA-V: {pred_path} is {pred.shape[1]}x{pred.shape[0]}, its ground truth "
                           f"{gt.shape[1]}x{gt.shape[0]}")
        gt_seen = gt_seen or bool(gt.any())
        seen = seen or gt_seen or bool(pred.any())
        if not seen:
            continue
        union = np.count_nonzero(gt | pred)
        j_scores.append(np.count_nonzero(gt & pred) / union if union else 1.0)
        f_scores.append(boundary_f(gt, pred, disk(boundary_radius(*gt.shape, BOUND_TH))))
    if not gt_seen:
        raise VOSError(f"SA-V: {where} has no ground-truth pixel in any scored frame (the official "
                       "evaluator fails on such an object too)")
    return float(np.mean(j_scores)), float(np.mean(f_scores))


def score_sav(ground_truth: Dict[str, str], pred_root: str, name: str, videos: Sequence[str]) -> ScoreTable:
    """J&F of `videos`: ground_truth maps a video to its Annotations_6fps/<video> folder, predictions are
    pred_root/<video>/<object>/<frame>.png."""
    table = ScoreTable(name, "J&F as the SA-V evaluator scores it", ["J&F-Mean", "J-Mean", "F-Mean"],
                       ["Sequence", "J-Mean", "F-Mean"], "J&F-Mean")
    for video in sorted(videos):
        for obj in object_folders(ground_truth[video]):
            j, f = score_object(os.path.join(ground_truth[video], obj), os.path.join(pred_root, video, obj),
                                f"video {video!r} object {obj}")
            table.rows.append({"Sequence": f"{video}_{obj}", "J-Mean": j, "F-Mean": f})
    j_mean = float(np.mean([r["J-Mean"] for r in table.rows]))
    f_mean = float(np.mean([r["F-Mean"] for r in table.rows]))
    table.global_row = {"J&F-Mean": (j_mean + f_mean) / 2, "J-Mean": j_mean, "F-Mean": f_mean}
    return table
