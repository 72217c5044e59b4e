"""Frames in from a folder or a video file, and mp4 videos out."""
import math
import os
from contextlib import ExitStack
from typing import TYPE_CHECKING, Iterable, Iterator, List, Optional, Tuple

import cv2
import numpy as np

from ..errors import VOSError
from .images import read_frame
from .paths import atomic_path, list_images

if TYPE_CHECKING:
    from .dali_decode import DaliDecoder

WRITE_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv")        # what write_video writes (mp4v)
VIDEO_EXTENSIONS = WRITE_EXTENSIONS + (".webm",)             # what FrameSource reads
FOLDER_FPS = 25.0


class FrameSource:
    """The frames of a folder of images (natural-sorted) or of a video file, read lazily as RGB."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.paths: Optional[List[str]] = None     # image files when the source is a folder
        if not os.path.exists(path):
            raise VOSError(f"input {path} does not exist; give a folder of frames or a video file "
                           f"({'/'.join(e[1:] for e in VIDEO_EXTENSIONS)})")
        if os.path.isdir(path):
            self._open_folder()
        elif os.path.splitext(path)[1].lower() in VIDEO_EXTENSIONS:
            self._open_video()
        else:
            raise VOSError(f"input {path} is neither a folder of frames nor a video file "
                           f"({'/'.join(e[1:] for e in VIDEO_EXTENSIONS)})")

    def _open_folder(self) -> None:
        """Index the image files of a folder; its first frame fixes the size."""
        files = list_images(self.path)
        if not files:
            raise VOSError(f"folder {self.path} has no frames (jpg, jpeg, png or bmp files)")
        self.names = [os.path.splitext(f)[0] for f in files]
        seen = {}
        for name, file in zip(self.names, files):
            if name in seen:
                raise VOSError(f"folder {self.path} has two frames named {name!r} ({seen[name]} and "
                               f"{file}); keep one")
            seen[name] = file
        self.paths = [os.path.join(self.path, f) for f in files]
        self.fps = FOLDER_FPS
        self.size: Tuple[int, int] = read_frame(self.paths[0]).shape[:2]

    def _open_video(self) -> None:
        """Count the decodable frames of a video file and read its size and frame rate."""
        cap = cv2.VideoCapture(self.path)
        try:
            if not cap.isOpened():
                raise VOSError(f"cannot open video {self.path} (unsupported codec or corrupt file)")
            fps = cap.get(cv2.CAP_PROP_FPS)
            self.fps = float(fps) if fps and math.isfinite(fps) and fps > 0 else FOLDER_FPS
            count, first = 0, None
            while cap.grab():
                if count == 0:
                    ok, first = cap.retrieve()
                    if not ok:
                        break
                count += 1
        finally:
            cap.release()
        if count == 0 or first is None:
            raise VOSError(f"video {self.path} has no readable frame (corrupt file or unsupported codec)")
        self.size = tuple(first.shape[:2])
        self.names = [f"{i:05d}" for i in range(count)]

    def __len__(self) -> int:
        return len(self.names)

    def __iter__(self) -> Iterator[np.ndarray]:
        return self.frames()

    def frames(self, decoder: Optional["DaliDecoder"] = None) -> Iterator[np.ndarray]:
        """The frames in order, decoded by `decoder` (NVIDIA DALI) or, when None, by PIL / OpenCV."""
        if decoder is None:
            frames = self._folder_frames() if self.paths is not None else read_video_frames(self.path, len(self))
        else:
            frames = decoder.images(self.paths) if self.paths is not None else decoder.video(self.path, len(self))
        count = 0
        for name, frame in zip(self.names, frames):
            if frame.shape[:2] != tuple(self.size):
                raise VOSError(f"frame {name} of {self.path} is {frame.shape[1]}x{frame.shape[0]} but "
                               f"the first frame is {self.size[1]}x{self.size[0]}; all frames must "
                               "have one size")
            count += 1
            yield frame  # [H, W, 3] uint8 RGB
        if count != len(self):
            raise VOSError(f"{self.path}: {count} of {len(self)} frames could be decoded")

    def _folder_frames(self) -> Iterator[np.ndarray]:
        """Decode the folder's images one at a time."""
        for path in self.paths:
            yield read_frame(path)


def read_video_frames(path: str, count: int, start: int = 0) -> Iterator[np.ndarray]:
    """Frames start..count-1 of a video file decoded by OpenCV, one at a time, as [H, W, 3] uint8 RGB."""
    cap = cv2.VideoCapture(path)
    try:
        for index in range(count):
            ok, bgr = (cap.grab(), None) if index < start else cap.read()
            if not ok:
                raise VOSError(f"video {path} ended after {index} of {count} frames")
            if bgr is not None:
                yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    finally:
        cap.release()


def write_video(path: str, frames: Iterable[np.ndarray], fps: float) -> int:
    """Write RGB frames [H, W, 3] uint8 as an mp4v video atomically; returns the number of frames.

    Odd heights or widths are padded by one replicated row/column (the codec needs even sizes).
    """
    with VideoFileWriter(path, fps) as video:
        for frame in frames:
            video.write(frame)
    return video.count


class VideoFileWriter:
    """An mp4v video written frame by frame into a temporary file that becomes `path` on `close()`.

    Use as a context manager: on an error (or an exception leaving the block) the temporary file is
    removed and `path` is left as it was. `fps` may be left None until the first `write` (`set_fps`).
    """

    def __init__(self, path: str, fps: Optional[float] = None):
        if os.path.splitext(path)[1].lower() not in WRITE_EXTENSIONS:
            raise VOSError(f"cannot write video {path}: use a .mp4, .avi, .mov or .mkv file name")
        self.path, self.count = path, 0
        self.fps: Optional[float] = None
        if fps is not None:
            self.set_fps(fps)
        self._writer, self._size, self._file = None, None, ExitStack()    # the file: atomic_path's context

    def set_fps(self, fps: float) -> None:
        """The frame rate the video plays at (fixed once the first frame is written)."""
        if not (fps and math.isfinite(fps) and fps > 0):
            raise VOSError(f"video frame rate must be a positive number, got {fps!r}")
        self.fps = float(fps)

    def write(self, frame: np.ndarray) -> None:
        """Append one RGB frame [H, W, 3] uint8 of the first frame's size."""
        frame = np.asarray(frame)
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise ValueError(f"video frames must be [H, W, 3] uint8, got {frame.shape} {frame.dtype}")
        if self._writer is None:
            if self.fps is None:
                raise ValueError("set_fps before the first frame")
            self._size = frame.shape[:2]
            self._writer = _open_writer(self._file.enter_context(atomic_path(self.path)), self.path, self.fps,
                                        self._size)
        elif frame.shape[:2] != self._size:
            raise VOSError(f"frame {self.count} for video {self.path} is {frame.shape[1]}x{frame.shape[0]}, "
                           f"the first was {self._size[1]}x{self._size[0]}")
        self._writer.write(_even(frame)[..., ::-1].copy())
        self.count += 1

    def close(self, error: Optional[BaseException] = None) -> None:
        """Finish the file and move it to `path` (with `error`: remove it); no frame at all is an error."""
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.release()
        if error is not None:
            self._file.__exit__(type(error), error, error.__traceback__)
            return
        self._file.close()
        if self.count == 0:
            raise VOSError(f"no frames to write to video {self.path}")

    def __enter__(self) -> "VideoFileWriter":
        return self

    def __exit__(self, kind, error, trace) -> None:
        self.close(error)


def _open_writer(tmp: str, path: str, fps: float, size: Tuple[int, int]) -> "cv2.VideoWriter":
    """An mp4v VideoWriter for frames of `size` (H, W) rounded up to even numbers."""
    height, width = size[0] + size[0] % 2, size[1] + size[1] % 2
    writer = cv2.VideoWriter(tmp, cv2.VideoWriter_fourcc(*"mp4v"), float(fps), (width, height))
    if not writer.isOpened():
        raise VOSError(f"cannot write video {path}: OpenCV has no mp4v encoder for it")
    return writer


def _even(frame: np.ndarray) -> np.ndarray:
    """`frame` [H, W, 3] padded by edge replication to an even height and width."""
    pad_h, pad_w = frame.shape[0] % 2, frame.shape[1] % 2
    if not (pad_h or pad_w):
        return frame
    return np.pad(frame, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
