"""LVOS (v1, v2) J&F as the official lvos-evaluation toolkit defines it (facts only, no code of it here):

- the split's meta JSON lists, per video and object, `frame_range` {start, end, frame_nums};
- an object is scored on frames start, start + 5, ... (< end), named with 8 digits ('00000005'), against
  <video>/<frame>.png of the ground truth and of the results (pixels equal to the object's id);
- per frame, J and F as DAVIS (J 1 when both masks are empty; F radius ceil(0.008 * diagonal)); the
  object's values fill an array of frame_nums entries (entries never scored stay 0);
- statistics per object: Mean and Recall (fraction > 0.5) over that array; the toolkit bins the
  [1, frame_nums] array by rows for the Decay, so its last bin is empty and Decay is NaN (empty in the
  CSV) unless the object has one frame (Decay 0);
- global: means over every object (objects named <video>_<n>, n = position in the meta JSON);
  J&F-Mean = (J-Mean + F-Mean) / 2.
"""
import json
import math
import os
from typing import Dict, List, Sequence, Tuple

import numpy as np

from ..errors import VOSError
from .metrics import BOUND_TH, boundary_f, boundary_radius, disk
from .png import read_label_png
from .report import GLOBAL_COLUMNS
from .tables import ScoreTable

STEP = 5                # the ground truth is scored every 5th frame


def load_lvos_meta(path: str) -> Dict[str, dict]:
    """The "videos" mapping of an LVOS meta JSON; VOSError naming the file when it is not one."""
    try:
        with open(path, "r", encoding="utf-8") as handle:
            videos = json.load(handle).get("videos")
    except (OSError, ValueError, AttributeError) as err:
        raise VOSError(f"cannot read the LVOS meta JSON {path}: {err}") from err
    if not isinstance(videos, dict) or not videos:
        raise VOSError(f"{path} has no \"videos\" mapping; expected the LVOS meta JSON "
                       "({\"videos\": {<video>: {\"objects\": {<id>: {\"frame_range\": ...}}}}})")
    return videos


def object_ranges(meta: Dict[str, dict], video: str) -> List[Tuple[int, int, int, int]]:
    """(object id, start, end, frame_nums) of every object of `video`, in the meta JSON's order."""
    objects = meta.get(video, {}).get("objects") if isinstance(meta.get(video), dict) else None
    if not isinstance(objects, dict) or not objects:
        raise VOSError(f"LVOS meta JSON: video {video!r} is missing or has no objects")
    ranges = []
    for key, info in objects.items():
        try:
            span = info["frame_range"]
            ranges.append((int(key), int(span["start"]), int(span["end"]), int(span["frame_nums"])))
        except (KeyError, TypeError, ValueError) as err:
            raise VOSError(f"LVOS meta JSON: video {video!r} object {key!r} needs a numeric id and "
                           f"frame_range {{start, end, frame_nums}} ({err})") from err
    return ranges


def object_values(gt_dir: str, pred_dir: str, span: Tuple[int, int, int, int]) -> Tuple[np.ndarray, np.ndarray]:
    """J and F arrays [frame_nums] of one object (unscored entries 0)."""
    obj, start, end, count = span
    frames = [f"{t:08d}" for t in range(start, end, STEP)]
    if len(frames) > count:
        raise VOSError(f"LVOS: object {obj} of {gt_dir} spans {len(frames)} scored frames but frame_nums is {count}")
    j, f = np.zeros(count), np.zeros(count)
    for index, frame in enumerate(frames):
        gt = _read(os.path.join(gt_dir, frame + ".png")) == obj
        pred = _read(os.path.join(pred_dir, frame + ".png")) == obj
        if gt.shape != pred.shape:
            raise VOSError(f"LVOS: {pred_dir}/{frame}.png is not the size of its ground truth")
        union = np.count_nonzero(gt | pred)
        j[index] = np.count_nonzero(gt & pred) / union if union else 1.0
        f[index] = boundary_f(gt, pred, disk(boundary_radius(*gt.shape, BOUND_TH)))
    return j, f


def _read(path: str) -> np.ndarray:
    """A label map [H, W]; VOSError naming a missing file."""
    if not os.path.isfile(path):
        raise VOSError(f"LVOS: {path} is missing (the toolkit reads every 5th frame of each object's range)")
    return read_label_png(path)


def lvos_statistics(values: np.ndarray) -> Tuple[float, float, float]:
    """(Mean, Recall, Decay) of one object's [N] values as the toolkit computes them on a [1, N] array."""
    mean = float(np.mean(values)) if values.size else math.nan
    recall = float(np.mean(values > 0.5)) if values.size else math.nan
    edges = (np.round(np.linspace(1, len(values), 5) + 1e-10) - 1).astype(np.int64) % 256
    first = edges[0] == 0 and (edges[1] + 1) % 256 > 0        # row slices of a one-row array: all or nothing
    last = edges[3] == 0 and (edges[4] + 1) % 256 > 0
    return mean, recall, (mean if first else math.nan) - (mean if last else math.nan)


def score_lvos(meta_path: str, ground_truth: Dict[str, str], results: str, name: str,
               videos: Sequence[str]) -> ScoreTable:
    """LVOS J&F of `videos` (ground_truth: video -> its Annotations folder; results/<video>/<frame>.png)."""
    meta = load_lvos_meta(meta_path)
    table = ScoreTable(name, "J&F as the LVOS toolkit scores it", GLOBAL_COLUMNS, ["Sequence", "J-Mean", "F-Mean"],
                       "J&F-Mean")
    for video in sorted(videos):
        for n, span in enumerate(object_ranges(meta, video)):
            j, f = object_values(ground_truth[video], os.path.join(results, video), span)
            (jm, jr, jd), (fm, fr, fd) = lvos_statistics(j), lvos_statistics(f)
            table.rows.append({"Sequence": f"{video}_{n + 1}", "J-Mean": jm, "J-Recall": jr, "J-Decay": jd,
                               "F-Mean": fm, "F-Recall": fr, "F-Decay": fd})
    row = {key: float(np.mean([r[key] for r in table.rows])) for key in GLOBAL_COLUMNS[1:]}
    row["J&F-Mean"] = (row["J-Mean"] + row["F-Mean"]) / 2
    table.global_row = row
    return table
