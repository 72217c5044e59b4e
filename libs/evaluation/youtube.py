"""YouTube-VOS (2018/2019 valid and test) submissions: which frames to write, checks, and the zip.

meta.json: {"videos": {"<vid>": {"objects": {"<id>": {"frames": ["00000", "00005", ...]}}}}}.
An object's mask is given on its first listed frame and it exists from there on; frames before it
must not hold its id. The server expects one PNG per JPEG frame of valid/JPEGImages/<vid>/ from the
first frame where any object is given (the union of the objects' frame lists), zipped as
Annotations/<vid>/<frame>.png.

    python3 -m libs.evaluation.youtube --results DIR --meta valid/meta.json --out submission.zip
"""
import argparse
import json
import os
import sys
import zipfile
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import VOSError
from .png import read_label_png
from ..io.paths import atomic_path


@dataclass(frozen=True)
class VideoPlan:
    """What the server expects for one video: frames to write and the ids allowed in each."""

    name: str
    frames: Tuple[str, ...]            # frame stems to write, sorted
    starts: Dict[int, str]             # object id -> frame where its mask is given

    def allowed_ids(self, frame: str) -> Tuple[int, ...]:
        """Object ids that may appear in `frame` (objects whose mask was given at or before it)."""
        return tuple(sorted(k for k, start in self.starts.items() if start <= frame))


def load_meta(meta_path: str) -> Dict[str, dict]:
    """The "videos" mapping of a YouTube-VOS meta.json; VOSError if missing or malformed."""
    try:
        with open(meta_path, "r", encoding="utf-8") as f:
            meta = json.load(f)
    except OSError as err:
        raise VOSError(f"cannot read meta.json {meta_path}: {err.strerror}") from err
    except json.JSONDecodeError as err:
        raise VOSError(f"{meta_path} is not valid JSON: {err}") from err
    videos = meta.get("videos") if isinstance(meta, dict) else None
    if not isinstance(videos, dict) or not videos:
        raise VOSError(f"{meta_path} has no \"videos\" mapping; expected the YouTube-VOS meta.json layout")
    return videos


def video_plan(videos: Dict[str, dict], name: str, jpeg_frames: Optional[Sequence[str]] = None) -> VideoPlan:
    """Frames to write for `name` and when each object starts; with the video's JPEG stems, every
    JPEG frame from the first given mask on (else the union of the objects' frame lists)."""
    if name not in videos:
        raise VOSError(f"video {name!r} is not in meta.json")
    objects = videos[name].get("objects") if isinstance(videos[name], dict) else None
    if not isinstance(objects, dict) or not objects:
        raise VOSError(f"meta.json entry of video {name!r} has no objects")
    starts: Dict[int, str] = {}
    listed: set = set()
    for key, info in objects.items():
        frames = info.get("frames") if isinstance(info, dict) else None
        if not str(key).isdigit() or not frames:
            raise VOSError(f"meta.json video {name!r} object {key!r}: expected a numeric id with a frames list")
        starts[int(key)] = min(str(f) for f in frames)
        listed.update(str(f) for f in frames)
    first = min(starts.values())
    if jpeg_frames is not None:
        frames = sorted(f for f in jpeg_frames if f >= first)
    else:
        frames = sorted(listed)
    return VideoPlan(name, tuple(frames), starts)


def all_plans(meta_path: str, jpeg_root: Optional[str] = None) -> Dict[str, VideoPlan]:
    """VideoPlan of every video of meta.json (JPEG stems read from jpeg_root/<vid> when given)."""
    videos = load_meta(meta_path)
    plans = {}
    for name in sorted(videos):
        jpegs = None
        if jpeg_root is not None:
            folder = os.path.join(jpeg_root, name)
            if not os.path.isdir(folder):
                raise VOSError(f"no JPEG folder {folder} for video {name!r} of meta.json")
            jpegs = [f[:-4] for f in os.listdir(folder) if f.endswith(".jpg")]
        plans[name] = video_plan(videos, name, jpegs)
    return plans


def check_results(results_dir: str, plans: Dict[str, VideoPlan], check_ids: bool = True) -> int:
    """Check <results_dir>/Annotations/<vid>/<frame>.png against the plans; the number of PNGs.

    VOSError names the first video and frame that is missing, extra, not a label map, or holds an
    id the frame may not have."""
    root = os.path.join(results_dir, "Annotations")
    if not os.path.isdir(root):
        raise VOSError(f"{root} is not a folder; results must be in <dir>/Annotations/<video>/<frame>.png")
    folders = {f for f in os.listdir(root) if os.path.isdir(os.path.join(root, f))}
    extra_videos = sorted(folders - set(plans))
    if extra_videos:
        raise VOSError(f"{root} has {len(extra_videos)} folder(s) not in meta.json, e.g. {extra_videos[0]!r}")
    total = 0
    for name, plan in plans.items():
        _check_video(os.path.join(root, name), plan, check_ids)
        total += len(plan.frames)
    return total


def _check_video(folder: str, plan: VideoPlan, check_ids: bool) -> None:
    """Exactly the planned frames, each a label map with allowed ids only."""
    if not os.path.isdir(folder):
        raise VOSError(f"video {plan.name!r}: no results folder {folder}")
    present = {f[:-4] for f in os.listdir(folder) if f.endswith(".png")}  # other files are not packed
    missing = [f for f in plan.frames if f not in present]
    extra = sorted(present - set(plan.frames))
    if missing:
        raise VOSError(f"video {plan.name!r}: frame {missing[0]}.png is missing from {folder} "
                       f"({len(missing)} missing; write every frame from {plan.frames[0]} on)")
    if extra:
        raise VOSError(f"video {plan.name!r}: {folder} has {extra[0]}.png, which the server does not "
                       f"expect (frames before {plan.frames[0]} or not in the video); remove it")
    if check_ids:
        for frame in plan.frames:
            _check_ids(os.path.join(folder, frame + ".png"), plan, frame)


def _check_ids(path: str, plan: VideoPlan, frame: str) -> None:
    """VOSError if the PNG is not a 2-D label map or holds ids not allowed in this frame."""
    labels = read_label_png(path)
    if labels.ndim != 2:
        raise VOSError(f"{path} is a colour image; write indexed (palette) PNGs of object ids")
    found = set(np.unique(labels).tolist()) - {0}
    bad = sorted(found - set(plan.allowed_ids(frame)))
    if bad:
        raise VOSError(f"video {plan.name!r} frame {frame}: {path} holds object id {bad[0]}, which is not "
                       f"allowed there (allowed: {list(plan.allowed_ids(frame))}; an object exists from "
                       "the frame where its mask is given)")


def pack_submission(results_dir: str, meta_path: str, zip_path: str, jpeg_root: Optional[str] = None,
                    check_ids: bool = True) -> int:
    """Check the results, write the zip atomically (Annotations/<vid>/<frame>.png), verify it;
    returns the number of PNGs packed."""
    plans = all_plans(meta_path, jpeg_root)
    count = check_results(results_dir, plans, check_ids)
    with atomic_path(zip_path) as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as archive:
            for arcname in expected_names(plans):
                archive.write(os.path.join(results_dir, arcname), arcname)
        verify_zip(tmp, plans)
    return count


def expected_names(plans: Dict[str, VideoPlan]) -> List[str]:
    """Archive member names the server expects, sorted: Annotations/<vid>/<frame>.png."""
    return [f"Annotations/{name}/{frame}.png" for name in sorted(plans) for frame in plans[name].frames]


def verify_zip(zip_path: str, plans: Dict[str, VideoPlan]) -> None:
    """VOSError unless the zip holds exactly the expected PNGs (no other entries) and reads back."""
    try:
        with zipfile.ZipFile(zip_path) as archive:
            names = [n for n in archive.namelist() if not n.endswith("/")]
            damaged = archive.testzip()
    except (OSError, zipfile.BadZipFile) as err:
        raise VOSError(f"{zip_path} is not a readable zip: {err}") from err
    if damaged is not None:
        raise VOSError(f"{zip_path}: entry {damaged} is damaged")
    expected = expected_names(plans)
    if sorted(names) != expected:
        unexpected = sorted(set(names) - set(expected))
        absent = sorted(set(expected) - set(names))
        detail = f"unexpected {unexpected[0]}" if unexpected else f"missing {absent[0]}"
        raise VOSError(f"{zip_path} does not have the submission layout Annotations/<vid>/<frame>.png: {detail}")


def main(argv: Optional[List[str]] = None) -> int:
    """Command line: check and pack a YouTube-VOS results folder; exit 2 on a user error."""
    parser = argparse.ArgumentParser(prog="python3 -m libs.evaluation.youtube", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", required=True, help="folder holding Annotations/<video>/<frame>.png")
    parser.add_argument("--meta", required=True, help="the split's meta.json")
    parser.add_argument("--out", required=True, help="zip file to write")
    parser.add_argument("--jpeg_root", default=None, help="valid/JPEGImages, to take frames from the JPEGs")
    parser.add_argument("--skip_id_check", action="store_true", help="do not read the PNGs to check ids")
    args = parser.parse_args(argv)
    try:
        count = pack_submission(args.results, args.meta, args.out, args.jpeg_root, not args.skip_id_check)
    except VOSError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"packed {count} PNGs into {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
