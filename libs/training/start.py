"""Where a training run starts: the one decision (fresh, `initial`, `resume PATH`, `resume auto`, a torchrun
restart) and the one read of the checkpoint it starts from.

    start = decide_start(cfg.resume, cfg.initial, cfg.checkpoint, same_run, torchrun_restarts())

A worker group that torchrun restarted (TORCHELASTIC_RESTART_COUNT > 0, read only by `torchrun_restarts`)
continues from <checkpoint>/latest.pth when this run wrote it (`same_run(data)`: its stored config is this
run's); otherwise, and on the first start, `resume` decides (auto: the newest checkpoint of the folder),
then `initial`, else fresh weights. The checkpoint is read once; its contents travel in `Start.data`
to the model-key adoption, the weights and the trainer's position.
"""
import logging
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Tuple

from ..models.checkpoint import read_checkpoint
from .checkpointer import LATEST, newest_checkpoint

log = logging.getLogger(__name__)

RESTART_COUNT = "TORCHELASTIC_RESTART_COUNT"
KINDS = ("fresh", "initial", "resume", "restart")


def torchrun_restarts() -> int:
    """How often torchrun restarted this worker group (0 on the first start or without torchrun)."""
    text = os.environ.get(RESTART_COUNT, "0") or "0"
    return int(text) if text.isdigit() else 0


@dataclass(frozen=True)
class Start:
    """Where a run starts: `kind` (one of KINDS), the checkpoint `path` ('' when fresh) and its contents."""

    kind: str
    path: str = ""
    data: Dict[str, Any] = field(default_factory=dict)
    notes: Tuple[Tuple[int, str], ...] = ()     # (logging level, line) to log once logging is set up

    def log_notes(self) -> None:
        """Log what the decision has to say (a torchrun restart, a latest.pth of another run)."""
        for level, line in self.notes:
            log.log(level, line)

    @property
    def resumes(self) -> bool:
        """Whether the run continues a training state (optimizer, position, RNG), not only weights."""
        return self.kind in ("resume", "restart")


def decide_start(resume: str, initial: str, folder: str, same_run: Callable[[Dict[str, Any]], bool],
                 restarts: int = 0) -> Start:
    """The run's start (see the module doc); `restarts` from `torchrun_restarts()`."""
    latest, read, notes = os.path.join(folder, LATEST), {}, ()
    if restarts and os.path.isfile(latest):
        read[latest] = read_checkpoint(latest)
        if same_run(read[latest]):
            notes = ((logging.INFO, f"torchrun restart {restarts}: continuing from {latest}"),)
            return Start("restart", latest, read[latest], notes)
        notes = ((logging.WARNING, f"torchrun restart {restarts}: {latest} was written with another config, so "
                  "not by this run: starting as the first attempt did"),)
    if resume:
        path = newest_checkpoint(folder) if resume == "auto" else resume
        data = read[path] if path in read else read_checkpoint(path)
        return Start("resume", path, data, notes)
    if initial:
        return Start("initial", initial, read_checkpoint(initial), notes)
    return Start("fresh", notes=notes)
