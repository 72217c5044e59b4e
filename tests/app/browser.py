"""Helpers of the browser-app tests: start `demo/app.py`, drive Debian's chromium (Playwright) on the page."""
import io
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile

import numpy as np
import pytest
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOTS = os.path.join(ROOT, "tests", "output")
START_TIMEOUT_S = 90
WAIT_MS = 60_000


def need_browser():
    """Playwright's sync API when chromium and Playwright are installed; else skip (fail under CI)."""
    missing = None
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing = "Playwright is not installed (make setup installs requirements-dev.txt)"
    if missing is None and not os.path.exists(CHROMIUM):
        missing = f"{CHROMIUM} is missing (make setup-browser installs Debian's chromium with apt-get)"
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but the browser test cannot run: {missing}")
        pytest.skip(missing)
    return sync_playwright


def free_port() -> int:
    """A TCP port that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_serving(url: str, proc: subprocess.Popen, log_path: str) -> None:
    """Poll the server until it answers; fail with its log if it exits or never answers."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"demo/app.py exited with {proc.returncode}:\n{open(log_path).read()}")
        try:
            urllib.request.urlopen(url + "/api/config", timeout=2).read()
            return
        except OSError:
            time.sleep(0.3)
    pytest.fail(f"demo/app.py did not answer within {START_TIMEOUT_S} s:\n{open(log_path).read()}")


def to_screen(page, x: float, y: float):
    """Client coordinates of frame pixel (x, y) on the canvas (scaled to fit, as the page computes)."""
    return page.evaluate("""([x, y]) => {
        const v = document.getElementById('view'), r = v.getBoundingClientRect();
        const s = Math.min(r.width / v.width, r.height / v.height);
        return [r.left + (r.width - v.width * s) / 2 + x * s, r.top + (r.height - v.height * s) / 2 + y * s];
    }""", [x, y])


def drag(page, points):
    """Press the mouse at the first frame pixel, move through the others, release."""
    page.mouse.move(*to_screen(page, *points[0]))
    page.mouse.down()
    for x, y in points[1:]:
        page.mouse.move(*to_screen(page, x, y), steps=4)
    page.mouse.up()


def click_pixels(page, points):
    """Click at each frame pixel (polygon corners)."""
    for x, y in points:
        page.mouse.click(*to_screen(page, x, y))


def message(page, contains: str) -> str:
    """Wait until the page's message holds `contains`; returns it."""
    page.wait_for_function("t => document.getElementById('message').textContent.includes(t)", arg=contains,
                           timeout=WAIT_MS)
    return page.inner_text("#message")


def go_to_frame(page, t: int) -> None:
    """Move the slider to frame t."""
    page.eval_on_selector("#slider", "(e, t) => { e.value = t; e.dispatchEvent(new Event('input')); }", t)
    page.wait_for_function("t => document.getElementById('frame-label').textContent.startsWith('frame ' + t + ' ')",
                           arg=t, timeout=WAIT_MS)


def propagate(page) -> None:
    """Press Propagate and wait for the end of the run."""
    page.click("#propagate")
    message(page, "Done:")


def download(page, button: str) -> bytes:
    """Click a download button and return the file's bytes."""
    with page.expect_download(timeout=WAIT_MS) as info:
        page.click(button)
    with open(info.value.path(), "rb") as f:
        return f.read()


def pngs(data: bytes):
    """name -> (mode, size, palette head, labels) of the PNGs in a zip."""
    out = {}
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for name in archive.namelist():
            img = Image.open(io.BytesIO(archive.read(name)))
            out[name] = (img.mode, img.size, img.getpalette()[:9], np.asarray(img))
    return out


def start_server(checkpoint: str, out: str, port: int, *more: str) -> subprocess.Popen:
    """`demo/app.py` with the tiny checkpoint on `port`, its output (and log `server.log`) in `out`; returns
    once it answers."""
    args = [sys.executable, "demo/app.py", "--cfg", "demo/demo.yaml", "initial", checkpoint, "input_size",
            "[32,64]", "loop", "0", "gpu_id", "-1", "port", str(port), "output_dir", out, *more]
    log_path = os.path.join(out, "server.log")
    with open(log_path, "a") as log:
        proc = subprocess.Popen(args, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                env=dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1"))
    try:
        wait_until_serving(f"http://127.0.0.1:{port}", proc, log_path)
    except BaseException:
        stop_server(proc, signal.SIGKILL)
        raise
    return proc


class Restartable:
    """`demo/app.py` of one output folder on one port, that a test may kill and start again."""

    def __init__(self, checkpoint: str, out: str, *more: str):
        self.checkpoint, self.out, self.more, self.port = checkpoint, out, more, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = self.start()

    def start(self) -> subprocess.Popen:
        """Start the server (again)."""
        self.proc = start_server(self.checkpoint, self.out, self.port, *self.more)
        return self.proc

    def memory_kb(self, key: str) -> int:
        """VmRSS (resident now) or VmHWM (peak resident since the last reset) of the server, in kB."""
        with open(f"/proc/{self.proc.pid}/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith(key + ":"))

    def reset_peak_memory(self) -> None:
        """Start VmHWM afresh from the current resident size (Linux: clear_refs 5)."""
        with open(f"/proc/{self.proc.pid}/clear_refs", "w") as f:
            f.write("5")


def stop_server(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    """Send `sig` to the server and wait for it to end."""
    if proc.poll() is None:
        proc.send_signal(sig)
    proc.wait(timeout=30)


def get(url: str) -> bytes:
    """The body of a GET (as a page of the server itself would send it)."""
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.read()


def post(url: str, body: bytes) -> bytes:
    """The body of a POST of `body` (JSON)."""
    request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as response:
        return response.read()


def canvas_pixel(page, x: int, y: int):
    """[r, g, b] of the page's canvas at frame pixel (x, y)."""
    return page.evaluate("([x, y]) => Array.from(document.getElementById('view').getContext('2d')"
                         ".getImageData(x, y, 1, 1).data.slice(0, 3))", [x, y])


def page_labels(page, size) -> np.ndarray:
    """The labels the page holds for the frame shown, [H, W] uint8."""
    return np.array(page.evaluate("() => Array.from(state.labels)"), np.uint8).reshape(size)
