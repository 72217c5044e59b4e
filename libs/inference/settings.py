"""What the inference core needs to know, built from the config in one place."""
from dataclasses import dataclass

from yacs.config import CfgNode


@dataclass(frozen=True)
class InferenceSettings:
    """The memory schedule, the test-time correction and the network path of every video segmented."""

    save_freq: int = 5                  # a frame joins the stored memory every save_freq frames
    loop: int = 0                       # correction iterations every save_freq frames (0: off)
    correction_rate: float = 150.0      # step size of each correction iteration
    max_memory_frames: int = 0          # bound on stored memory frames, the first always kept (0: none)
    fast: bool = False                  # folded copy, SDPA memory read (same masks up to rounding)
    amp: bool = False                   # bf16 (plain path: autocast; fast path: bf16 weights)
    compile: bool = False               # fast path's steps compiled by torch.compile (fixed shapes)
    compile_backend: str = "inductor"   # torch.compile backend

    @property
    def align(self) -> int:
        """Videos of a batch start on steps that are multiples of this, so that they correct together."""
        return self.save_freq if self.loop > 0 else 1

    @classmethod
    def from_cfg(cls, cfg: CfgNode, **changes) -> "InferenceSettings":
        """The config's settings (the one reader of these keys), with `changes` (e.g. a live run's bound)."""
        values = dict(save_freq=cfg.save_freq, loop=cfg.loop, correction_rate=cfg.correction_rate,
                      max_memory_frames=cfg.max_memory_frames, fast=cfg.fast_inference, amp=cfg.amp,
                      compile=cfg.compile)
        values.update(changes)
        return cls(**values)
