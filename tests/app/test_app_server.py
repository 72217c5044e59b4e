"""The browser app's HTTP API in process: bad input gets one message (JSON `error`) and one log line, the
server keeps serving, and sessions do not disturb each other."""
import io
import logging
import os
import time
import zipfile

import cv2
import numpy as np
import pytest
from PIL import Image
from starlette.testclient import TestClient

from libs.app import build_server_app
from libs.io import write_video

WAIT_S = 120


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """(output folder, allowed folder with a copy of the generated video, a folder outside it)."""
    root = tmp_path_factory.mktemp("app-http")
    for name in ("out", "allowed", "outside"):
        (root / name).mkdir()
    return str(root / "out"), str(root / "allowed"), str(root / "outside")


@pytest.fixture(scope="module")
def client(tiny_checkpoint, tiny_video, folders, app_config):
    """The app on the tiny model, max_upload_mb 1, with the generated video inside the allowed folder."""
    out, allowed, outside = folders
    with open(tiny_video[0], "rb") as src, open(os.path.join(allowed, "clip.mp4"), "wb") as dst:
        dst.write(src.read())
    os.symlink(outside, os.path.join(allowed, "escape"))
    app = build_server_app(app_config(tiny_checkpoint, out, allowed, max_upload_mb=1))
    with TestClient(app, base_url="http://127.0.0.1:8000") as c:
        yield c


def new_session(client) -> str:
    """A session id, as a new browser tab gets one."""
    return client.post("/api/session").json()["id"]


def upload(client, sid: str, name: str, data: bytes):
    """POST a file as the page does."""
    return client.post(f"/api/{sid}/upload?name={name}", content=data)


def error_of(response, status: int) -> str:
    """The JSON error of a refused request, checked to be one line with the expected status."""
    assert response.status_code == status, (response.status_code, response.text)
    text = response.json()["error"]
    assert "\n" not in text and "Traceback" not in text and "Error" not in text, text
    return text


def wait_idle(client, sid: str) -> dict:
    """The session's status once its propagation ended."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        status = client.get(f"/api/{sid}/status").json()
        if not status["running"]:
            return status
        time.sleep(0.1)
    raise AssertionError("propagation did not end")


def video_bytes(path: str, frames: int) -> bytes:
    """An mp4 with `frames` frames (0: a file OpenCV writes without any frame)."""
    if frames:
        write_video(path, [np.full((32, 48, 3), 40 * i, np.uint8) for i in range(frames)], 25.0)
    else:
        cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), 25.0, (48, 32)).release()
    with open(path, "rb") as f:
        return f.read()


@pytest.fixture(scope="module")
def opened(client, tiny_video):
    """A session with the generated video, its frame 0 painted and propagated: (sid, labels of every frame)."""
    sid = new_session(client)
    assert upload(client, sid, "clip.mp4", open(tiny_video[0], "rb").read()).status_code == 200
    assert client.put(f"/api/{sid}/mask/0", content=tiny_video[1].tobytes()).status_code == 200
    assert client.post(f"/api/{sid}/propagate", json={"start": 0}).status_code == 200
    assert wait_idle(client, sid)["marks"] == "g" + "p" * 9
    return sid, masks_of(client, sid)


def masks_of(client, sid: str):
    """Every frame's labels as the page reads them."""
    return [np.frombuffer(client.get(f"/api/{sid}/mask/{t}").content, np.uint8).reshape(48, 80) for t in range(10)]


def test_page_and_static_files_are_served(client):
    """The page, its script and style come from the server itself (nothing from the internet)."""
    page = client.get("/").text
    assert "/static/app.js" in page and "http" not in page.replace("http-equiv", "")
    assert client.get("/static/app.js").status_code == 200 and client.get("/static/app.css").status_code == 200


def zip_of(files) -> bytes:
    """A zip holding `files` (name -> bytes)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


@pytest.mark.parametrize("name, data, message", [
    ("notes.mp4", b"not a video\n" * 100, "notes.mp4 (unsupported codec or corrupt file)"),
    ("notes.txt", b"text", "notes.txt is not a video or a zip of frames"),
    ("frames.zip", b"PK not really", "not a readable zip archive"),
    ("frames.zip", zip_of({"a.png": b"not a png", "b.png": b"nor this"}), "frames.zip"),
    ("empty.mp4", b"", "empty.mp4 is empty (0 bytes)"),
])
def test_files_that_are_no_video(client, name, data, message, caplog):
    """A file that is no video: one message naming it, one log line."""
    sid = new_session(client)
    with caplog.at_level(logging.WARNING, logger="app"):
        text = error_of(upload(client, sid, name, data), 400)
    assert message in text
    assert any(message in r.getMessage() for r in caplog.records)
    assert os.listdir(os.path.join(client.app.state.store.root, sid)) == []     # nothing left behind


@pytest.mark.parametrize("frames, messages", [
    (0, ("cannot open video short.mp4", "video short.mp4 has no readable frame")),   # OpenCV cannot open it
    (1, ("short.mp4 has 1 frame(s); at least 2 are needed",)),
])
def test_zero_and_one_frame_videos(client, tmp_path, frames, messages):
    """Videos of 0 and 1 frame are refused with a message naming the uploaded file (not the server's copy)."""
    sid = new_session(client)
    text = error_of(upload(client, sid, "short.mp4", video_bytes(str(tmp_path / "v.mp4"), frames)), 400)
    assert any(m in text for m in messages) and "upload-" not in text, text


def test_zip_of_frames(client):
    """A zip of frames (in a sub-folder, with clutter) opens as a video of those frames."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for i in range(3):
            png = io.BytesIO()
            Image.fromarray(np.full((20, 30, 3), 60 * i, np.uint8)).save(png, format="PNG")
            archive.writestr(f"clip/{i:03d}.png", png.getvalue())
        archive.writestr("__MACOSX/clip/._000.png", b"junk")
        archive.writestr("clip/readme.txt", b"hello")
    sid = new_session(client)
    status = upload(client, sid, "frames.zip", buffer.getvalue()).json()
    assert (status["frames"], status["width"], status["height"]) == (3, 30, 20)


def test_mask_with_no_object_and_propagate_without_mask(client, tiny_video):
    """An empty painted mask and a propagation from an unpainted frame are refused, saying what to do."""
    sid = new_session(client)
    assert error_of(client.post(f"/api/{sid}/propagate", json={"start": 0}), 400).startswith("no video is open")
    upload(client, sid, "clip.mp4", open(tiny_video[0], "rb").read())
    text = error_of(client.put(f"/api/{sid}/mask/0", content=bytes(48 * 80)), 400)
    assert "the mask for frame 0 has no object; paint at least one object" in text
    text = error_of(client.post(f"/api/{sid}/propagate", json={"start": 3}), 400)
    assert text == "frame 3 has no mask yet: paint at least one object on it, then propagate"
    assert error_of(client.put(f"/api/{sid}/mask/0", content=bytes(10)), 400).startswith("the mask sent for frame 0")
    assert error_of(client.get(f"/api/{sid}/v1/frame/99"), 404).startswith("frame 99 does not exist")
    assert error_of(client.get(f"/api/{sid}/masks.zip"), 400) == "nothing to export: no frame has a mask yet"


def test_upload_over_the_limit(client, folders):
    """An upload over max_upload_mb is refused (413) and leaves no file behind."""
    sid = new_session(client)
    text = error_of(upload(client, sid, "big.mp4", b"\0" * (1024 * 1024 + 10)), 413)
    assert text == ("big.mp4 is larger than the upload limit of 1 MB; cut the video, or start the app with a "
                    "larger max_upload_mb")
    assert os.listdir(os.path.join(folders[0], "app", sid)) == []
    streamed = client.post(f"/api/{sid}/upload?name=big.mp4", content=iter([b"\0" * 600_000] * 2))  # no length
    assert error_of(streamed, 413) == text
    declared = client.post(f"/api/{sid}/upload?name=big.mp4&size={1024 * 1024 + 1}")    # what the page sends
    assert error_of(declared, 413) == text
    assert os.listdir(os.path.join(folders[0], "app", sid)) == []


def test_paths_outside_the_allowed_folder_are_refused(client, folders):
    """Server paths open only inside allowed_dir: absolute, '..' and symbolic-link escapes are refused."""
    sid = new_session(client)
    outside = folders[2]
    for path in ("/etc/passwd", "../outside", outside, "escape/x.mp4"):
        text = error_of(client.post(f"/api/{sid}/open", json={"path": path}), 403)
        assert text.startswith(f"{path} is outside the allowed folder"), text
    status = client.post(f"/api/{sid}/open", json={"path": "clip.mp4"}).json()
    assert status["frames"] == 10 and status["name"] == "clip.mp4"
    missing = error_of(client.post(f"/api/{sid}/open", json={"path": "nope.mp4"}), 400)
    assert missing.startswith("nope.mp4 does not exist")


def test_unknown_idle_and_dropped_sessions(client, folders, tiny_video):
    """An unknown session is refused; an idle session without a video is dropped with its folder; one with a
    video is dropped from memory and comes back, video and masks, when its page asks again."""
    store = client.app.state.store
    assert "reload the page" in error_of(client.get("/api/0123456789abcdef/status"), 404)
    empty, full = new_session(client), new_session(client)
    upload(client, full, "clip.mp4", open(tiny_video[0], "rb").read())
    client.put(f"/api/{full}/mask/2", content=tiny_video[1].tobytes())
    for sid in (empty, full):
        store.sessions[sid].last_seen -= 2 * 3600
    store.forget_idle()
    assert empty not in store.sessions and full not in store.sessions
    assert "unknown to the server" in error_of(client.get(f"/api/{empty}/status"), 404)
    assert not os.path.exists(os.path.join(folders[0], "app", empty))
    status = client.get(f"/api/{full}/status").json()
    assert (status["name"], status["frames"], status["marks"]) == ("clip.mp4", 10, "..g" + "." * 7)
    assert client.get(f"/api/{full}/mask/2").content == tiny_video[1].tobytes()


def test_sessions_are_independent(client, opened, folders, tiny_video):
    """Two tabs at once: the other's failures (bad upload, bad mask) and its own failed upload leave a
    session's video, masks and files as they were; a correction re-propagates from its frame only."""
    sid, before = opened
    other = new_session(client)
    assert other != sid
    error_of(upload(client, other, "bad.mp4", b"junk" * 10), 400)
    error_of(upload(client, sid, "bad.mp4", b"junk" * 10), 400)             # its own failed upload too
    error_of(client.put(f"/api/{other}/mask/0", content=bytes(48 * 80)), 400)
    assert client.get(f"/api/{sid}/status").json()["name"] == "clip.mp4"
    assert all(np.array_equal(a, b) for a, b in zip(masks_of(client, sid), before))
    exported = client.get(f"/api/{sid}/masks.zip")
    assert exported.status_code == 200 and len(zipfile.ZipFile(io.BytesIO(exported.content)).namelist()) == 10
    fixed = before[4].copy()
    fixed[:20, :20] = 1
    client.put(f"/api/{sid}/mask/4", content=fixed.tobytes())
    client.post(f"/api/{sid}/propagate", json={"start": 4})
    assert wait_idle(client, sid)["marks"] == "g" * 1 + "p" * 3 + "g" + "p" * 5
    after = masks_of(client, sid)
    assert all(np.array_equal(after[t], before[t]) for t in range(4)) and np.array_equal(after[4], fixed)
    assert os.path.isfile(os.path.join(folders[0], "app", sid, "masks.zip"))


def test_stop_and_downloads(client, opened):
    """Stop ends a propagation early (finished frames kept); the zip and mp4 downloads have every frame."""
    sid, _ = opened
    client.post(f"/api/{sid}/propagate", json={"start": 0})
    client.post(f"/api/{sid}/stop")
    status = wait_idle(client, sid)
    assert 1 <= status["done"] <= status["total"] == 10 and status["error"] == ""
    video = client.get(f"/api/{sid}/overlay.mp4")
    assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"
    assert 'filename="clip_overlay.mp4"' in video.headers["content-disposition"]
