"""The app's bounds and new endpoints in process: video caps with one message, the frame cache's LRU,
max_sessions, deleting an object everywhere, GrabCut hints, and the COCO export read back."""
import os
import time

import numpy as np
import pytest
from starlette.testclient import TestClient

from libs.app import build_server_app, files
from libs.app.coco import decode_coco
from libs.app.frames import LRU_FRAMES, FrameCache, build_cache
from libs.app.grabcut import grabcut
from libs.errors import VOSError


@pytest.fixture(scope="module")
def client(tiny_checkpoint, app_config, tmp_path_factory):
    """The app with small caps: max_frames 12, max_pixels 64x64, max_sessions 3."""
    out = str(tmp_path_factory.mktemp("app-limits"))
    cfg = app_config(tiny_checkpoint, out, "", 1, "max_frames", "12", "max_pixels", "4096", "max_sessions", "3")
    with TestClient(build_server_app(cfg), base_url="http://127.0.0.1:8000") as c:
        yield c


def opened(client, tiny_video) -> str:
    """A session with the generated 10-frame video."""
    sid = client.post("/api/session").json()["id"]
    assert client.post(f"/api/{sid}/upload?name=clip.mp4", content=open(tiny_video[0], "rb").read()).status_code == 200
    return sid


def test_caps_refuse_with_one_message(client, tmp_path):
    """A video over max_frames or max_pixels is refused naming the key; nothing is left in the session."""
    from libs.io import write_video
    sid = client.post("/api/session").json()["id"]
    for name, frames, size, key in (("long.mp4", 13, (32, 48), "max_frames 12"),
                                    ("wide.mp4", 3, (48, 96), "max_pixels 4096")):
        write_video(str(tmp_path / name), [np.full(size + (3,), 90, np.uint8)] * frames, 25.0)
        response = client.post(f"/api/{sid}/upload?name={name}", content=(tmp_path / name).read_bytes())
        assert response.status_code == 400 and key in response.json()["error"], response.text
        assert response.json()["error"].startswith(name)
    assert os.listdir(os.path.join(client.app.state.store.root, sid)) == []


def test_frame_cache_lru_and_addresses(client, tiny_video):
    """Frames are read from the cache through a bounded LRU; the frame address names the video's version."""
    sid = opened(client, tiny_video)
    video = client.app.state.store.get(sid).video
    assert isinstance(video.frames, FrameCache)
    for t in range(10):
        assert video.frames[t].shape == (48, 80, 3)
    assert len(video.frames._lru) == LRU_FRAMES
    assert client.get(f"/api/{sid}/v1/frame/3").content == video.frames.jpeg(3)
    client.post(f"/api/{sid}/upload?name=again.mp4", content=open(tiny_video[0], "rb").read())
    assert client.get(f"/api/{sid}/v1/frame/3").status_code == 404             # the first video's address
    assert client.get(f"/api/{sid}/v2/frame/3").status_code == 200
    assert sorted(os.listdir(os.path.join(client.app.state.store.root, sid))) == ["session.json", "v2"]


def test_jpeg_folder_is_copied_and_other_images_stored(tmp_path):
    """A folder of JPEG frames is cached byte for byte; a PNG frame of another size is refused by name."""
    import cv2
    folder = tmp_path / "frames"
    folder.mkdir()
    frame = np.random.default_rng(0).integers(0, 255, (24, 32, 3), np.uint8)
    for i in range(3):
        cv2.imwrite(str(folder / f"{i}.jpg"), frame)
    cache = build_cache(str(folder), str(tmp_path / "cache"), "frames", 10, 10_000)
    assert (len(cache), cache.size) == (3, (24, 32)) and cache.jpeg(1) == (folder / "1.jpg").read_bytes()
    cv2.imwrite(str(folder / "3.png"), np.zeros((20, 32, 3), np.uint8))
    with pytest.raises(VOSError, match="frame 3.png of frames is 32x20 but the first frame is 32x24"):
        build_cache(str(folder), str(tmp_path / "cache2"), "frames", 10, 10_000)


def test_max_sessions_drops_the_least_recent(client):
    """At most max_sessions sessions in memory: a new one drops the least recently used (no video: its folder
    goes too)."""
    store = client.app.state.store
    for sid in list(store.sessions):
        store.sessions[sid].last_seen -= 10 ** 6
    ids = [client.post("/api/session").json()["id"] for _ in range(4)]
    assert len(store.sessions) == 3 and ids[0] not in store.sessions
    assert not os.path.exists(os.path.join(store.root, ids[0]))


def test_idle_timer_drops_sessions(tiny_checkpoint, app_config, tmp_path):
    """With session_idle_minutes 0.005 (0.3 s) the timer drops an idle session within its 1-s tick."""
    cfg = app_config(tiny_checkpoint, str(tmp_path), "", 1, "session_idle_minutes", "0.005")
    with TestClient(build_server_app(cfg), base_url="http://127.0.0.1:8000") as c:
        sid = c.post("/api/session").json()["id"]
        assert sid in c.app.state.store.sessions
        deadline = time.monotonic() + 10
        while sid in c.app.state.store.sessions and time.monotonic() < deadline:
            time.sleep(0.1)
        assert sid not in c.app.state.store.sessions and not os.path.exists(os.path.join(str(tmp_path), "app", sid))


def test_delete_object_and_coco_round_trip(client, tiny_video, monkeypatch):
    """Results go to the session's folder as they come (at most LRU_MASKS of them in memory); deleting
    object 2 removes it from every frame (and the saved files); the COCO JSON decodes back to the masks
    with one track id per object."""
    monkeypatch.setattr(files, "LRU_MASKS", 4)
    sid = opened(client, tiny_video)
    client.put(f"/api/{sid}/mask/0", content=tiny_video[1].tobytes())
    client.post(f"/api/{sid}/propagate", json={"start": 0})
    while client.get(f"/api/{sid}/status").json()["running"]:
        time.sleep(0.05)
    results = client.app.state.store.get(sid).results
    assert len(results) == 10 and len(results._lru) == 4
    assert sorted(os.listdir(results.folder)) == [f"{t:06d}.png" for t in range(10)]
    masks = {t: np.frombuffer(client.get(f"/api/{sid}/mask/{t}").content, np.uint8).reshape(48, 80) for t in range(10)}
    document = client.get(f"/api/{sid}/coco.json").json()
    decoded = decode_coco(document, (48, 80))
    assert sorted(decoded) == sorted(masks) and all(np.array_equal(decoded[t], masks[t]) for t in masks)
    assert {a["track_id"] for a in document["annotations"]} <= {1, 2} and len(document["images"]) == 10
    status = client.delete(f"/api/{sid}/object/2").json()
    assert status["deleted"] == sum(bool(np.any(m == 2)) for m in masks.values()) >= 1
    after = np.frombuffer(client.get(f"/api/{sid}/mask/0").content, np.uint8).reshape(48, 80)
    assert not np.any(after == 2) and np.array_equal(after == 1, tiny_video[1] == 1)
    store = client.app.state.store
    store.sessions.pop(sid)                                        # as after a restart: read from the files
    restored = np.frombuffer(client.get(f"/api/{sid}/mask/0").content, np.uint8).reshape(48, 80)
    assert np.array_equal(restored, after) and client.get(f"/api/{sid}/status").json()["marks"][0] == "g"


def test_grabcut_box_and_hints():
    """GrabCut finds a square in its box; a background hint over half of it takes that half out."""
    rng = np.random.default_rng(1)
    frame = rng.integers(0, 60, (60, 80, 3)).astype(np.uint8)
    frame[20:40, 30:50] = (220, 200, 40)
    mask = grabcut(frame, [24, 14, 56, 46])
    truth = np.zeros((60, 80), bool)
    truth[20:40, 30:50] = True
    assert (mask & truth).sum() / (mask | truth).sum() > 0.9
    hinted = grabcut(frame, [24, 14, 56, 46], bg=[[x, y] for y in range(20, 40) for x in (40, 45)], radius=3)
    assert hinted[20:40, 40:50].sum() < mask[20:40, 40:50].sum()
    with pytest.raises(VOSError, match="box is too small"):
        grabcut(frame, [1, 1, 2, 2])
    with pytest.raises(VOSError, match="list of \\[x, y\\] points"):
        grabcut(frame, [24, 14, 56, 46], fg="nope")


@pytest.mark.parametrize("opts, text", [
    (["max_frames", "1"], "'max_frames' must be at least 2"),
    (["max_sessions", "0"], "'max_sessions' must be positive"),
    (["token", "short"], "'token' must be at least 16"), (["allowed_hosts", "['']"], "'allowed_hosts' must be a list")])
def test_bad_app_keys(opts, text):
    """Each new app key is checked with one message naming it."""
    from libs.config import load_cfg
    with pytest.raises(VOSError, match=text):
        load_cfg(None, opts)
