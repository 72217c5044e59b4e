"""A data set video ready to segment: its given masks checked and loaded, its frames read, its result
folder made (and cleared of an earlier run's results)."""
import logging
from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional, Tuple

import numpy as np

from ..dataset.base import Video
from ..errors import VOSError
from ..inference.frames import Letterbox
from ..io import davis_palette, read_frame, read_mask, safe_join
from ..io.dali_decode import DaliDecoder
from ..io.masks import void_note
from .writer import ResultWriter, clear_earlier_results
from ..utils.constants import VOID_LABEL

log = logging.getLogger(__name__)


def merged_foreground(labels: np.ndarray) -> np.ndarray:
    """labels [H, W] -> one object (1) on background 0, void kept: as the DAVIS 2016 rules score it.
    A 0/255 mask (the DAVIS 2016 package's) has its foreground at 255, which is otherwise void."""
    binary = bool(np.isin(labels, (0, VOID_LABEL)).all())
    void = (labels == VOID_LABEL) & (not binary)
    return np.where(void, VOID_LABEL, labels > 0).astype(np.uint8)


def load_given(video: Video, merge_objects: bool) -> Tuple[Dict[int, np.ndarray], List[int]]:
    """The masks given as input, by frame index (all ids merged into 1 for single-object sets)."""
    given, palette = {}, video.palette
    for t, path in sorted(video.given.items()):
        labels, pal = read_mask(path)
        if (note := void_note(labels)) is not None:
            log.info("%s: %s", path, note)
        if merge_objects:
            labels = merged_foreground(labels)
        given[t] = labels
        palette = palette or pal
    first = min(given) if given else None
    if first is None or not np.any((given[first] > 0) & (given[first] < VOID_LABEL)):
        where = video.given.get(first, "no mask file") if first is not None else "no mask file"
        raise VOSError(f"video {video.name!r}: the first given mask ({where}) has no object; "
                       "label objects 1, 2, ... on a 0 background")
    return given, palette or davis_palette()


def read_frames(video: Video, size: Tuple[int, int], decoder: Optional[DaliDecoder] = None) -> Iterator[np.ndarray]:
    """The video's frames in order (PIL, or `decoder`: DALI); a frame of another size is an error naming it."""
    frames = decoder.images(video.frames) if decoder is not None else (read_frame(p) for p in video.frames)
    for path, rgb in zip(video.frames, frames):
        if rgb.shape[:2] != size:
            raise VOSError(f"frame {path} is {rgb.shape[1]}x{rgb.shape[0]} but the video's first frame is "
                           f"{size[1]}x{size[0]}: all frames of a video must have one size")
        yield rgb  # [H, W, 3] uint8 RGB


def check_video(video: Video, given: Dict[int, np.ndarray], size: Tuple[int, int]) -> None:
    """Reject videos the engine cannot segment, naming the file."""
    if len(video.frames) < 2:
        raise VOSError(f"video {video.name!r} has {len(video.frames)} frame(s); at least 2 are needed "
                       "(the first frame's mask is given, later frames are segmented)")
    for t, labels in given.items():
        if labels.shape != size:
            raise VOSError(f"mask {video.given[t]} is {labels.shape[1]}x{labels.shape[0]} but its frame "
                           f"{video.frames[t]} is {size[1]}x{size[0]}")


@dataclass
class PreparedVideo:
    """A data set video ready to segment: its given masks, frame size, letterbox and result writer."""

    given: Dict[int, np.ndarray]
    size: Tuple[int, int]
    letterbox: Letterbox
    writer: ResultWriter


def prepare_video(video: Video, out_dir: str, input_size, fmt: str, merge_objects: bool = False) -> PreparedVideo:
    """Check a video, load its given masks and make its result folder out_dir/<video>/; results an earlier
    run left there are removed once the video's first frame and masks load (VOSError/OSError otherwise)."""
    if video.problem:
        raise VOSError(video.problem)
    given, palette = load_given(video, merge_objects)
    size = read_frame(video.frames[0]).shape[:2]
    check_video(video, given, size)
    folder = safe_join(out_dir, video.name)
    clear_earlier_results(folder, [video.frames[0], *video.given.values()])
    return PreparedVideo(given, size, Letterbox(input_size, size), ResultWriter(folder, fmt, palette))
