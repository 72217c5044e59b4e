"""demo/app.py's own checks, in process: a busy port and a missing allowed_dir stop it with one line."""
import importlib.util
import os
import socket
import sys

import pytest

from libs.errors import VOSError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def app_script():
    """demo/app.py loaded as a module (its main() is not run)."""
    spec = importlib.util.spec_from_file_location("demo_app", os.path.join(ROOT, "demo", "app.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_busy_port_is_one_line(app_script):
    """A port another program listens on is named, with the key to change."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(VOSError, match=rf"cannot listen on 127.0.0.1:{port} .*choose another `port`"):
            app_script.check_port("127.0.0.1", port)


@pytest.mark.parametrize("opts, message", [
    (["allowed_dir", "no/such/folder"], "allowed_dir 'no/such/folder' is not a folder"),
    (["port", "70000"], "config key 'port' must be in 0..65535"),
    (["max_upload_mb", "0"], "config key 'max_upload_mb' must be positive"),
])
def test_bad_keys_stop_before_serving(app_script, monkeypatch, tmp_path, opts, message):
    """Bad app keys stop the script with one error naming the key, before any model is built."""
    argv = ["demo/app.py", "--cfg", os.path.join(ROOT, "demo", "demo.yaml"), "port", "0",
            "output_dir", str(tmp_path)] + opts
    monkeypatch.setattr(sys, "argv", argv)
    monkeypatch.setattr(app_script, "setup_logging", lambda: None)      # leave pytest's log capture alone
    with pytest.raises(VOSError, match=message):
        app_script.main()
