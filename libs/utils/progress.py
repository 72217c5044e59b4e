"""Progress output: a redrawn bar on a terminal, a plain line now and then in a log file or pipe."""
import sys
import time
from typing import Any, Optional, TextIO


class LineProgress:
    """A tqdm-like counter that prints one line every `every_s` seconds and one at the end (no redraws)."""

    def __init__(self, total: Optional[int], desc: str, unit: str = "it", initial: int = 0, enabled: bool = True,
                 every_s: float = 30.0, stream: Optional[TextIO] = None):
        self.total, self.desc, self.unit, self.n, self.initial = total, desc, unit, initial, initial
        self.printed = -1                  # the count of the last line printed
        self.enabled, self.every_s = enabled, every_s
        self.stream = stream if stream is not None else sys.stderr
        self.postfix = ""
        self.start = self.last = time.monotonic()
        self.closed = False

    def set_postfix(self, **values: Any) -> None:
        """Values shown after the count (as tqdm's `set_postfix`)."""
        self.postfix = ", ".join(f"{k}={v}" for k, v in values.items())

    def update(self, n: int = 1) -> None:
        """Count `n` more; print a line if `every_s` seconds passed since the last one."""
        self.n += n
        now = time.monotonic()
        if now - self.last >= self.every_s:
            self.last = now
            self._print(now)

    def close(self) -> None:
        """Print the final line (once; not again when the last line printed already had this count)."""
        if not self.closed:
            self.closed = True
            if self.n != self.printed:
                self._print(time.monotonic())

    def _print(self, now: float) -> None:
        if not self.enabled:
            return
        self.printed = self.n
        rate = ((self.n - self.initial) / (now - self.start)) if now > self.start else 0.0   # this run's pace
        count = f"{self.n}/{self.total}" if self.total is not None else f"{self.n}"     # None: a live stream
        line = f"{self.desc}: {count} {self.unit} ({rate:.2f} {self.unit}/s)"
        print(line + (f" {self.postfix}" if self.postfix else ""), file=self.stream, flush=True)

    def __enter__(self) -> "LineProgress":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def progress(total: Optional[int], desc: str, unit: str = "it", initial: int = 0, enabled: bool = True,
             every_s: float = 30.0, stream: Optional[TextIO] = None):
    """A tqdm bar when `stream` (default stderr) is a terminal, else a LineProgress printing every `every_s` s
    (`total` None: a count without an end, e.g. a live stream)."""
    stream = stream if stream is not None else sys.stderr
    if stream.isatty():
        from tqdm import tqdm

        return tqdm(total=total, initial=initial, desc=desc, unit=unit, disable=not enabled,
                    dynamic_ncols=True, leave=False, file=stream)
    return LineProgress(total, desc, unit, initial, enabled, every_s, stream)
