"""Builders of small DAVIS folders for the evaluation tests."""
import os
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from libs.evaluation.synthetic import save_label_png


def square_frame(shape: Tuple[int, int], boxes: Dict[int, Tuple[int, int, int]]) -> np.ndarray:
    """Label map [H, W] with a square per object id: {id: (top, left, side)}."""
    frame = np.zeros(shape, dtype=np.uint8)
    for object_id, (top, left, side) in boxes.items():
        frame[top:top + side, left:left + side] = object_id
    return frame


def write_davis(root: str, sequences: Dict[str, Tuple[List[np.ndarray], List[Optional[np.ndarray]]]],
                set_name: str = "val", year: int = 2017, listed: Optional[Sequence[str]] = None) -> Tuple[str, str]:
    """Write GT under root/davis and predictions under root/results (None: frame not written);
    returns (davis_path, results_path)."""
    davis, results = os.path.join(root, "davis"), os.path.join(root, "results")
    for name, (gts, preds) in sequences.items():
        for index, gt in enumerate(gts):
            save_label_png(os.path.join(davis, "Annotations", "480p", name, f"{index:05d}.png"), gt)
        for index, pred in enumerate(preds):
            if pred is not None:
                save_label_png(os.path.join(results, name, f"{index:05d}.png"), pred)
    os.makedirs(os.path.join(davis, "ImageSets", str(year)), exist_ok=True)
    with open(os.path.join(davis, "ImageSets", str(year), f"{set_name}.txt"), "w", encoding="utf-8") as f:
        f.write("".join(n + "\n" for n in (listed if listed is not None else sequences)))
    os.makedirs(results, exist_ok=True)
    return davis, results
