"""The browser app (demo/app.py): a local web server and one page to paint masks, propagate, correct and
export, over the session API (libs/inference/session.py) and one scheduler shared by every tab."""
import os

from starlette.applications import Starlette
from yacs.config import CfgNode

from libs.app.server import build_app
from libs.app.sessions import SessionStore
from libs.inference import InferenceCore, InferenceSettings, build_backend
from libs.inference.scheduler import SharedScheduler
from libs.models import build_model
from libs.utils.device import resolve_device

__all__ = ["build_server_app"]
APP_SLOTS = 4       # browser tabs propagating at once in one batch (more with batch_videos)


def build_server_app(cfg: CfgNode) -> Starlette:
    """The app for `cfg`: one model (`initial`) and one scheduler shared by every session (up to
    max(APP_SLOTS, batch_videos) tabs propagate together, batched), session folders under
    `<output_dir>/app/`, uploads up to `max_upload_mb`, server paths inside `allowed_dir` only."""
    device = resolve_device(cfg.gpu_id)
    backend = build_backend(cfg, build_model(cfg).to(device).eval())
    core = InferenceCore(backend, InferenceSettings.from_cfg(cfg), max(APP_SLOTS, cfg.batch_videos))
    store = SessionStore(os.path.join(cfg.output_dir, "app"), SharedScheduler(core, core.settings.align),
                         tuple(cfg.input_size), cfg.max_upload_mb)
    return build_app(store, cfg.max_upload_mb, cfg.allowed_dir)
