"""A video's frames decoded once into a folder of JPEG files (the frame cache), read back on demand through a
small in-memory LRU, so that a session's memory does not grow with the video's length."""
import io
import json
import os
import threading
from collections import OrderedDict
from typing import List, Sequence

import cv2
import numpy as np
from PIL import Image

from ..errors import VOSError
from ..io import FrameSource, atomic_path, read_frame

QUALITY = 95            # JPEG quality of the cached frames (the page is sent these very bytes)
LRU_FRAMES = 8          # decoded frames kept in memory per video
INDEX = "index.json"


class FrameCache(Sequence):
    """The cached frames of one video: len() and [t] -> [H, W, 3] uint8 RGB; `jpeg(t)` the stored bytes."""

    def __init__(self, folder: str):
        path = os.path.join(folder, INDEX)
        try:
            with open(path) as f:
                index = json.load(f)
        except (OSError, ValueError):
            raise VOSError(f"frame cache {folder} is missing or damaged ({INDEX}); open the video again") from None
        self.folder, self.names, self.fps = folder, list(index["names"]), float(index["fps"])
        self.size = (int(index["height"]), int(index["width"]))       # (H, W)
        self._lru: "OrderedDict[int, np.ndarray]" = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.names)

    def path(self, t: int) -> str:
        """The file of frame t."""
        return os.path.join(self.folder, f"{t:06d}.jpg")

    def jpeg(self, t: int) -> bytes:
        """Frame t's JPEG bytes as stored."""
        with open(self.path(self._check(t)), "rb") as f:
            return f.read()

    def __getitem__(self, t):
        if isinstance(t, slice):
            return [self[i] for i in range(*t.indices(len(self)))]
        t = self._check(t)
        with self._lock:
            if t in self._lru:
                self._lru.move_to_end(t)
                return self._lru[t]
        bgr = cv2.imdecode(np.fromfile(self.path(t), np.uint8), cv2.IMREAD_COLOR)
        if bgr is None:
            raise VOSError(f"frame cache file {self.path(t)} is unreadable; open the video again")
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)           # [H, W, 3] uint8
        rgb.setflags(write=False)
        with self._lock:
            self._lru[t] = rgb
            while len(self._lru) > LRU_FRAMES:
                self._lru.popitem(last=False)
        return rgb

    def _check(self, t) -> int:
        """`t` as an index of this video (negative counts from the end)."""
        t = int(t) + (len(self) if t < 0 else 0)
        if not 0 <= t < len(self):
            raise IndexError(f"frame {t} of a {len(self)}-frame video")
        return t


def check_caps(source: FrameSource, name: str, max_frames: int, max_pixels: int) -> None:
    """A VOSError naming the video, its size and the key to raise when it is over a cap."""
    height, width = source.size
    if len(source) < 2:
        raise VOSError(f"{name} has {len(source)} frame(s); at least 2 are needed")
    if len(source) > max_frames:
        raise VOSError(f"{name} has {len(source)} frames, more than max_frames {max_frames}; cut the video "
                       "or start the app with a larger max_frames")
    if height * width > max_pixels:
        raise VOSError(f"{name} is {width}x{height} ({height * width} pixels a frame), more than max_pixels "
                       f"{max_pixels}; scale the video down or start the app with a larger max_pixels")


def build_cache(source_path: str, folder: str, name: str, max_frames: int, max_pixels: int) -> FrameCache:
    """Decode the video (file or folder of frames) at `source_path` one frame at a time into `folder` (JPEG
    frames of a folder are copied as they are: no second compression); its index is written last,
    atomically, so a folder without one is an unfinished cache."""
    source = FrameSource(source_path)
    check_caps(source, name, max_frames, max_pixels)
    os.makedirs(folder, exist_ok=True)
    if source.paths is not None:
        for t, path in enumerate(source.paths):
            _store_file(path, os.path.join(folder, f"{t:06d}.jpg"), source.size, name)
    else:
        for t, rgb in enumerate(source.frames()):               # [H, W, 3] uint8
            _store_frame(rgb, os.path.join(folder, f"{t:06d}.jpg"), name)
    write_index(folder, list(source.names), source.fps, source.size)
    return FrameCache(folder)


def _store_frame(rgb: np.ndarray, path: str, name: str) -> None:
    """Write one [H, W, 3] uint8 RGB frame as the cache's JPEG."""
    ok, data = cv2.imencode(".jpg", rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, QUALITY])
    if not ok:
        raise VOSError(f"could not store a frame of {name} in the frame cache")
    data.tofile(path)


def _store_file(src: str, path: str, size, name: str) -> None:
    """Copy a colour JPEG frame file as it is (checked to decode, at the video's size); other images are
    decoded and stored as JPEG."""
    data = np.fromfile(src, np.uint8)
    if src.lower().endswith((".jpg", ".jpeg")):
        try:
            with Image.open(io.BytesIO(data.tobytes())) as img:
                fits = img.format == "JPEG" and img.mode == "RGB" and img.size == (size[1], size[0])
        except (OSError, SyntaxError):             # not a readable image: read_frame below names it
            fits = False
        if fits and cv2.imdecode(data, cv2.IMREAD_REDUCED_COLOR_8) is not None:        # a quick 1/8 decode
            data.tofile(path)
            return
    rgb = read_frame(src)                                                           # [H, W, 3] uint8
    if rgb.shape[:2] != tuple(size):
        raise VOSError(f"frame {os.path.basename(src)} of {name} is {rgb.shape[1]}x{rgb.shape[0]} but the first "
                       f"frame is {size[1]}x{size[0]}; all frames must have one size")
    _store_frame(rgb, path, name)


def write_index(folder: str, names: List[str], fps: float, size) -> None:
    """The cache's index (frame names, fps, size), atomically."""
    with atomic_path(os.path.join(folder, INDEX)) as tmp, open(tmp, "w") as f:
        json.dump({"names": names, "fps": fps, "height": int(size[0]), "width": int(size[1])}, f)
