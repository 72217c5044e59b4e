"""Synthetic DAVIS-format videos: textured shapes moving, turning and occluding over a panning background.

Run `python3 -m libs.dataset.synthetic --out DIR --videos N` to write a small data set (the SYNTHETIC
layout read by libs.dataset.davis.SyntheticDataset); everything is deterministic per seed.
"""
import argparse
import math
import os
import sys
import zlib
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch
import torch.nn.functional as F
import yaml

from ..errors import VOSError
from ..io.images import davis_palette, write_image, write_indexed_png
from ..io.paths import atomic_path, check_name
from ..io.video import write_video
from ..utils.constants import IMAGENET_MEAN, IMAGENET_STD

MAX_OBJECTS = 8
MIN_SIDE = 16
_ATTEMPTS = 50          # layouts tried before giving up on making every object visible in frame 0


@dataclass
class Scene:
    """A generated video with, per frame and object, the area it covers and how much of it is hidden."""

    frames: List[np.ndarray]      # T x [H, W, 3] uint8 RGB
    labels: List[np.ndarray]      # T x [H, W] uint8: 0 background, 1..K objects
    centres: np.ndarray           # [T, K, 2] object centres (x, y) in pixels
    full_area: np.ndarray         # [T, K] pixels inside the frame the object would cover alone
    occluded_area: np.ndarray     # [T, K] of those, pixels covered by an object in front of it
    depth: List[int]              # object ids from back to front


@dataclass
class _Sprite:
    """One object: a textured shape and its motion."""

    texture: np.ndarray           # [S, S, 3] float32 in 0..255
    alpha: np.ndarray             # [S, S] float32 in 0..1 (anti-aliased shape)
    centres: np.ndarray           # [T, 2] (x, y)
    angles: np.ndarray            # [T] degrees
    scales: np.ndarray            # [T]


def _smooth_noise(rng: np.random.Generator, height: int, width: int, cell: int) -> np.ndarray:
    """[H, W] float32 in 0..1: random values on a coarse grid of `cell` pixels, cubic-interpolated."""
    small = rng.random((max(2, height // cell), max(2, width // cell))).astype(np.float32)
    big = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
    return (big - big.min()) / max(float(big.max() - big.min()), 1e-6)


def _stripes(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """[H, W] float32 in 0..1: sinusoidal stripes of random direction and period."""
    theta = rng.uniform(0.0, math.pi)
    period = rng.uniform(4.0, 12.0) * max(1.0, min(height, width) / 64.0)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    return 0.5 + 0.5 * np.sin((xs * math.cos(theta) + ys * math.sin(theta)) * (2.0 * math.pi / period))


def _texture(rng: np.random.Generator, height: int, width: int, muted: bool) -> np.ndarray:
    """[H, W, 3] float32 in 0..255: two colours mixed by smooth noise or stripes, plus fine detail."""
    first = rng.uniform(0.05, 0.95, 3)
    second = rng.uniform(0.05, 0.95, 3)
    while np.abs(first - second).sum() < 0.6:
        second = rng.uniform(0.05, 0.95, 3)
    if muted:
        first, second = 0.5 * first + 0.25, 0.5 * second + 0.25
    if rng.random() < 0.5:
        pattern = _smooth_noise(rng, height, width, int(rng.integers(3, 10)))
    else:
        pattern = _stripes(rng, height, width)
    detail = _smooth_noise(rng, height, width, 2)[..., None] - 0.5  # [H, W, 1]
    mixed = first * (1.0 - pattern[..., None]) + second * pattern[..., None] + 0.2 * detail
    return (np.clip(mixed, 0.0, 1.0) * 255.0).astype(np.float32)


def _shape(rng: np.random.Generator, radius: float) -> np.ndarray:
    """[S, S] float32 alpha of a random ellipse or star-like polygon of about `radius` pixels."""
    side = 2 * int(math.ceil(radius)) + 5
    canvas = np.zeros((side, side), np.uint8)
    centre, bits = side / 2.0, 16.0  # 4 fractional bits for sub-pixel drawing
    if rng.random() < 0.5:
        axes = (int(radius * bits), int(radius * rng.uniform(0.5, 1.0) * bits))
        cv2.ellipse(canvas, (int(centre * bits), int(centre * bits)), axes, float(rng.uniform(0, 180)),
                    0, 360, 255, -1, cv2.LINE_AA, 4)
    else:
        count = int(rng.integers(5, 10))
        angles = np.linspace(0, 2 * math.pi, count, endpoint=False) + rng.uniform(-0.3, 0.3, count) * (2 * math.pi / count)
        radii = radius * rng.uniform(0.5, 1.0, count)
        points = np.stack([centre + radii * np.cos(angles), centre + radii * np.sin(angles)], axis=1)  # [N, 2]
        cv2.fillPoly(canvas, [np.rint(points * bits).astype(np.int32)], 255, cv2.LINE_AA, 4)
    return canvas.astype(np.float32) / 255.0


def _paths(rng: np.random.Generator, num_frames: int, height: int, width: int,
           radii: np.ndarray) -> np.ndarray:
    """[T, K, 2] centres: each object crosses the middle from one side to the other along a smooth
    curve (quadratic through start, middle point and end); objects 1 and 2 meet at the same frame."""
    count = len(radii)
    s = np.linspace(0.0, 1.0, num_frames) if num_frames > 1 else np.zeros(1)  # [T] video time
    middle = np.array([width / 2.0, height / 2.0])
    meet_index = max(1, int(round(rng.uniform(0.35, 0.65) * (num_frames - 1)))) if num_frames > 1 else 0
    meeting = middle + rng.uniform(-0.1, 0.1, 2) * (width, height)
    spin = rng.uniform(0, 2 * math.pi)
    centres = np.zeros((num_frames, count, 2))
    for k in range(count):
        room = np.maximum(0.0, np.array([width, height]) / 2.0 - 1.2 * radii[k])  # keeps the object inside
        angle = spin + 2 * math.pi * k / count + rng.uniform(-0.2, 0.2)
        start = middle + room * rng.uniform(0.55, 0.85) * (math.cos(angle), math.sin(angle))
        back = angle + math.pi + rng.uniform(-0.6, 0.6)
        end = middle + room * rng.uniform(0.4, 0.8) * (math.cos(back), math.sin(back))
        if k < 2 and count > 1:
            target, s_k = meeting, min(max(s[meet_index], 0.05), 0.95)
        else:
            target, s_k = middle + rng.uniform(-0.2, 0.2, 2) * (width, height), rng.uniform(0.35, 0.65)
        weights = np.stack([(s - s_k) * (s - 1) / s_k, s * (s - 1) / (s_k * (s_k - 1)),
                            s * (s - s_k) / (1 - s_k)], axis=1)  # [T, 3] Lagrange basis at 0, s_k, 1
        centres[:, k] = weights @ np.stack([start, target, end])
    return centres


def _sprites(rng: np.random.Generator, num_frames: int, height: int, width: int, count: int) -> List[_Sprite]:
    """`count` objects with shapes, textures and smooth motion (translation, rotation, scale)."""
    radii = np.maximum(3.0, rng.uniform(0.1, 0.17, count) * min(height, width))
    centres = _paths(rng, num_frames, height, width, radii)
    s = np.linspace(0.0, 1.0, num_frames) if num_frames > 1 else np.zeros(1)
    sprites = []
    for k in range(count):
        alpha = _shape(rng, radii[k])
        texture = _texture(rng, alpha.shape[0], alpha.shape[1], muted=False)
        angles = rng.uniform(0, 360) + rng.uniform(-90, 90) * s
        scales = 1.0 + rng.uniform(0.05, 0.2) * np.sin(2 * math.pi * (rng.uniform(0.3, 1.0) * s + rng.uniform(0, 1)))
        sprites.append(_Sprite(texture, alpha, centres[:, k], angles, scales))
    return sprites


def _warp(sprite: _Sprite, t: int, height: int, width: int):
    """(y0, y1, x0, x1, texture [h, w, 3], alpha [h, w]) of a sprite placed in frame t, or None if outside."""
    side = sprite.alpha.shape[0]
    (cx, cy), scale = sprite.centres[t], sprite.scales[t]
    half = side * scale * 0.75 + 2
    x0, x1 = max(0, int(math.floor(cx - half))), min(width, int(math.ceil(cx + half)))
    y0, y1 = max(0, int(math.floor(cy - half))), min(height, int(math.ceil(cy + half)))
    if x0 >= x1 or y0 >= y1:
        return None
    matrix = cv2.getRotationMatrix2D((side / 2.0, side / 2.0), float(sprite.angles[t]), float(scale))
    matrix[:, 2] += (cx - side / 2.0 - x0, cy - side / 2.0 - y0)
    box = (x1 - x0, y1 - y0)
    texture = cv2.warpAffine(sprite.texture, matrix, box, flags=cv2.INTER_LINEAR)
    alpha = cv2.warpAffine(sprite.alpha, matrix, box, flags=cv2.INTER_LINEAR)
    return y0, y1, x0, x1, texture, alpha


def _compose(background: np.ndarray, sprites: List[_Sprite], depth: List[int], t: int):
    """(frame [H, W, 3] float32, labels [H, W] uint8, full areas [K], occluded areas [K]) of frame t."""
    frame = background.copy()
    height, width = frame.shape[:2]
    labels = np.zeros((height, width), np.uint8)
    full, hidden = np.zeros(len(sprites), np.int64), np.zeros(len(sprites), np.int64)
    solids = {}
    for k in depth:  # back to front: later objects cover earlier ones
        placed = _warp(sprites[k], t, height, width)
        if placed is None:
            continue
        y0, y1, x0, x1, texture, alpha = placed
        region = frame[y0:y1, x0:x1]
        region *= 1.0 - alpha[..., None]
        region += texture * alpha[..., None]
        solid = alpha >= 0.5  # [h, w]
        labels[y0:y1, x0:x1][solid] = k + 1
        solids[k] = (y0, y1, x0, x1, solid)
        full[k] = np.count_nonzero(solid)
    for k, (y0, y1, x0, x1, solid) in solids.items():
        hidden[k] = np.count_nonzero(solid & (labels[y0:y1, x0:x1] != k + 1))
    return frame, labels, full, hidden


def _first_frame_ok(sprites: List[_Sprite], full: np.ndarray, hidden: np.ndarray) -> bool:
    """True when every object shows at least 40% of its shape in frame 0."""
    for k, sprite in enumerate(sprites):
        own = float(sprite.alpha.sum()) * float(sprite.scales[0]) ** 2
        if full[k] - hidden[k] < max(1.0, 0.4 * own):
            return False
    return True


def _render(rng: np.random.Generator, num_frames: int, height: int, width: int, count: int) -> Scene:
    """Draw objects and a panning background until frame 0 shows every object, then render all frames."""
    pad_y, pad_x = max(2, round(0.12 * height)), max(2, round(0.12 * width))
    background = 0.7 * _texture(rng, height + 2 * pad_y, width + 2 * pad_x, muted=True) \
        + 0.3 * _texture(rng, height + 2 * pad_y, width + 2 * pad_x, muted=True)  # [H + 2py, W + 2px, 3]
    start = rng.uniform(0, 1, 2) * (2 * pad_y, 2 * pad_x)
    end = np.array([2 * pad_y, 2 * pad_x]) - start
    for _ in range(_ATTEMPTS):
        sprites = _sprites(rng, num_frames, height, width, count)
        depth = [int(k) for k in rng.permutation(count)]
        _, _, full, hidden = _compose(background[:height, :width], sprites, depth, 0)
        if _first_frame_ok(sprites, full, hidden):
            break
    else:
        raise VOSError(f"cannot place {count} objects visibly in {height}x{width} frames; "
                       "use fewer objects or a larger size")
    s = np.linspace(0.0, 1.0, num_frames) if num_frames > 1 else np.zeros(1)
    frames, labels = [], []
    full_area, occluded = np.zeros((num_frames, count), np.int64), np.zeros((num_frames, count), np.int64)
    for t in range(num_frames):
        oy, ox = np.rint(start + (end - start) * s[t]).astype(int)
        frame, label, full_area[t], occluded[t] = _compose(
            background[oy:oy + height, ox:ox + width], sprites, depth, t)
        frame += rng.standard_normal(frame.shape, dtype=np.float32) * 2.0
        frames.append(np.clip(np.rint(frame), 0, 255).astype(np.uint8))
        labels.append(label)
    centres = np.stack([sp.centres for sp in sprites], axis=1)  # [T, K, 2]
    return Scene(frames, labels, centres, full_area, occluded, [k + 1 for k in depth])


def _check_arguments(num_frames: int, size: Sequence[int], num_objects: Optional[int]) -> Tuple[int, int]:
    """(H, W) after checking the generator's arguments; a VOSError names a bad one."""
    if isinstance(num_frames, bool) or not isinstance(num_frames, (int, np.integer)) or num_frames < 1:
        raise VOSError(f"number of frames must be an integer >= 1, got {num_frames!r}")
    if len(size) != 2 or any(int(s) != s or s < MIN_SIDE for s in size):
        raise VOSError(f"size must be two integers (H W) of at least {MIN_SIDE}, got {tuple(size)!r}")
    if num_objects is not None and not 1 <= int(num_objects) <= MAX_OBJECTS:
        raise VOSError(f"number of objects must be 1..{MAX_OBJECTS}, got {num_objects!r}")
    return int(size[0]), int(size[1])


def generate_scene(seed: int, num_frames: int, size: Tuple[int, int],
                   num_objects: Optional[int] = None) -> Scene:
    """A synthetic video with its occlusion statistics (see `Scene`); deterministic per `seed`."""
    height, width = _check_arguments(num_frames, size, num_objects)
    rng = np.random.default_rng(seed)
    count = int(num_objects) if num_objects is not None else int(rng.integers(1, 4))
    return _render(rng, int(num_frames), height, width, count)


def generate_video(seed: int, num_frames: int, size: Tuple[int, int],
                   num_objects: Optional[int] = None) -> Tuple[List[np.ndarray], List[np.ndarray]]:
    """(frames [H, W, 3] uint8 RGB, labels [H, W] uint8 with 0 = background and 1..K objects)."""
    scene = generate_scene(seed, num_frames, size, num_objects)
    return scene.frames, scene.labels


def video_seed(seed: int, split: str, index: int) -> int:
    """The generator seed of video `index` of `split` in a data set made with `seed`."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise VOSError(f"seed must be an integer >= 0, got {seed!r}")
    entropy = [int(seed), zlib.crc32(split.encode("utf-8")), int(index)]
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])


def write_dataset(out: str, num_videos: int, num_frames: int, size: Tuple[int, int], seed: int = 0,
                  split: str = "val", year: str = "2017", num_objects: Optional[int] = None) -> List[str]:
    """Write `num_videos` videos in the DAVIS layout under `out`; returns their names.

    Frames go to out/JPEGImages/480p/<video>/00000.jpg (JPEG quality 95), masks of every frame to
    out/Annotations/480p/<video>/00000.png (indexed, DAVIS palette); the video names are added to
    out/ImageSets/<year>/<split>.txt and out/data/db_info.yaml.
    """
    check_name(split, "split")
    check_name(str(year), "year")
    if isinstance(num_videos, bool) or not isinstance(num_videos, (int, np.integer)) or num_videos < 1:
        raise VOSError(f"number of videos must be an integer >= 1, got {num_videos!r}")
    _check_arguments(num_frames, size, num_objects)
    names = []
    for index in range(int(num_videos)):
        name = f"synth-{split}-{index:03d}"
        frames, labels = generate_video(video_seed(seed, split, index), num_frames, size, num_objects)
        _write_video_folders(out, name, frames, labels)
        names.append(name)
    _update_split_list(os.path.join(out, "ImageSets", str(year), f"{split}.txt"), names)
    _update_db_info(os.path.join(out, "data", "db_info.yaml"), names, split, str(year), int(num_frames))
    return names


def _write_video_folders(out: str, name: str, frames: List[np.ndarray], labels: List[np.ndarray]) -> None:
    """Write one video's JPEG frames and PNG masks, removing frames left by an earlier, longer run."""
    frame_dir = os.path.join(out, "JPEGImages", "480p", name)
    mask_dir = os.path.join(out, "Annotations", "480p", name)
    stems = [f"{i:05d}" for i in range(len(frames))]
    _remove_stale(frame_dir, ".jpg", stems)
    _remove_stale(mask_dir, ".png", stems)
    palette = davis_palette()
    for stem, frame, label in zip(stems, frames, labels):
        write_image(os.path.join(frame_dir, f"{stem}.jpg"), frame, quality=95)
        write_indexed_png(os.path.join(mask_dir, f"{stem}.png"), label, palette)


def _remove_stale(folder: str, ext: str, stems: List[str]) -> None:
    """Delete files `<digits><ext>` in `folder` that are not among `stems` (left by an earlier run)."""
    if not os.path.isdir(folder):
        return
    keep = set(stems)
    for entry in os.scandir(folder):
        stem, found = os.path.splitext(entry.name)
        if found == ext and stem.isdigit() and stem not in keep:
            os.remove(entry.path)


def _update_split_list(path: str, names: List[str]) -> None:
    """Add `names` to the split list at `path` (created when missing), sorted, one name a line."""
    existing = []
    if os.path.isfile(path):
        with open(path, "r", encoding="utf-8") as handle:
            existing = [line.strip() for line in handle if line.strip()]
    text = "".join(f"{n}\n" for n in sorted(set(existing) | set(names)))
    _write_text(path, text)


def _update_db_info(path: str, names: List[str], split: str, year: str, num_frames: int) -> None:
    """Add or replace the entries of `names` in data/db_info.yaml (the original code's split list)."""
    sequences = []
    if os.path.isfile(path):
        with open(path, "r", encoding="utf-8") as handle:
            info = yaml.safe_load(handle)
        if not isinstance(info, dict) or not isinstance(info.get("sequences", []), list):
            raise VOSError(f"{path} exists but is not a db_info.yaml with a 'sequences' list; remove it")
        sequences = [s for s in info.get("sequences", []) if s.get("name") not in set(names)]
    year_value = int(year) if year.isdigit() else year
    sequences += [{"name": n, "set": split, "year": year_value, "num_frames": num_frames,
                   "attributes": []} for n in names]
    sequences.sort(key=lambda s: str(s.get("name")))
    _write_text(path, yaml.safe_dump({"sequences": sequences}, sort_keys=False))


def _write_text(path: str, text: str) -> None:
    """Write `text` to `path` atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)


def write_video_file(out_path: str, seed: int = 0, num_frames: int = 30, size: Tuple[int, int] = (240, 426),
                     num_objects: Optional[int] = None, fps: float = 25.0) -> Tuple[str, str]:
    """Write a generated video as an mp4 and its first mask as `<out stem>_mask.png`; returns both paths.

    Odd sizes are rounded down to even numbers so that the decoded video matches the mask.
    """
    height, width = _check_arguments(num_frames, size, num_objects)
    even = (height - height % 2, width - width % 2)
    frames, labels = generate_video(seed, num_frames, even, num_objects)
    write_video(out_path, frames, fps)
    mask_path = os.path.splitext(out_path)[0] + "_mask.png"
    write_indexed_png(mask_path, labels[0], davis_palette())
    return out_path, mask_path


def _parser() -> argparse.ArgumentParser:
    """Command-line options of the generator."""
    parser = argparse.ArgumentParser(
        prog="python3 -m libs.dataset.synthetic",
        description="Write synthetic videos in the DAVIS 2017 layout (and optionally one mp4 for the demo).")
    parser.add_argument("--out", required=True, help="output folder (e.g. data/SYNTHETIC)")
    parser.add_argument("--videos", type=int, required=True, help="number of videos")
    parser.add_argument("--frames", type=int, default=20, help="frames per video (default 20)")
    parser.add_argument("--size", type=int, nargs=2, default=(240, 427), metavar=("H", "W"),
                        help="frame size (default 240 427)")
    parser.add_argument("--objects", type=int, default=None, help="objects per video (default: 1-3 at random)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--split", default="val", help="split name (default val)")
    parser.add_argument("--year", default="2017", help="ImageSets/<year> folder for the split list")
    parser.add_argument("--video-file", action="store_true",
                        help="also write OUT/synthetic.mp4 and OUT/synthetic_mask.png for the demo")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Command-line entry point; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        names = write_dataset(args.out, args.videos, args.frames, tuple(args.size), args.seed, args.split,
                              args.year, args.objects)
        print(f"wrote {len(names)} videos of {args.frames} frames ({args.size[0]}x{args.size[1]}) to "
              f"{args.out}: {names[0]} .. {names[-1]}")
        print(f"split list: {os.path.join(args.out, 'ImageSets', args.year, args.split + '.txt')}")
        if args.video_file:
            video, mask = write_video_file(os.path.join(args.out, "synthetic.mp4"), args.seed, args.frames,
                                           tuple(args.size), args.objects)
            print(f"video file: {video}, first-frame mask: {mask}")
    except VOSError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())


def video_tensors(seed: int, frames: int, size: Tuple[int, int], objects: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """A generated video (libs.dataset.synthetic) at the network size: normalised frames [T, 3, H, W] and
    the first frame's one-hot mask [1, K+1, H, W] (bilinear frames, nearest labels)."""
    rgb, labels = generate_video(seed, frames, size, objects)
    x = torch.from_numpy(np.stack(rgb)).permute(0, 3, 1, 2).float() / 255                  # [T, 3, H, W]
    x = (x - torch.tensor(IMAGENET_MEAN)[:, None, None]) / torch.tensor(IMAGENET_STD)[:, None, None]
    first = torch.from_numpy(labels[0]).long()                                              # [H, W]
    onehot = F.one_hot(first, int(first.max()) + 1).permute(2, 0, 1)[None].float()         # [1, K+1, H, W]
    return x, onehot
