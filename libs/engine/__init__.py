"""The inference engine (memory bank, objects, test-time correction) and training steps."""
from yacs.config import CfgNode

from libs.engine.inference import InferenceEngine, segment_video
from libs.engine.preprocess import Letterbox

__all__ = ["InferenceEngine", "Letterbox", "segment_video", "build_engine"]


def build_engine(cfg: CfgNode, model) -> InferenceEngine:
    """The inference engine with the config's memory schedule, correction and speed settings."""
    return InferenceEngine(model, save_freq=cfg.save_freq, loop=cfg.loop, correction_rate=cfg.correction_rate,
                           max_memory_frames=cfg.max_memory_frames, amp=cfg.amp, fast=cfg.fast_inference,
                           compile=cfg.compile)
