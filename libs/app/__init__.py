"""The browser app (demo/app.py): a local web server and one page to paint masks, propagate, correct and
export, over the Python API (libs/api.py) and the one inference engine."""
import functools
import os

from starlette.applications import Starlette
from yacs.config import CfgNode

from libs.app.server import build_app
from libs.app.sessions import SessionStore
from libs.engine import build_engine
from libs.models import build_model
from libs.utils.device import resolve_device

__all__ = ["build_server_app"]


def build_server_app(cfg: CfgNode) -> Starlette:
    """The app for `cfg`: one model (`initial`) shared by every session, session folders under
    `<output_dir>/app/`, uploads up to `max_upload_mb`, server paths inside `allowed_dir` only."""
    device = resolve_device(cfg.gpu_id)
    model = build_model(cfg).to(device).eval()
    store = SessionStore(os.path.join(cfg.output_dir, "app"), functools.partial(build_engine, cfg, model),
                         tuple(cfg.input_size), device, cfg.max_upload_mb)
    return build_app(store, cfg.max_upload_mb, cfg.allowed_dir)
