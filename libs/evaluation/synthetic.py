"""Generated DAVIS-like data (moving ellipses and imperfect predictions) for tests and benchmarks."""
import os
from typing import List, Optional, Sequence, Tuple

import cv2
import numpy as np
from PIL import Image


def label_palette() -> List[int]:
    """Flat 256-colour palette (0 black, 255 white, others from bits of the index)."""
    palette = []
    for index in range(256):
        bits = [(index >> k) & 1 for k in range(8)]
        r = (bits[0] << 7) | (bits[3] << 6) | (bits[6] << 5)
        g = (bits[1] << 7) | (bits[4] << 6) | (bits[7] << 5)
        b = (bits[2] << 7) | (bits[5] << 6)
        palette += [r, g, b]
    palette[-3:] = [255, 255, 255]
    return palette


def save_label_png(path: str, labels: np.ndarray, palette: Optional[List[int]] = None) -> None:
    """Write a label map [H, W] (uint8) as an indexed PNG with a full palette."""
    image = Image.fromarray(np.asarray(labels, dtype=np.uint8), mode="P")
    image.putpalette(palette or label_palette())
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    image.save(path)


def ellipse_sequence(rng: np.random.Generator, n_frames: int, size: Tuple[int, int],
                     n_objects: int) -> List[Tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per object: centres [T, 2] (x, y), half axes [T, 2] and angles [T] of a drifting ellipse."""
    height, width = size
    tracks = []
    for _ in range(n_objects):
        start = rng.uniform([0.2 * width, 0.2 * height], [0.8 * width, 0.8 * height])
        velocity = rng.uniform(-1.0, 1.0, 2) * 0.004 * width
        centres = start + velocity * np.arange(n_frames)[:, None]  # [T, 2]
        axes = rng.uniform(0.06, 0.2, 2) * np.array([width, height])
        wobble = 1.0 + 0.1 * np.sin(np.arange(n_frames)[:, None] / 7.0 + rng.uniform(0, 6, 2))
        angles = rng.uniform(0, 180) + np.arange(n_frames) * rng.uniform(-1, 1)
        tracks.append((centres, axes * wobble, angles))
    return tracks


def draw_labels(size: Tuple[int, int], tracks: Sequence, frame: int,
                jitter: Optional[np.random.Generator] = None) -> np.ndarray:
    """Label map [H, W] of frame `frame`: object k+1 drawn over the earlier ones; optional noise."""
    labels = np.zeros(size, dtype=np.uint8)
    for index, (centres, axes, angles) in enumerate(tracks):
        centre, axis, angle = centres[frame].copy(), axes[frame].copy(), angles[frame]
        if jitter is not None:
            if jitter.random() < 0.05:
                continue  # the prediction loses the object in this frame
            centre += jitter.normal(0.0, 0.012 * size[1], 2)
            axis *= jitter.uniform(0.85, 1.15, 2)
        cv2.ellipse(labels, (int(centre[0]), int(centre[1])), (max(int(axis[0]), 1), max(int(axis[1]), 1)),
                    float(angle), 0.0, 360.0, index + 1, thickness=-1)
    return labels


def write_davis_like(davis_root: str, results_root: str, n_sequences: int = 3, n_frames: int = 8,
                     size: Tuple[int, int] = (64, 96), objects: Tuple[int, int] = (2, 3),
                     seed: int = 0, set_name: str = "val", year: int = 2017) -> List[str]:
    """Write GT (Annotations/480p, ImageSets/<year>/<set>.txt) and predictions; the sequence names."""
    rng = np.random.default_rng(seed)
    names = [f"seq{index:03d}" for index in range(n_sequences)]
    for name in names:
        tracks = ellipse_sequence(rng, n_frames, size, int(rng.integers(objects[0], objects[1] + 1)))
        for frame in range(n_frames):
            gt = draw_labels(size, tracks, frame)
            save_label_png(os.path.join(davis_root, "Annotations", "480p", name, f"{frame:05d}.png"), gt)
            pred = gt if frame == 0 else draw_labels(size, tracks, frame, jitter=rng)
            save_label_png(os.path.join(results_root, name, f"{frame:05d}.png"), pred)
    set_dir = os.path.join(davis_root, "ImageSets", str(year))
    os.makedirs(set_dir, exist_ok=True)
    with open(os.path.join(set_dir, f"{set_name}.txt"), "w", encoding="utf-8") as f:
        f.write("".join(name + "\n" for name in names))
    return names
