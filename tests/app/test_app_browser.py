"""The browser app end to end: `demo/app.py` serves, a real headless chromium (Debian's, driven by
Playwright) uploads a generated mp4, paints two objects, propagates, corrects frame 5, propagates again and
downloads the results; a second video in the same tab shows its own frames; Stop says where it stopped; a
box gives a GrabCut mask propagated back to frame 0 and exported as COCO JSON that decodes to the same masks;
a session survives a SIGKILL of the server; a long video keeps the server's memory bounded. Skips locally
without chromium; under CI (CI=true) a missing browser fails."""
import io
import json
import os
import signal
import time
import urllib.request
import zipfile

import cv2
import numpy as np
import pytest
from PIL import Image

from libs.app.coco import decode_coco
from libs.io import FrameSource, davis_palette, write_video
from tests.app.browser import (SCREENSHOTS, WAIT_MS, canvas_pixel, click_pixels, download, drag, get, go_to_frame,
                               message, page_labels, pngs, post, propagate, stop_server)

pytestmark = pytest.mark.slow
BLUE = (20, 90, 220)


def test_paint_propagate_correct_download(server, browser, tiny_video, tmp_path):
    """The whole interactive loop in a real browser, checked on the downloaded PNGs."""
    url, log_path, _ = server
    video, truth = tiny_video
    page = browser.new_page(viewport={"width": 1280, "height": 800}, accept_downloads=True)
    page.goto(url)
    message(page, "Upload a video")
    page.set_input_files("#file", video)
    message(page, "Opened clip.mp4")
    assert "10 frames, 80x48" in page.inner_text("#video-info")
    page.click("#propagate")                                  # nothing painted yet
    assert "frame 0 has no mask yet" in message(page, "no mask yet")

    ys, xs = np.nonzero(truth == 1)                           # object 1: a brush stroke through its middle
    cy, cx = float(ys.mean()), float(xs.mean())
    page.eval_on_selector("#size", "e => { e.value = 6; e.dispatchEvent(new Event('input')); }")
    drag(page, [(cx - 2, cy), (cx + 2, cy)])
    page.click("#add-object")                                 # object 2: a polygon around its box
    page.click("#tool-polygon")
    ys2, xs2 = np.nonzero(truth == 2)
    box = [(xs2.min(), ys2.min()), (xs2.max(), ys2.min()), (xs2.max(), ys2.max()), (xs2.min(), ys2.max())]
    click_pixels(page, [(float(x), float(y)) for x, y in box] + [(float(box[0][0]), float(box[0][1]))])
    propagate(page)
    os.makedirs(SCREENSHOTS, exist_ok=True)
    shot = os.path.join(SCREENSHOTS, "app_after_propagation.png")
    page.screenshot(path=shot)
    print(f"screenshot of the page after propagation: {shot}")
    first = pngs(download(page, "#download-zip"))

    go_to_frame(page, 5)                                      # correct frame 5: only object 1, top-left
    page.click("#clear")
    page.click("#objects [data-object='1']")
    page.click("#tool-brush")
    page.eval_on_selector("#size", "e => { e.value = 10; e.dispatchEvent(new Event('input')); }")
    drag(page, [(8, 8), (20, 8), (20, 16), (8, 16)])
    drag(page, [(60, 30), (70, 40)])                          # a stray stroke, undone
    page.click("#undo")
    propagate(page)
    go_to_frame(page, 7)
    page.screenshot(path=os.path.join(SCREENSHOTS, "app_after_correction.png"))
    second = pngs(download(page, "#download-zip"))
    mp4 = tmp_path / "overlay.mp4"
    mp4.write_bytes(download(page, "#download-mp4"))

    names = [f"{i:05d}.png" for i in range(10)]
    assert sorted(first) == names and sorted(second) == names
    for mode, size, palette, labels in list(first.values()) + list(second.values()):
        assert mode == "P" and size == (80, 48) and palette == davis_palette()[:9]
        assert set(np.unique(labels)) <= {0, 1, 2}
    zero = first["00000.png"][3]
    assert zero[int(cy), int(cx)] == 1 and zero[int(ys2.mean()), int(xs2.mean())] == 2
    assert set(np.unique(zero)) == {0, 1, 2}
    for name in names[:5]:
        assert np.array_equal(first[name][3], second[name][3]), f"{name} changed by the correction at frame 5"
    five = second["00005.png"][3]
    assert set(np.unique(five)) == {0, 1} and five[12, 14] == 1 and five[35, 65] == 0   # the stray stroke undone
    assert not np.array_equal(first["00005.png"][3], five)
    assert any(not np.array_equal(first[n][3], second[n][3]) for n in names[6:])
    assert len(FrameSource(str(mp4))) == 10
    log = open(log_path).read()
    assert "frame 0 has no mask yet" in log


def test_second_tab_has_its_own_session_and_bad_upload_message(server, browser, tmp_path):
    """A second tab gets its own session; a file that is no video gets one message there and in the log."""
    url, log_path, out = server
    bad = tmp_path / "notes.mp4"
    bad.write_bytes(b"this is not a video\n" * 50)
    first = browser.new_page()              # a tab of its own: this test must not rely on another test's tab
    first.goto(url)
    message(first, "Upload a video")
    page = browser.new_page()
    page.goto(url)
    message(page, "Upload a video")
    page.set_input_files("#file", str(bad))
    page.wait_for_selector("#message.error", timeout=WAIT_MS)
    text = page.inner_text("#message")
    assert "notes.mp4" in text and ("cannot open video" in text or "no readable frame" in text), text
    assert "10 frames" not in page.inner_text("#video-info")
    assert len(os.listdir(os.path.join(out, "app"))) >= 2        # two tabs, two sessions, two folders
    assert "notes.mp4" in open(log_path).read()
    big = tmp_path / "big.mov"
    big.write_bytes(b"\0" * (2 * 1024 * 1024 + 1))                             # the server's limit is 2 MB
    page.set_input_files("#file", str(big))
    limit = "big.mov is larger than the upload limit of 2 MB"
    assert limit in message(page, "upload limit") and page.get_attribute("#message", "class") == "error"
    assert limit in open(log_path).read()


def shot(page, name: str) -> None:
    """Save a screenshot under tests/output/ (and say where)."""
    os.makedirs(SCREENSHOTS, exist_ok=True)
    page.screenshot(path=os.path.join(SCREENSHOTS, name))
    print(f"screenshot: {os.path.join(SCREENSHOTS, name)}")


def blue_video(path: str, frames: int) -> str:
    """An mp4 of `frames` blue 40x64 frames with a white square moving along the top."""
    out = []
    for t in range(frames):
        frame = np.zeros((40, 64, 3), np.uint8) + np.array(BLUE, np.uint8)
        frame[2:10, (t % 50) + 2:(t % 50) + 10] = 255
        out.append(frame)
    write_video(path, out, 25.0)
    return path


def scene(frames: int = 12, size=(96, 160)):
    """(zip bytes of PNG frames, truth masks): an orange ellipse moving right over a green-grey texture."""
    rng = np.random.default_rng(5)
    height, width = size
    texture = rng.integers(0, 40, (height, width, 3)).astype(np.uint8) + np.array([60, 110, 70], np.uint8)
    yy, xx = np.mgrid[:height, :width]
    buffer, truths = io.BytesIO(), []
    with zipfile.ZipFile(buffer, "w") as archive:
        for t in range(frames):
            truth = ((xx - 50 - 3 * t) / 26.0) ** 2 + ((yy - 48) / 18.0) ** 2 <= 1.0      # [H, W]
            frame = texture.copy()
            frame[truth] = np.array([235, 120, 30]) + rng.integers(-15, 15, (int(truth.sum()), 3))
            png = io.BytesIO()
            Image.fromarray(frame).save(png, format="PNG")
            archive.writestr(f"ellipse/{t:03d}.png", png.getvalue())
            truths.append(truth)
    return buffer.getvalue(), truths


def open_page(browser, url: str):
    """A new tab on `url`, once the page is ready."""
    page = browser.new_page(viewport={"width": 1280, "height": 800}, accept_downloads=True)
    page.goto(url)
    page.wait_for_function("() => state.sid !== null", timeout=WAIT_MS)
    return page


def test_second_video_in_the_same_tab_and_stop(server, browser, tiny_video, tmp_path):
    """After a first video (painted, propagated), a second one in the same tab shows its own frame (pixel
    check), its panel and an idle progress text; Stop reports the frame it stopped at."""
    url, _, _ = server
    page = open_page(browser, url)
    page.set_input_files("#file", tiny_video[0])
    message(page, "Opened clip.mp4")
    drag(page, [(30, 20), (50, 30)])
    propagate(page)
    assert page.inner_text("#progress-text") == "Last run: 10 of 10 frames"
    first = canvas_pixel(page, 40, 30)
    page.set_input_files("#file", blue_video(str(tmp_path / "second.mp4"), 400))
    message(page, "Opened second.mp4")
    assert page.inner_text("#video-info") == "second.mp4: 400 frames, 64x40"
    assert page.inner_text("#progress-text") == "Idle."
    pixel = canvas_pixel(page, 32, 30)
    assert all(abs(a - b) <= 12 for a, b in zip(pixel, BLUE)), (pixel, first)
    page.click("#propagate")                                  # an error, gone once its cause is
    assert "frame 0 has no mask yet" in message(page, "no mask yet")
    page.eval_on_selector("#size", "e => { e.value = 20; e.dispatchEvent(new Event('input')); }")
    drag(page, [(20, 25), (40, 25)])
    assert page.get_attribute("#message", "class") != "error"
    page.click("#propagate")
    page.click("#stop")
    text = message(page, "Stopped at frame")
    done = page.evaluate("() => state.info.done")
    assert text.startswith(f"Stopped at frame {done - 1}: {done} of 400 frames") and done < 400, text
    assert page.inner_text("#progress-text") == f"Stopped at frame {done - 1}"
    page.eval_on_selector("#opacity", "e => { e.value = 85; e.dispatchEvent(new Event('input')); }")
    page.mouse.move(*page.evaluate("() => { const r = view.getBoundingClientRect(); "
                                   "return [r.left + r.width / 2, r.top + r.height / 2]; }"))
    assert page.is_visible("#cursor") and page.eval_on_selector("#cursor", "e => e.offsetWidth") > 100
    shot(page, "app_second_video_stopped.png")
    page.click("#play")
    page.wait_for_function("() => state.t > 5", timeout=WAIT_MS)
    page.click("#play")
    assert page.inner_text("#play") == "Play"


def test_box_grabcut_backward_and_coco(server, browser, tmp_path):
    """A box around the object gives a mask with IoU > 0.8, propagated from frame 6 back to frame 0; the
    COCO JSON download decodes to the masks the server holds."""
    url, _, _ = server
    data, truths = scene()
    (tmp_path / "ellipse.zip").write_bytes(data)
    page = open_page(browser, url)
    page.set_input_files("#file", str(tmp_path / "ellipse.zip"))
    message(page, "Opened ellipse.zip")
    page.eval_on_selector("#slider", "e => { e.value = 6; e.dispatchEvent(new Event('input')); }")
    page.wait_for_function("() => state.t === 6", timeout=WAIT_MS)
    ys, xs = (v.astype(float) for v in np.nonzero(truths[6]))
    page.click("#tool-box")
    drag(page, [(xs.min() - 8, ys.min() - 8), (xs.max() + 8, ys.max() + 8)])
    message(page, "Object 1 from the box")
    labels = page_labels(page, truths[6].shape)
    iou = np.logical_and(labels == 1, truths[6]).sum() / np.logical_or(labels == 1, truths[6]).sum()
    print(f"GrabCut IoU with the truth: {iou:.3f}")
    assert iou > 0.8
    shot(page, "app_box_grabcut.png")
    page.click("#propagate-back")
    message(page, "Done: 7 of 7")
    assert page.evaluate("() => state.info.marks") == "p" * 6 + "g" + "." * 5
    document = json.loads(download(page, "#download-coco"))
    sid = page.evaluate("() => state.sid")
    decoded = decode_coco(document, truths[0].shape)
    assert sorted(decoded) == list(range(7)) and {a["track_id"] for a in document["annotations"]} == {1}
    for t, labels in decoded.items():
        held = np.frombuffer(get(f"{url}/api/{sid}/mask/{t}"), np.uint8).reshape(truths[0].shape)
        assert np.array_equal(labels, held), t


def test_session_survives_sigkill(app_server, tiny_video, browser):
    """Paint, propagate, SIGKILL the server, start it again: reopening the page's address restores the video,
    the painted frame and the results."""
    url = app_server.url
    page = open_page(browser, url + "/")
    page.set_input_files("#file", tiny_video[0])
    message(page, "Opened clip.mp4")
    drag(page, [(30, 20), (50, 30)])
    propagate(page)
    address, sid = page.url, page.evaluate("() => state.sid")
    assert address.endswith(f"/?session={sid}")
    before = [get(f"{url}/api/{sid}/mask/{t}") for t in range(10)]
    results = os.path.join(app_server.out, "app", sid, "v1", "results")
    deadline = time.monotonic() + 10
    while len(os.listdir(results)) < 10 and time.monotonic() < deadline:
        time.sleep(0.05)                                 # the writer thread saves results as they come
    stop_server(app_server.proc, signal.SIGKILL)
    app_server.start()
    page.goto(address)
    assert message(page, "Restored clip.mp4") == "Restored clip.mp4: 10 frames with masks."
    assert page.evaluate("() => state.info.marks") == "g" + "p" * 9
    assert [get(f"{url}/api/{sid}/mask/{t}") for t in range(10)] == before
    assert page.evaluate("() => state.labels.some((v) => v === 1)")
    shot(page, "app_restored_after_sigkill.png")


def long_video(folder: str, frames: int = 2000, size=(360, 640)) -> int:
    """A folder of `frames` JPEG frames (a moving bright square over a gradient); returns their raw size."""
    height, width = size
    base = np.zeros((height, width, 3), np.uint8)
    base[..., 0], base[..., 1] = np.linspace(0, 255, width)[None], np.linspace(0, 255, height)[:, None]
    variants = []
    for i in range(25):
        frame = base.copy()
        frame[150:210, 20 * i:20 * i + 60] = 255
        variants.append(cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes())
    os.makedirs(folder)
    for t in range(frames):
        with open(os.path.join(folder, f"{t:05d}.jpg"), "wb") as f:
            f.write(variants[t % len(variants)])
    return frames * height * width * 3


def put(url: str, body: bytes) -> bytes:
    """The body of a PUT of raw bytes."""
    request = urllib.request.Request(url, data=body, method="PUT")
    with urllib.request.urlopen(request, timeout=60) as response:
        return response.read()


def test_long_video_memory_is_bounded(app_server):
    """A 2,000-frame 640x360 video (1.3 GB decoded) opens, every part of it is served, and 40 frames are
    propagated (results go to disk), while the server's resident memory grows by less than 150 MB."""
    raw = long_video(os.path.join(app_server.out, "allowed", "long"))
    url = app_server.url
    sid = json.loads(post(f"{url}/api/session", b""))["id"]
    app_server.reset_peak_memory()
    before = app_server.memory_kb("VmRSS")
    started = time.monotonic()
    status = json.loads(post(f"{url}/api/{sid}/open", json.dumps({"path": "long"}).encode()))
    seconds = time.monotonic() - started
    assert (status["frames"], status["width"], status["height"]) == (2000, 640, 360)
    for t in range(0, 2000, 97):
        assert get(f"{url}/api/{sid}/v1/frame/{t}")[:2] == b"\xff\xd8"               # JPEG
    mask = np.zeros((360, 640), np.uint8)
    mask[150:210, 0:60] = 1
    put(f"{url}/api/{sid}/mask/0", mask.tobytes())
    post(f"{url}/api/{sid}/propagate", json.dumps({"start": 0}).encode())
    while json.loads(get(f"{url}/api/{sid}/status"))["done"] < 40:
        time.sleep(0.05)
    post(f"{url}/api/{sid}/stop", b"")
    while (status := json.loads(get(f"{url}/api/{sid}/status")))["running"]:
        time.sleep(0.05)
    peak, now = app_server.memory_kb("VmHWM"), app_server.memory_kb("VmRSS")
    growth = (max(peak, now) - before) / 1024
    print(f"long video: 2000 frames 640x360 ({raw / 2**20:.0f} MB decoded) opened in {seconds:.1f} s, "
          f"{status['done']} frames propagated; server resident memory {before / 1024:.0f} MB before, peak "
          f"{peak / 1024:.0f} MB, now {now / 1024:.0f} MB (growth {growth:.0f} MB, bound 150 MB)")
    results = os.path.join(app_server.out, "app", sid, "v1", "results")
    assert status["done"] >= 40 and len(os.listdir(results)) == status["done"] and growth < 150
