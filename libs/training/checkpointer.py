"""Training checkpoint files of one folder: atomic saves, the newest for `resume auto`, pruning, and the
check that a file holds a training state (not only weights).

The trainer decides *what* a checkpoint holds (`Trainer.state`); the checkpointer decides *where*
it goes: `latest.pth` after every save and `epoch-NNNN.pth` at the end of epoch NNNN (1-based),
of which only the `keep` newest stay when `keep` > 0 (`latest.pth` is never removed, so
`resume auto` always finds the newest state). Which file a run starts from: libs/training/start.py.
"""
import logging
import os
import re
from typing import Any, Dict, List, Optional

from ..errors import VOSError
from ..models.checkpoint import atomic_save

log = logging.getLogger(__name__)

LATEST = "latest.pth"
_EPOCH_FILE = re.compile(r"^epoch-(\d{4,})\.pth$")
RESUME_KEYS = ("optimizer", "epoch", "batch", "step", "rng")


def epoch_file(epoch: int) -> str:
    """'epoch-0006.pth' for epoch 6 (1-based: the checkpoint written when epoch 6 has ended)."""
    return f"epoch-{epoch:04d}.pth"


class Checkpointer:
    """Saves and finds the checkpoints of `folder`; only a `writer` (rank 0) touches files."""

    def __init__(self, folder: str, keep: int = 0, writer: bool = True) -> None:
        if keep < 0:
            raise VOSError(f"keep_checkpoints must be >= 0 (0 keeps every epoch checkpoint), got {keep}")
        self.folder, self.keep, self.writer = folder, int(keep), writer

    @property
    def latest_path(self) -> str:
        """The path of latest.pth (it may not exist yet)."""
        return os.path.join(self.folder, LATEST)

    def save(self, state: Dict[str, Any], epoch: Optional[int] = None) -> Optional[str]:
        """Write `state` to latest.pth (and epoch-NNNN.pth for `epoch`) atomically, then prune; returns the
        latest path, or None when this process is not the writer."""
        if not self.writer:
            return None
        try:
            atomic_save(state, self.latest_path)
            if epoch is not None:
                atomic_save(state, os.path.join(self.folder, epoch_file(epoch)))
                self.prune(upto=epoch)
        except (OSError, VOSError) as err:
            cause = err.__cause__ if isinstance(err, VOSError) and err.__cause__ is not None else err
            reason = getattr(cause, "strerror", None) or str(cause)
            raise VOSError(f"cannot write checkpoints to {self.folder!r} ({reason}); the checkpoints already there "
                           "are intact: free space there (or make it writable) and run again with `resume auto`, "
                           f"or set `checkpoint` to another folder{self._resume_hint()}") from None
        return self.latest_path

    def _resume_hint(self) -> str:
        """' (with `resume <latest.pth>`)' when that file exists, else ''."""
        return f" (with `resume {self.latest_path}`)" if os.path.isfile(self.latest_path) else ""

    def epoch_checkpoints(self) -> List[str]:
        """Paths of the folder's epoch-NNNN.pth files, oldest epoch first."""
        return epoch_checkpoints(self.folder)

    def prune(self, upto: Optional[int] = None) -> List[str]:
        """Remove all but the `keep` newest epoch checkpoints (none when keep is 0); returns the removed paths.
        `upto`: the epoch just saved; files of later epochs (left by an earlier run in the same folder) are
        neither counted nor removed, so the file just written always stays."""
        if not self.keep:
            return []
        found = self.epoch_checkpoints()
        if upto is not None:
            found = [p for p in found if int(_EPOCH_FILE.match(os.path.basename(p)).group(1)) <= upto]
        removed = found[:-self.keep]
        for path in removed:
            os.remove(path)
        if removed:
            log.debug("keep_checkpoints %d: removed %s", self.keep, ", ".join(map(os.path.basename, removed)))
        return removed



def epoch_checkpoints(folder: str) -> List[str]:
    """Paths of `folder`'s epoch-NNNN.pth files, oldest epoch first."""
    if not os.path.isdir(folder):
        return []
    found = [(int(m.group(1)), name) for name in os.listdir(folder) if (m := _EPOCH_FILE.match(name))]
    return [os.path.join(folder, name) for _, name in sorted(found)]


def newest_checkpoint(folder: str) -> str:
    """`resume auto`: `folder`/latest.pth, else its newest epoch-NNNN.pth; a VOSError when there is none."""
    latest = os.path.join(folder, LATEST)
    if os.path.isfile(latest):
        return latest
    found = epoch_checkpoints(folder)
    if not found:
        raise VOSError(f"resume auto: no checkpoint in {folder!r} ({LATEST} or epoch-*.pth); "
                       "train without `resume`, or pass resume /path/to/checkpoint.pth")
    return found[-1]


def check_resumable(data: Dict[str, Any], path: str) -> Dict[str, Any]:
    """`data` when it holds the training state besides the weights, else a VOSError (a weights-only file
    is an `initial`)."""
    missing = [key for key in RESUME_KEYS if key not in data]
    if missing:
        raise VOSError(f"{path!r} holds weights only (no {', '.join(missing)}): use it as `initial`, "
                       "not `resume`")
    return data
