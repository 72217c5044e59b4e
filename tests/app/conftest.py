"""Fixtures of the browser-app and Python-API tests: a tiny random checkpoint that carries its model keys
(as train.py's do), a generated mp4 with two objects, and the app built on them."""
import os

import numpy as np
import pytest

from tests.app.browser import CHROMIUM, CHROMIUM_ARGS, Restartable, need_browser, stop_server

from libs.io import read_mask
from libs.dataset.synthetic import write_video_file
from tests.helpers.models import save_tiny_checkpoint

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FRAMES = 10
SIZE = (48, 80)                     # (H, W) of the generated video


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> str:
    """Path of the tiny checkpoint."""
    return save_tiny_checkpoint(str(tmp_path_factory.mktemp("app-ckpt") / "tiny.pth"))


@pytest.fixture(scope="session")
def tiny_video(tmp_path_factory):
    """(mp4 path, first-frame labels [H, W] uint8 with objects 1 and 2) of a generated 10-frame video."""
    video, mask = write_video_file(str(tmp_path_factory.mktemp("app-video") / "clip.mp4"), seed=3,
                                   num_frames=FRAMES, size=SIZE, num_objects=2)
    labels, _ = read_mask(mask)
    assert set(np.unique(labels)) == {0, 1, 2}
    return video, labels


@pytest.fixture(scope="session")
def app_config():
    """Builds the app's config as `demo/app.py --cfg demo/demo.yaml KEY VAL ...` does, for the tiny model:
    app_config(checkpoint, output_dir, allowed_dir, max_upload_mb, *more KEY VAL strings)."""
    from libs.config import load_cfg
    from libs.runner.cli import adopt_initial

    def build(checkpoint: str, output_dir: str, allowed_dir: str, max_upload_mb: int = 1, *more: str):
        opts = ["initial", checkpoint, "input_size", "[32,64]", "loop", "0", "gpu_id", "-1", "output_dir",
                output_dir, "allowed_dir", allowed_dir, "max_upload_mb", str(max_upload_mb), *more]
        return load_cfg(os.path.join(ROOT, "demo", "demo.yaml"), opts, adjust=adopt_initial)
    return build


@pytest.fixture(scope="session")
def app_server(tiny_checkpoint, tmp_path_factory):
    """`demo/app.py` on a free port with the tiny checkpoint, max_upload_mb 2 and an allowed folder, that a
    test may kill and restart (a Restartable)."""
    need_browser()
    out = tmp_path_factory.mktemp("app-out")
    (out / "allowed").mkdir()
    server = Restartable(tiny_checkpoint, str(out), "max_upload_mb", "2", "allowed_dir", str(out / "allowed"))
    try:
        yield server
    finally:
        stop_server(server.proc)


@pytest.fixture
def server(app_server):
    """(base URL, log file path, output folder) of the app's server."""
    return app_server.url, os.path.join(app_server.out, "server.log"), app_server.out


@pytest.fixture(scope="session")
def browser():
    """One headless chromium for the whole session."""
    sync_playwright = need_browser()
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()
