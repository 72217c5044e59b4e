"""The browser app as a security boundary: requests for another Host (DNS rebinding), changes asked by
another site's page (Origin), oversized bodies and, on a non-loopback host, requests without the token are
each refused (403/413, one log line) while the server keeps serving."""
import logging

import pytest
from starlette.testclient import TestClient

from libs.app import build_server_app
from libs.app.security import JSON_LIMIT, access_token, split_host

BASE = "http://127.0.0.1:8000"


@pytest.fixture(scope="module")
def client(tiny_checkpoint, app_config, tmp_path_factory):
    """The app on loopback (port 8000, no token)."""
    out = str(tmp_path_factory.mktemp("app-security"))
    with TestClient(build_server_app(app_config(tiny_checkpoint, out, "")), base_url=BASE) as c:
        yield c


def refused(response, status: int, words: str) -> None:
    """A refusal: the status, and a JSON error holding `words`."""
    assert response.status_code == status, (response.status_code, response.text)
    assert words in response.json()["error"], response.json()


def serving(client) -> None:
    """The server still answers a good request."""
    assert client.get("/api/config").status_code == 200


@pytest.mark.parametrize("value, expected", [
    ("127.0.0.1:8000", ("127.0.0.1", 8000)), ("[::1]:8000", ("::1", 8000)), ("LOCALHOST", ("localhost", None)),
    ("a:b:c", ("a:b:c", None)), ("x:port", ("", None)), ("[::1]junk", ("", None))])
def test_split_host(value, expected):
    """Host headers are split into name and port; malformed ones give no name."""
    assert split_host(value) == expected


@pytest.mark.parametrize("host", ["attacker.example", "attacker.example:8000", "127.0.0.1:9999", "",
                                  "127.0.0.1.nip.io:8000"])
def test_foreign_host_is_refused(client, host, caplog):
    """DNS rebinding: a request whose Host is not this server is refused before any handler runs."""
    with caplog.at_level(logging.WARNING, logger="app"):
        refused(client.get("/api/config", headers={"Host": host}), 403, "is not this server")
        refused(client.post("/api/session", headers={"Host": host}), 403, "is not this server")
    assert sum("refused" in r.getMessage() for r in caplog.records) == 2
    serving(client)


@pytest.mark.parametrize("host", ["localhost:8000", "[::1]:8000", "127.0.0.1:8000"])
def test_own_names_are_served(client, host):
    """Loopback names with the server's port are its own."""
    assert client.get("/api/config", headers={"Host": host}).status_code == 200


def test_foreign_origin_cannot_change_anything(client, caplog):
    """A cross-site POST (another page's form or fetch) is refused; the page's own Origin is served."""
    with caplog.at_level(logging.WARNING, logger="app"):
        for origin in ("http://attacker.example", "null", "http://127.0.0.1:8001", "https://127.0.0.1:8000"):
            refused(client.post("/api/session", headers={"Origin": origin}), 403, "another site")
    assert sum("Origin" in r.getMessage() for r in caplog.records) == 4
    assert client.post("/api/session", headers={"Origin": BASE}).status_code == 200
    serving(client)


def test_oversized_bodies_are_refused(client, tiny_video):
    """Bodies over each endpoint's limit: a JSON body, a streamed JSON body without a length, a mask longer
    than the frame (declared or streamed)."""
    sid = client.post("/api/session").json()["id"]
    big = b"{" + b" " * JSON_LIMIT + b"}"
    refused(client.post(f"/api/{sid}/propagate", content=big), 413, "larger than this endpoint's limit")
    refused(client.post(f"/api/{sid}/propagate", content=iter([big[:JSON_LIMIT], big[JSON_LIMIT:]])), 413,
            "larger than this endpoint's limit")
    client.post(f"/api/{sid}/upload?name=clip.mp4", content=open(tiny_video[0], "rb").read())
    pixels = 48 * 80
    refused(client.put(f"/api/{sid}/mask/0", content=bytes(pixels + 1)), 413, f"only {pixels} pixels")
    refused(client.put(f"/api/{sid}/mask/0", content=iter([bytes(pixels), b"\1"])), 413, f"only {pixels} pixels")
    assert client.put(f"/api/{sid}/mask/0", content=tiny_video[1].tobytes()).status_code == 200
    serving(client)


def test_non_loopback_host_needs_the_token(tiny_checkpoint, app_config, tmp_path, caplog):
    """With host 192.0.2.7 the token is required (query once, then the cookie); without it: 403."""
    cfg = app_config(tiny_checkpoint, str(tmp_path), "", 1, "host", "192.0.2.7", "token", "s3cret-token-0123456789")
    app = build_server_app(cfg)
    assert app.policy.token == "s3cret-token-0123456789"
    with TestClient(app, base_url="http://192.0.2.7:8000") as c:
        with caplog.at_level(logging.WARNING, logger="app"):
            refused(c.get("/"), 403, "needs its access token")
            refused(c.post("/api/session"), 403, "needs its access token")
            refused(c.get("/?token=wrong-token"), 403, "needs its access token")
        assert sum("access token" in r.getMessage() for r in caplog.records) == 3
        page = c.get("/?token=s3cret-token-0123456789")
        assert page.status_code == 200 and "stm_app_token" in page.headers["set-cookie"]
        assert c.post("/api/session").status_code == 200            # the cookie now
        c.cookies.clear()
        refused(c.post("/api/session"), 403, "needs its access token")


def test_random_token_when_none_is_given():
    """A non-loopback host without `token` gets a random one (another each start); loopback gets none."""
    first, second = access_token("0.0.0.0", ""), access_token("192.0.2.7", "")
    assert len(first) >= 24 and first != second
    assert access_token("0.0.0.0", "given-token-0123456789") == "given-token-0123456789"
    assert access_token("127.0.0.1", "given-token-0123456789") == access_token("localhost", "") == ""
