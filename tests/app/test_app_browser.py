"""The browser app end to end: `demo/app.py` serves, a real headless chromium (Debian's, driven by
Playwright) uploads a generated mp4, paints two objects, propagates, corrects frame 5, propagates again and
downloads the results. Skips locally without chromium; under CI (CI=true) a missing browser fails."""
import os

import numpy as np
import pytest

from libs.io import FrameSource, davis_palette
from tests.app.browser import SCREENSHOTS, WAIT_MS, click_pixels, download, drag, go_to_frame, message, pngs, propagate

pytestmark = pytest.mark.slow


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
