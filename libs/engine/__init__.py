"""The inference engine (memory bank, objects, test-time correction) and training steps."""
import logging
from typing import Union

from yacs.config import CfgNode

from libs.engine.batched import BatchedEngine
from libs.engine.inference import InferenceEngine, segment_video
from libs.engine.preprocess import Letterbox

__all__ = ["BatchedEngine", "InferenceEngine", "Letterbox", "segment_video", "build_engine", "build_set_engine"]
log = logging.getLogger(__name__)


def build_engine(cfg: CfgNode, model) -> InferenceEngine:
    """The inference engine with the config's memory schedule, correction and speed settings."""
    return InferenceEngine(model, save_freq=cfg.save_freq, loop=cfg.loop, correction_rate=cfg.correction_rate,
                           max_memory_frames=cfg.max_memory_frames, amp=cfg.amp, fast=cfg.fast_inference,
                           compile=cfg.compile)


def build_set_engine(cfg: CfgNode, model, videos: int) -> Union[InferenceEngine, BatchedEngine]:
    """The engine for a set of `videos` videos: one video at a time (batch_videos 1), or a `BatchedEngine`
    of batch_videos slots (no more than the set has videos: said in one line)."""
    engine = build_engine(cfg, model)
    slots = cfg.batch_videos
    if slots > videos > 0:
        log.info("batch_videos %d: the set has %d videos, segmenting %d at once", slots, videos, videos)
        slots = videos
    return BatchedEngine(engine, slots) if slots > 1 else engine
