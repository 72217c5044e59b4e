"""The one inference core: settings, backend (how the network runs), memory, core over B videos, the
scheduler (the one per-frame loop) and the session API over it."""
import logging

import torch
from yacs.config import CfgNode

from .backend import Backend
from .core import InferenceCore
from .settings import InferenceSettings

__all__ = ["Backend", "InferenceCore", "InferenceSettings", "build_backend", "build_core"]
log = logging.getLogger(__name__)


def build_backend(cfg: CfgNode, model: torch.nn.Module) -> Backend:
    """The backend of the config's path (plain, fast, bf16, compiled) over `model`, or with `runtime
    onnxruntime` the graphs of onnx_dir (checked against the run's model keys, size, memory and weights)."""
    if cfg.runtime == "onnxruntime":
        from ..onnxrt import OnnxSteps

        return Backend(model, onnx=OnnxSteps.from_cfg(cfg))
    return Backend.from_settings(model, InferenceSettings.from_cfg(cfg))


def build_core(cfg: CfgNode, backend: Backend, videos: int = 1, **changes) -> InferenceCore:
    """A core of batch_videos slots (no more than the `videos` to segment: said in one line) over `backend`;
    `changes` to the config's settings (e.g. a live run's memory bound)."""
    slots = cfg.batch_videos
    if slots > videos > 0:
        log.info("batch_videos %d: the set has %d videos, segmenting %d at once", slots, videos, videos)
        slots = videos
    return InferenceCore(backend, InferenceSettings.from_cfg(cfg, **changes), max(1, slots))
