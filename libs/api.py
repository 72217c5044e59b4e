"""Segment a video from Python (scripts, notebooks, the browser app): open it, give masks at any frame,
propagate them through the one inference core, read or export the results (libs/inference/session.py).

    session = VideoSession.open("clip.mp4", "model.pth", loop=0, gpu_id=-1)
    session.add_mask(0, labels)                 # [H, W] uint8: 0 background, objects 1, 2, ...
    for t, labels in session.propagate():       # frame by frame, as the engine goes
        ...
    session.export("out/clip")                  # indexed PNGs, overlay/*.jpg, overlay.mp4
"""
import logging
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from yacs.config import CfgNode

from .config import get_cfg, merge_file, merge_values, validate
from .errors import VOSError
from .inference import build_backend
from .inference.session import VideoSession, check_labels
from .inference.settings import InferenceSettings
from .io import FrameSource, read_frame
from .models import build_model
from .runner.cli import adopt_initial
from .utils.device import resolve_device

__all__ = ["VideoSession", "check_labels", "load_frames", "open_session", "session_config"]
log = logging.getLogger(__name__)
FrameInput = Union[str, Sequence[Union[np.ndarray, str]]]
DEFAULT_FPS = 25.0


def session_config(checkpoint: str, cfg_file: Optional[str] = None, overrides: Optional[Dict[str, Any]] = None
                   ) -> CfgNode:
    """Defaults (then `cfg_file`), `overrides` checked like command-line keys, `initial` = `checkpoint`, and
    the model keys (arch, keydim, valdim) a train.py checkpoint stores, with its training input_size unless
    `cfg_file` or `overrides` set one, as the scripts take them; frozen."""
    overrides = dict(overrides or {})
    if "initial" in overrides:
        raise VOSError("pass the checkpoint as VideoSession.open's second argument, not as initial=...")
    cfg = get_cfg()
    given = merge_file(cfg, cfg_file) if cfg_file else set()
    given |= merge_values(cfg, dict(overrides, initial=checkpoint or ""), "in VideoSession.open")
    adopt_initial(cfg, given)
    validate(cfg)
    cfg.freeze()
    return cfg


def load_frames(video: FrameInput) -> Tuple[List[np.ndarray], List[str], float]:
    """(frames [H, W, 3] uint8 RGB, frame names, fps) of a video file, a folder of frames, or a list of
    frames (arrays or image paths); at least 2 frames of one size."""
    if isinstance(video, (str, os.PathLike)):
        source = FrameSource(os.fspath(video))
        if len(source) < 2:
            raise VOSError(f"{video} has {len(source)} frame(s); at least 2 are needed")
        return list(source.frames()), list(source.names), source.fps
    if not isinstance(video, (list, tuple)):
        raise VOSError(f"video must be a video file, a folder of frames or a list of frames; got a "
                       f"{type(video).__name__}")
    frames = [_as_rgb(item, i) for i, item in enumerate(video)]
    if len(frames) < 2:
        raise VOSError(f"the list of frames has {len(frames)} frame(s); at least 2 are needed")
    for i, frame in enumerate(frames):
        if frame.shape != frames[0].shape:
            raise VOSError(f"frame {i} is {frame.shape[1]}x{frame.shape[0]} but frame 0 is "
                           f"{frames[0].shape[1]}x{frames[0].shape[0]}; all frames must have one size")
    return frames, [f"{i:05d}" for i in range(len(frames))], DEFAULT_FPS


def _as_rgb(item: Union[np.ndarray, str], index: int) -> np.ndarray:
    """One list entry as [H, W, 3] uint8 RGB: an image path is read, an array must already be that."""
    if isinstance(item, (str, os.PathLike)):
        return read_frame(os.fspath(item))
    frame = np.asarray(item)
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise VOSError(f"frame {index} of the list must be an [H, W, 3] uint8 RGB array or an image path; "
                       f"got shape {frame.shape} {frame.dtype}")
    return frame


def open_session(video: FrameInput, checkpoint: str, cfg_file: Optional[str], overrides: Dict[str, Any]
                 ) -> VideoSession:
    """`VideoSession.open`: the config, the frames, the model and its backend, then the session."""
    cfg = session_config(checkpoint, cfg_file, overrides)
    frames, names, fps = load_frames(video)
    if not checkpoint:
        log.warning("no checkpoint: the network is UNTRAINED and its masks are meaningless")
    device = resolve_device(cfg.gpu_id)
    backend = build_backend(cfg, build_model(cfg).to(device).eval())
    title = os.path.basename(os.path.normpath(video)) if isinstance(video, str) else "frames"
    return VideoSession(frames, names, fps, backend, InferenceSettings.from_cfg(cfg), tuple(cfg.input_size), title)
