"""What a run over an evaluation set did, and the one-line reason of a video's failure."""
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import torch

from libs.errors import VOSError


@dataclass
class RunReport:
    """What a run over an evaluation set did."""

    done: List[str] = field(default_factory=list)           # videos whose masks were all written
    failed: Dict[str, str] = field(default_factory=dict)    # video name -> one-line reason
    frames: int = 0
    seconds: float = 0.0
    score: Optional[float] = None                            # J&F-Mean when the set is scored

    @property
    def fps(self) -> float:
        """Frames per second over the finished videos."""
        return self.frames / max(self.seconds, 1e-9)

    def failure_summary(self, out_root: str) -> str:
        """Several lines: how many videos failed, each with its reason, and where the others are."""
        total = len(self.done) + len(self.failed)
        lines = [f"{len(self.failed)} of {total} videos failed (the masks of the other {len(self.done)} "
                 f"are in {out_root}):"]
        lines += [f"  {name}: {reason}" for name, reason in self.failed.items()]
        return "\n".join(lines)


def video_failure(err: Exception) -> str:
    """The one-line reason of an error that stopped one video (VOSError, OSError, out of GPU memory)."""
    if isinstance(err, torch.cuda.OutOfMemoryError):
        return "out of GPU memory (try a smaller input_size, or max_memory_frames N)"
    if isinstance(err, VOSError):
        return str(err).splitlines()[0]
    where = f" ({err.filename})" if getattr(err, "filename", None) else ""
    return f"cannot read or write a file{where}: {getattr(err, 'strerror', None) or err}"
