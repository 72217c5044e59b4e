"""Tiny generated sets in the MOSE, LVOS and SA-V layouts (moving shapes from libs.dataset.synthetic), so
that their readers, test.py and the scorers run offline:

    python3 -m libs.dataset.benchmark_sets --out data --layout SAV --videos 2 --frames 9
"""
import argparse
import json
import os
from typing import List, Optional, Sequence, Tuple

import numpy as np

from .synthetic import generate_video, video_seed
from ..io import davis_palette, write_image, write_indexed_png

LAYOUTS = ("MOSE", "MOSEv2", "LVOS", "LVOSv2", "SAV")
_FOLDERS = {"MOSE": "MOSE", "MOSEv2": "MOSEv2", "LVOS": "LVOS", "LVOSv2": "LVOSv2", "SAV": "SA-V"}


def _videos(num: int, frames: int, size: Tuple[int, int], seed: int, split: str):
    """(name, frames, labels) of `num` generated videos with two objects each."""
    for i in range(num):
        rgb, labels = generate_video(video_seed(seed, split, i), frames, size, num_objects=2)
        yield f"{split}-{i:03d}", rgb, labels


def write_mose(root: str, version: int = 1, num: int = 2, frames: int = 6, size=(48, 80), seed: int = 0,
               split: str = "valid", full_gt: bool = False) -> List[str]:
    """ROOT/MOSE(v2)/<split>/JPEGImages|Annotations: frame 0's mask only, or every frame (`full_gt`)."""
    base = os.path.join(root, "MOSE" if version == 1 else "MOSEv2", split)
    names = []
    for name, rgb, labels in _videos(num, frames, size, seed, split):
        for t, (image, label) in enumerate(zip(rgb, labels)):
            write_image(os.path.join(base, "JPEGImages", name, f"{t:05d}.jpg"), image)
            if full_gt or t == 0:
                write_indexed_png(os.path.join(base, "Annotations", name, f"{t:05d}.png"), label, davis_palette())
        names.append(name)
    return names


def write_lvos(root: str, version: int = 1, num: int = 2, frames: int = 16, size=(48, 80), seed: int = 0,
               split: str = "valid", late: int = 5) -> List[str]:
    """ROOT/LVOS(v2)/<split>/: frames 00000001.jpg ..., a mask every 5th frame (object 2 from frame
    1 + `late` on: absent from the masks before) and <split>_meta.json with each object's frame_range."""
    base = os.path.join(root, "LVOS" if version == 1 else "LVOSv2", split)
    meta = {}
    for name, rgb, labels in _videos(num, frames, size, seed, split):
        annotated = list(range(1, frames + 1, 5))
        for n, image in enumerate(rgb, start=1):
            write_image(os.path.join(base, "JPEGImages", name, f"{n:08d}.jpg"), image)
        for n in annotated:
            label = labels[n - 1] if n >= 1 + late else np.where(labels[n - 1] == 2, 0, labels[n - 1])
            write_indexed_png(os.path.join(base, "Annotations", name, f"{n:08d}.png"), label.astype(np.uint8),
                              davis_palette())
        end = annotated[-1] + 1
        meta[name] = {"objects": {str(k): {"frame_range": {"start": s, "end": end,
                                                          "frame_nums": len(range(s, end, 5))}}
                                  for k, s in ((1, 1), (2, 1 + late))}}
    _write_json(os.path.join(base, f"{split}_meta.json"), {"videos": meta})
    return sorted(meta)


def write_sav(root: str, num: int = 2, frames: int = 13, size=(48, 80), seed: int = 0, split: str = "val",
              late: int = 4) -> List[str]:
    """ROOT/SA-V/sav_<split>/: JPEGImages_24fps/<video>/00000.jpg (every frame), Annotations_6fps/<video>/
    000|001/<frame>.png every 4th frame (001 empty before the first annotated frame >= `late` where it
    is visible), sav_<split>.txt."""
    base = os.path.join(root, "SA-V", f"sav_{split}")
    names = []
    for name, rgb, labels in _videos(num, frames, size, seed, split):
        for t, image in enumerate(rgb):
            write_image(os.path.join(base, "JPEGImages_24fps", name, f"{t:05d}.jpg"), image)
        annotated = list(range(0, frames, 4))
        start = next((t for t in annotated if t >= late and (labels[t] == 2).any()), frames)
        for t in annotated:
            for obj in (1, 2):
                mask = (labels[t] == obj) & (obj == 1 or t >= start)
                write_indexed_png(os.path.join(base, "Annotations_6fps", name, f"{obj - 1:03d}", f"{t:05d}.png"),
                                  mask.astype(np.uint8), [0, 0, 0, 255, 255, 255])
        names.append(name)
    with open(os.path.join(base, f"sav_{split}.txt"), "w", encoding="utf-8") as handle:
        handle.write("\n".join(names) + "\n")
    return names


def _write_json(path: str, data: dict) -> None:
    """Write JSON, creating the folder."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=1)


def write_layout(root: str, layout: str, num: int, frames: int, size: Tuple[int, int], seed: int,
                 full_gt: bool = False) -> List[str]:
    """Write a tiny set of `layout` (one of LAYOUTS) under `root` (the data_root); its video names."""
    if layout in ("MOSE", "MOSEv2"):
        return write_mose(root, 1 if layout == "MOSE" else 2, num, frames, size, seed, full_gt=full_gt)
    if layout in ("LVOS", "LVOSv2"):
        return write_lvos(root, 1 if layout == "LVOS" else 2, num, frames, size, seed)
    return write_sav(root, num, frames, size, seed)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Command line: write one tiny set."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="data_root to write into (the set goes to its folder)")
    parser.add_argument("--layout", required=True, choices=LAYOUTS)
    parser.add_argument("--videos", type=int, default=2)
    parser.add_argument("--frames", type=int, default=13)
    parser.add_argument("--size", type=int, nargs=2, default=(48, 80), metavar=("H", "W"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--full-gt", action="store_true", help="MOSE: annotate every frame (scored locally)")
    args = parser.parse_args(argv)
    names = write_layout(args.out, args.layout, args.videos, args.frames, tuple(args.size), args.seed, args.full_gt)
    print(f"wrote {len(names)} videos to {os.path.join(args.out, _FOLDERS[args.layout])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
