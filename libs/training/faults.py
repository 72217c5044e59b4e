"""What the training loop does about faults: unreadable samples, non-finite steps, and one decision for all ranks.

Every optimizer step, the ranks sum a few numbers in one all-reduce (`agree`): whether the step's loss
or gradient is non-finite, how many unreadable samples were replaced, whether a signal asked to stop,
whether rank 0's clock reached `max_minutes`. So every rank skips the same steps and stops at the same
step; a rank that decided alone would leave the others waiting in a collective.
"""
import logging
import math
import os
from typing import Iterable, List, Sequence, Set, Tuple

import torch

from ..errors import VOSError

log = logging.getLogger("libs.training.trainer")


def agree(values: Sequence[float], device: torch.device, distributed: bool) -> List[float]:
    """`values` summed over all ranks (one all-reduce on `device`); unchanged in a single process."""
    if not distributed:
        return [float(v) for v in values]
    flags = torch.tensor([float(v) for v in values], dtype=torch.float64 if device.type == "cpu" else torch.float32,
                         device=device)
    torch.distributed.all_reduce(flags)
    return flags.tolist()


def step_health(loss: torch.Tensor, params: Iterable[torch.nn.Parameter]) -> Tuple[float, bool]:
    """(loss value, whether the loss and the gradients of `params` are all finite), with one host sync."""
    grads = [p.grad for p in params if p.grad is not None]
    norm = torch.nn.utils.get_total_norm(grads) if grads else torch.zeros((), device=loss.device)
    value, norm = torch.stack([loss.detach().float(), norm.float().to(loss.device)]).tolist()
    return value, math.isfinite(value) and math.isfinite(norm)


def bad_sample_limit(max_bad_samples: float, clips: int) -> float:
    """How many unreadable samples an epoch of `clips` clips tolerates: max_bad_samples x clips when it is
    below 1 (a fraction), else max_bad_samples itself (a count)."""
    return max_bad_samples * clips if max_bad_samples < 1 else max_bad_samples


class BadSamples:
    """Names each unreadable file once (in the log) and counts the samples replaced in the current epoch."""

    def __init__(self, max_bad_samples: float) -> None:
        self.max_bad_samples = max_bad_samples
        self.named: Set[str] = set()
        self.pending = 0          # replaced in this process since the last `add`
        self.epoch_count = 0      # replaced in the epoch, all ranks (as agreed)
        self.total = 0            # replaced in the run, all ranks
        self.clips = 0            # clips of the epoch, all ranks
        self.first = ""           # the first reason of the epoch, for the error
        self.files: List[str] = []   # files this process met in the epoch, for the summary

    def start_epoch(self, clips: int) -> None:
        """A new epoch of `clips` clips (all ranks together)."""
        self.epoch_count, self.clips, self.first, self.files = 0, clips, "", []

    def note(self, records: Sequence[Tuple[str, str]]) -> None:
        """The (path, reason) records of a batch: counted, and logged once per file."""
        self.pending += len(records)
        for path, reason in records:
            self.first = self.first or reason
            if path not in self.files:
                self.files.append(path)
            if path not in self.named:
                self.named.add(path)
                log.warning("unreadable training sample replaced by another: %s", reason)

    def add(self, count: int, epoch: int) -> None:
        """`count` more replaced samples (summed over the ranks); a VOSError once they exceed the limit."""
        self.epoch_count += count
        self.total += count
        limit = bad_sample_limit(self.max_bad_samples, self.clips)
        if self.epoch_count > limit:
            first = f" (the first here: {self.first})" if self.first else ""
            raise VOSError(f"{self.epoch_count} unreadable training samples in epoch {epoch} of {self.clips} clips, "
                           f"more than max_bad_samples {self.max_bad_samples:g} allows ({limit:g}){first}; fix or "
                           "remove those files, or raise max_bad_samples")


class NonFiniteSteps:
    """Counts optimizer steps skipped for a non-finite loss or gradient; stops after too many in a row."""

    def __init__(self, max_consecutive: int) -> None:
        self.max_consecutive = max_consecutive
        self.consecutive = 0
        self.epoch_count = 0
        self.total = 0

    def record(self, finite: bool, value: float, where: str, names: Sequence[str], latest: str) -> None:
        """One optimizer step's outcome (as agreed by all ranks); a VOSError after `max_consecutive` skips."""
        if finite:
            self.consecutive = 0
            return
        self.consecutive += 1
        self.epoch_count += 1
        self.total += 1
        clips = ", ".join(sorted(set(names))) or "?"
        log.warning("non-finite loss or gradient (loss %s) at %s: optimizer step skipped (clips of this process: %s)",
                    value, where, clips)
        if self.consecutive >= max(1, self.max_consecutive):
            raise VOSError(f"{self.consecutive} optimizer step(s) in a row had a non-finite loss or gradient (the "
                           f"last at {where}, loss {value}), max_nonfinite_steps is {self.max_consecutive}; stopped "
                           f"without saving. The last good checkpoint is {latest} (resume from it, perhaps with a "
                           "lower learning_rate)")


def fault_summary(replaced: int, skipped: int, files: Sequence[str] = ()) -> str:
    """'3 unreadable samples replaced (video/00001.jpg, ...), 1 optimizer step skipped (non-finite loss)', or ''
    when neither happened; at most 3 `files` are named (folder/file)."""
    parts = []
    if replaced:
        named = [os.path.join(os.path.basename(os.path.dirname(f)), os.path.basename(f)) for f in files[:3]]
        more = f" and {len(files) - 3} more" if len(files) > 3 else ""
        listed = f" ({', '.join(named)}{more})" if named else ""
        parts.append(f"{replaced} unreadable sample{'s' * (replaced != 1)} replaced{listed}")
    if skipped:
        parts.append(f"{skipped} optimizer step{'s' * (skipped != 1)} skipped (non-finite loss)")
    return ", ".join(parts)
