"""Decoding the frames of test.py and the demo with NVIDIA DALI (`data_backend DALI`).

Frame files are decoded in batches by `fn.decoders.image`; a video file is fed once to
`fn.experimental.inputs.video`, which streams its frames `chunk` at a time (a long video is never decoded
whole into memory, nor parsed again per chunk). Both run with the `mixed` backend on a GPU, or the `cpu`
backend when `device_id` is None. Frames come back as host [H, W, 3] uint8 RGB arrays, in order, like the
PIL / OpenCV readers' (equal up to decoder rounding). DALI's CPU video decoder only knows VP8, VP9 and
MJPEG; other codecs, and any file DALI fails on, are decoded by PIL / OpenCV instead, with one warning.
Importing this module does not import DALI.

    decoder = build_frame_decoder("DALI", torch.device("cuda:0"))    # None for "PIL"
    for rgb in FrameSource("clip.mp4").frames(decoder): ...
"""
import logging
from typing import Any, Dict, Iterator, List, Optional

import cv2
import numpy as np
import torch

from ..errors import VOSError
from .images import read_frame
from .video import read_video_frames
from ..dataset.dali.available import error_reason, require_dali

log = logging.getLogger(__name__)
CPU_VIDEO_CODECS = {"MJPG": "MJPEG", "VP80": "VP8", "VP90": "VP9"}       # OpenCV FOURCC -> codec
CODEC_NAMES = {"FMP4": "MPEG-4", "H264": "H.264", "HEVC": "HEVC", "AV01": "AV1"}


def _image_graph(gpu: bool):
    """DataNode: a batch of encoded image files -> RGB images [H, W, 3] uint8."""
    from nvidia.dali import fn, types

    encoded = fn.external_source(name="encoded", batch=True)
    return fn.decoders.image(encoded, device="mixed" if gpu else "cpu", output_type=types.RGB,
                             adjust_orientation=False)          # PIL does not apply EXIF orientation


def _video_graph(gpu: bool, chunk: int):
    """DataNode: a video file fed once -> its frames, `chunk` a run ([F, H, W, 3] uint8 RGB, F <= chunk)."""
    from nvidia.dali import fn

    return fn.experimental.inputs.video(name="encoded", sequence_length=chunk, device="mixed" if gpu else "cpu",
                                        last_sequence_policy="partial")


def _file_bytes(path: str) -> np.ndarray:
    """The bytes of a file as a 1-D uint8 array; a VOSError naming it when it cannot be read."""
    try:
        return np.fromfile(path, dtype=np.uint8)
    except OSError as err:
        raise VOSError(f"cannot read {path} ({err.strerror or err}); check the file") from None


def video_codec(path: str) -> str:
    """The FOURCC of the video stream of `path` as OpenCV reports it ('MJPG', 'FMP4', ...; '' if unknown)."""
    cap = cv2.VideoCapture(path)
    try:
        code = int(cap.get(cv2.CAP_PROP_FOURCC)) if cap.isOpened() else 0
    finally:
        cap.release()
    if code <= 0:
        return ""
    return code.to_bytes(4, "little").decode("ascii", errors="replace").strip("\x00 ")


class DaliDecoder:
    """Decodes frame files and video files with NVIDIA DALI, on GPU `device_id` or on the CPU when None."""

    def __init__(self, device_id: Optional[int], batch: int = 16, chunk: int = 32, threads: int = 2) -> None:
        require_dali()
        if batch < 1 or chunk < 1:
            raise ValueError(f"batch and chunk must be positive, got {batch} and {chunk}")
        self.device_id, self.batch, self.chunk, self.threads = device_id, batch, chunk, max(1, threads)
        self.pipes: Dict[str, Any] = {}

    def where(self) -> str:
        """Where DALI decodes: 'cuda:N' or 'the CPU'."""
        return f"cuda:{self.device_id}" if self.device_id is not None else "the CPU"

    def _pipeline(self, graph, batch: int, **kwargs):
        """A built DALI pipeline of `graph` for `batch` samples a run, on this decoder's device."""
        from nvidia.dali import pipeline_def

        pipe = pipeline_def(graph, batch_size=batch, num_threads=self.threads, device_id=self.device_id,
                            prefetch_queue_depth=1)(gpu=self.device_id is not None, **kwargs)
        pipe.build()
        return pipe

    def _outputs(self, pipe) -> List[np.ndarray]:
        """Run `pipe` once; its output samples as host arrays, in order (RuntimeError when DALI fails)."""
        (out,) = pipe.run()
        out = out.as_cpu() if self.device_id is not None else out
        return [np.array(out[i]) for i in range(len(out))]

    def images(self, paths: List[str]) -> Iterator[np.ndarray]:
        """The images at `paths`, decoded `batch` at a time, in order: [H, W, 3] uint8 RGB each."""
        for start in range(0, len(paths), self.batch):
            group = paths[start:start + self.batch]
            encoded = [_file_bytes(p) for p in group]
            try:
                if "image" not in self.pipes:                  # built once, reused for every video
                    self.pipes["image"] = self._pipeline(_image_graph, self.batch)
                pipe = self.pipes["image"]
                pipe.feed_input("encoded", encoded)
                frames = self._outputs(pipe)
            except RuntimeError as err:
                self.pipes.pop("image", None)             # a pipeline that failed cannot run again
                log.warning("DALI cannot decode one of %s .. %s (%s); decoding from %s on with PIL", group[0],
                            group[-1], error_reason(err), group[0])
                yield from (read_frame(p) for p in paths[start:])
                return
            yield from frames

    def video(self, path: str, count: int) -> Iterator[np.ndarray]:
        """Frames 0..count-1 of the video file `path`, streamed `chunk` at a time: [H, W, 3] uint8 RGB each."""
        start, why, pipe = 0, self._cannot_decode(path), None
        encoded = _file_bytes(path) if why is None else None
        while why is None and start < count:
            try:
                if pipe is None:                                # one per video: no frames left over
                    pipe = self._pipeline(_video_graph, 1, chunk=self.chunk)
                    pipe.feed_input("encoded", [encoded])
                (frames,) = self._outputs(pipe)                # [F, H, W, 3], F <= chunk
            except RuntimeError as err:
                why = f"DALI cannot decode it ({error_reason(err)})"
                break
            yield from frames[:count - start]
            start = min(count, start + len(frames))
            if len(frames) < self.chunk and start < count:
                why = f"DALI found {start} of the {count} frames OpenCV counts"
        if start < count:
            log.warning("%s: %s; decoding it with OpenCV%s", path, why, f" from frame {start}" if start else "")
            yield from read_video_frames(path, count, start)

    def _cannot_decode(self, path: str) -> Optional[str]:
        """Why DALI's CPU decoder cannot decode the video `path` (its codec), or None when it can try."""
        if self.device_id is not None:
            return None
        fourcc = video_codec(path)
        if fourcc in CPU_VIDEO_CODECS:
            return None
        codec = CODEC_NAMES.get(fourcc, fourcc or "its codec")
        return f"DALI's CPU decoder cannot decode {codec} (only {', '.join(CPU_VIDEO_CODECS.values())})"


def build_frame_decoder(backend: str, device: torch.device) -> Optional[DaliDecoder]:
    """The frame decoder of `data_backend`: None for 'PIL' (PIL / OpenCV), DALI on `device` for 'DALI'."""
    if backend == "PIL":
        return None
    if backend != "DALI":
        raise VOSError(f"data_backend must be PIL or DALI, got {backend!r}")
    device = torch.device(device)
    if device.type == "cuda":
        device_id = device.index if device.index is not None else torch.cuda.current_device()
    elif device.type == "cpu":
        device_id = None
    else:
        raise VOSError(f"data_backend DALI decodes on a CUDA device or the CPU, not {device}")
    decoder = DaliDecoder(device_id)
    log.info("decoding frames with NVIDIA DALI on %s", decoder.where())
    return decoder
