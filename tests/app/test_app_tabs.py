"""Browser tabs share one scheduler: two tabs propagating at once both advance (batched together), instead
of one waiting for the other's whole propagation."""
import time

import numpy as np
from starlette.testclient import TestClient

from libs.app import build_server_app
from libs.dataset.synthetic import generate_video
from libs.io import write_video

FRAMES = 40


def test_two_tabs_propagating_at_once_both_advance(tiny_checkpoint, app_config, tmp_path):
    frames, labels = generate_video(5, FRAMES, (32, 48), 2)
    path = str(tmp_path / "long.mp4")
    write_video(path, frames, 25.0)
    with open(path, "rb") as f:
        data = f.read()
    cfg = app_config(tiny_checkpoint, str(tmp_path / "out"), "")
    with TestClient(build_server_app(cfg), base_url="http://127.0.0.1:8000") as client:
        tabs = [client.post("/api/session").json()["id"] for _ in range(2)]
        for sid in tabs:
            assert client.post(f"/api/{sid}/upload?name=long.mp4", content=data).status_code == 200
            assert client.put(f"/api/{sid}/mask/0", content=labels[0].tobytes()).status_code == 200
        for sid in tabs:
            assert client.post(f"/api/{sid}/propagate", json={"start": 0}).status_code == 200
        both, deadline = [], time.monotonic() + 300
        while time.monotonic() < deadline:
            status = [client.get(f"/api/{sid}/status").json() for sid in tabs]
            if all(0 < s["done"] < s["total"] for s in status):
                both.append(tuple(s["done"] for s in status))
            if not any(s["running"] for s in status):
                break
            time.sleep(0.05)
        assert [s["done"] for s in status] == [FRAMES, FRAMES] and not any(s["error"] for s in status)
        print("progress counters read while both tabs ran:", both[:3], "...", len(both), "reads")
        assert both, "the two tabs were never both under way"
        for sid in tabs:                                # every frame has a mask with the given ids only
            marks = client.get(f"/api/{sid}/status").json()["marks"]
            assert marks == "g" + "p" * (FRAMES - 1)
            last = np.frombuffer(client.get(f"/api/{sid}/mask/{FRAMES - 1}").content, np.uint8)
            assert set(np.unique(last)) <= {0, 1, 2}
