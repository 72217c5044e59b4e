"""Progress output: lines (not redraws) when the stream is not a terminal."""
import io

from libs.utils.progress import LineProgress, progress


def test_not_a_terminal_gives_plain_lines():
    stream = io.StringIO()
    bar = progress(10, "epoch 1/2", unit="it", stream=stream, every_s=0.0)
    assert isinstance(bar, LineProgress)
    bar.set_postfix(loss="0.5000")
    bar.update(3)
    bar.update(7)
    bar.close()
    bar.close()                                   # the last line already said 10/10: no repeat
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("epoch 1/2: 3/10 it (") and lines[0].endswith("loss=0.5000")
    assert lines[-1].startswith("epoch 1/2: 10/10 it (")
    assert len(lines) == 2 and "\r" not in stream.getvalue()


def test_the_rate_after_a_resume_counts_only_this_runs_work(monkeypatch):
    clock = iter([100.0, 102.0])                  # created at t=100 s, one update printed at t=102 s
    monkeypatch.setattr("libs.utils.progress.time.monotonic", lambda: next(clock))
    stream = io.StringIO()
    bar = LineProgress(1000, "epoch 2/3", unit="batch", initial=900, every_s=1.0, stream=stream)
    bar.update(4)
    assert stream.getvalue() == "epoch 2/3: 904/1000 batch (2.00 batch/s)\n"


def test_lines_are_rate_limited_and_can_be_disabled():
    stream = io.StringIO()
    with progress(100, "video", unit="frame", initial=5, stream=stream, every_s=3600.0) as bar:
        for _ in range(95):
            bar.update(1)
    assert stream.getvalue().splitlines() == [stream.getvalue().splitlines()[0]]
    assert stream.getvalue().startswith("video: 100/100 frame")
    quiet = io.StringIO()
    with progress(3, "x", enabled=False, stream=quiet, every_s=0.0) as bar:
        bar.update(3)
    assert quiet.getvalue() == ""


def test_line_progress_without_a_total_counts_only():
    """A live stream has no total: the line shows the count alone."""
    stream = io.StringIO()
    with LineProgress(None, "live camera 0", unit="frame", stream=stream) as bar:
        bar.update(3)
    assert stream.getvalue().startswith("live camera 0: 3 frame (")
