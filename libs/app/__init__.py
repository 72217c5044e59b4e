"""The browser app (demo/app.py): a local web server and one page to paint masks, propagate, correct and
export, over the session API (libs/inference/session.py) and one scheduler shared by every tab."""
import functools
import os

from yacs.config import CfgNode

from .security import JSON_LIMIT, Guard, Policy, access_token, local_names
from .server import build_app
from .sessions import Limits, SessionStore
from ..inference import InferenceCore, InferenceSettings, build_backend
from ..inference.scheduler import SharedScheduler
from ..models import build_model
from ..utils.device import resolve_device

__all__ = ["build_server_app"]
APP_SLOTS = 4       # browser tabs propagating at once in one batch (more with batch_videos)


def build_server_app(cfg: CfgNode) -> Guard:
    """The app for `cfg`: one model (`initial`) and one scheduler shared by every session (up to
    max(APP_SLOTS, batch_videos) tabs propagate together, batched), session folders under
    `<output_dir>/app/`, the limits of the app keys, server paths inside `allowed_dir` only; behind a Guard
    (Host, Origin, body sizes, and with a non-loopback `host` the token `app.token`)."""
    device = resolve_device(cfg.gpu_id)
    backend = build_backend(cfg, build_model(cfg).to(device).eval())
    core = InferenceCore(backend, InferenceSettings.from_cfg(cfg), max(APP_SLOTS, cfg.batch_videos))
    limits = Limits(cfg.max_upload_mb, cfg.max_frames, cfg.max_pixels, cfg.max_sessions,
                    60.0 * cfg.session_idle_minutes)
    store = SessionStore(os.path.join(cfg.output_dir, "app"), SharedScheduler(core, core.settings.align),
                         tuple(cfg.input_size), limits)
    policy = Policy(local_names(cfg.host, tuple(cfg.allowed_hosts)), cfg.port, access_token(cfg.host, cfg.token),
                    functools.partial(body_limit, limits))
    return Guard(build_app(store, cfg.allowed_dir), policy)


def body_limit(limits: Limits, method: str, path: str) -> int:
    """The largest body accepted by `path`: uploads max_upload_mb (plus 1 MB: the upload handler itself
    refuses a larger file with its name), masks max_pixels, anything else small."""
    if path.endswith("/upload"):
        return (limits.max_upload_mb + 1) * 1024 * 1024
    if "/mask/" in path:
        return limits.max_pixels
    return JSON_LIMIT
