"""Segment your own video in the browser: paint the first mask, propagate, correct a frame, export.

    .venv/bin/python demo/app.py --cfg demo/demo.yaml [initial model.pth port 8000 allowed_dir videos/]

Serves one page on http://{host}:{port}/ (127.0.0.1:8000 by default; another `host` asks for the access
token printed at start). Every browser tab is its own session, its address /?session=<id>; its files are
under {output_dir}/app/<id>/ (frame cache, painted masks, results, written as they come), so reopening the
address, after a restart too, brings the work back.
"""
import logging
import os
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from libs.errors import VOSError  # noqa: E402
from libs.runner import check_writable  # noqa: E402
from libs.runner.cli import parse_cfg, run_main  # noqa: E402
from libs.utils.logging import setup_logging  # noqa: E402

log = logging.getLogger("app")
EXAMPLES = """\
  .venv/bin/python demo/app.py --cfg demo/demo.yaml initial quickstart/checkpoint/epoch-0006.pth input_size '[48, 84]'
      then open http://127.0.0.1:8000/ in a browser
  .venv/bin/python demo/app.py --cfg demo/demo.yaml initial stm_cycle_r50.pth arch resnet50 allowed_dir ~/videos"""
KEYS = (("initial", "trained weights (train.py checkpoints also set arch/keydim/valdim)"),
        ("host port", "where the server listens (127.0.0.1 8000: this machine only)"),
        ("max_upload_mb", "largest upload accepted, in MB"),
        ("max_frames max_pixels", "longest video (frames) and largest frame (pixels) the app opens"),
        ("max_sessions", "sessions held in memory (the others stay on disk until their page returns)"),
        ("token allowed_hosts", "access token with a non-loopback host ('' = random); more Host names"),
        ("allowed_dir", "server folder whose videos may be opened by path ('' = uploads only)"),
        ("output_dir", "session files go to <output_dir>/app/<session>/"),
        ("loop", "test-time correction iterations (0 = off, faster)"),
        ("gpu_id", "CUDA device, -1 for the CPU"))


def check_port(host: str, port: int) -> None:
    """A VOSError naming the key to change when `host`:`port` cannot be listened on."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as err:
            raise VOSError(f"cannot listen on {host}:{port} ({err.strerror}); choose another `port` "
                           "(or `host`)") from None


def main() -> None:
    """Load the model once and serve the page until Ctrl-C."""
    import uvicorn

    from libs.app import build_server_app

    cfg = parse_cfg("Segment your own video in the browser: paint masks, propagate, correct, export.",
                    examples=EXAMPLES, keys=KEYS)
    setup_logging()
    check_port(cfg.host, cfg.port)
    check_writable(os.path.join(cfg.output_dir, "app"), "output_dir")
    if cfg.allowed_dir and not os.path.isdir(cfg.allowed_dir):
        raise VOSError(f"allowed_dir {cfg.allowed_dir!r} is not a folder; give an existing folder or ''")
    if not cfg.initial:
        log.warning("`initial` is empty: the network is UNTRAINED and its masks are meaningless; "
                    "pass `initial /path/to/model.pth`")
    app = build_server_app(cfg)
    token = app.policy.token
    if token:
        log.warning("host %s is not loopback: other machines can reach this server, so it asks for its access "
                    "token (in the URL below; keep it secret)", cfg.host)
    address = socket.gethostname() if cfg.host in ("0.0.0.0", "::") else cfg.host      # as Jupyter prints it
    address = f"[{address}]" if ":" in address else address
    log.info("open http://%s:%d/%s in a browser (Ctrl-C stops the server)", address, cfg.port,
             f"?token={token}" if token else "")
    uvicorn.run(app, host=cfg.host, port=cfg.port, log_level="warning", log_config=None)
    log.info("server stopped")


if __name__ == "__main__":
    run_main(main)
