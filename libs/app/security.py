"""The browser app's door: only requests addressed to this server (its Host), state changes only from its
own page (its Origin), every body bounded, and with a non-loopback `host` an access token (as Jupyter's).
A refusal is one JSON error (403 or 413) and one log line; the server keeps serving."""
import hmac
import json
import logging
import secrets
import socket
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from typing import Callable, FrozenSet, Optional, Tuple
from urllib.parse import parse_qs, urlsplit

from .media import TooLarge

log = logging.getLogger("app")
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
WILDCARD = frozenset({"0.0.0.0", "::", ""})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
COOKIE = "stm_app_token"
JSON_LIMIT = 256 * 1024          # bytes of any body that is neither an upload nor a mask
Limit = Callable[[str, str], int]


def is_loopback(host: str) -> bool:
    """Whether `host` (a listen address) reaches this machine only."""
    return host in LOOPBACK or host.startswith("127.")


def local_names(host: str, extra: Tuple[str, ...] = ()) -> FrozenSet[str]:
    """The host names a request to a server listening on `host` may carry: loopback names, `host` itself
    (with a wildcard `host`: this machine's name and addresses), and `extra` (config `allowed_hosts`)."""
    names = set(LOOPBACK) | {h.lower() for h in extra}
    if host in WILDCARD:
        names |= {socket.gethostname().lower(), socket.getfqdn().lower()}
        try:
            names |= {info[4][0] for info in socket.getaddrinfo(socket.gethostname(), None)}
        except OSError:
            pass
    else:
        names.add(host.lower())
    return frozenset(names)


def split_host(value: str) -> Tuple[str, Optional[int]]:
    """'[::1]:8000' -> ('::1', 8000), 'localhost' -> ('localhost', None); ('', None) when malformed."""
    value = value.strip().lower()
    if value.startswith("["):
        name, _, rest = value[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ("" if not rest else "x")
    else:
        name, _, port = value.partition(":") if value.count(":") == 1 else (value, "", "")
    if port and not port.isdigit():
        return "", None
    return name, int(port) if port else None


@dataclass(frozen=True)
class Policy:
    """Who may talk to the server: its host names and port, and the token ('' = none needed)."""

    names: FrozenSet[str]
    port: int                     # 0: any port (the server was asked for any free one)
    token: str = ""
    limit: Limit = field(default=lambda method, path: JSON_LIMIT)

    def host_ok(self, value: str) -> bool:
        """Whether a Host header (or an Origin's host part) names this server."""
        name, port = split_host(value)
        return name in self.names and (self.port == 0 or (port or 80) == self.port)

    def origin_ok(self, origin: str) -> bool:
        """Whether an Origin header is this server's own page."""
        parts = urlsplit(origin)
        return parts.scheme == "http" and self.host_ok(parts.netloc)

    def token_ok(self, query: str, cookie: str) -> Tuple[bool, bool]:
        """(token accepted, it came in the query: set the cookie) for a request's query string and cookie."""
        if not self.token:
            return True, False
        given = parse_qs(query).get("token", [""])[0]
        if given and hmac.compare_digest(given, self.token):
            return True, True
        jar = SimpleCookie()
        try:
            jar.load(cookie)
        except Exception:            # a malformed cookie header is no token
            return False, False
        held = jar[COOKIE].value if COOKIE in jar else ""
        return bool(held) and hmac.compare_digest(held, self.token), False


def access_token(host: str, token: str) -> str:
    """The token a server listening on `host` asks for: none on loopback, else `token` or a random one."""
    return "" if is_loopback(host) else (token or secrets.token_urlsafe(24))


class Guard:
    """ASGI middleware applying a Policy before the app sees a request, and bounding its body."""

    def __init__(self, app, policy: Policy):
        self.app, self.policy = app, policy
        self.state = app.state                 # the wrapped app's state (its SessionStore)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        method, path = scope["method"], scope["path"]
        reason, status = self.refusal(method, path, headers, scope.get("query_string", b"").decode("latin-1"))
        if reason:
            log.warning("refused %s %s from %s: %s", method, path, (scope.get("client") or ("?",))[0], reason)
            await _json_error(send, status, reason)
            return
        limit = self.policy.limit(method, path)
        size = headers.get("content-length", "")
        if size.isdigit() and int(size) > limit:
            log.warning("refused %s %s: body of %s bytes over the limit of %d", method, path, size, limit)
            await _json_error(send, 413, f"the request body is larger than this endpoint's limit of {limit} bytes")
            return
        _, set_cookie = self.policy.token_ok(scope.get("query_string", b"").decode("latin-1"),
                                             headers.get("cookie", ""))
        await self.app(scope, _bounded(receive, limit), _with_cookie(send, self.policy.token) if set_cookie else send)

    def refusal(self, method: str, path: str, headers: dict, query: str) -> Tuple[str, int]:
        """('', 0) for an acceptable request, else (why it is refused, HTTP status)."""
        host = headers.get("host", "")
        if not self.policy.host_ok(host):
            return f"Host {host!r} is not this server (a page of another site, or DNS rebinding)", 403
        origin = headers.get("origin")
        if method not in SAFE_METHODS and origin is not None and not self.policy.origin_ok(origin):
            return f"a change requested by the page of another site (Origin {origin!r})", 403
        if not self.policy.token_ok(query, headers.get("cookie", ""))[0]:
            return ("this server needs its access token: open the URL with ?token=... that it printed at "
                    "start"), 403
        return "", 0


def _bounded(receive, limit: int):
    """`receive` that raises TooLarge once the body passes `limit` bytes."""
    seen = 0

    async def wrapped():
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise TooLarge(f"the request body is larger than this endpoint's limit of {limit} bytes")
        return message
    return wrapped


def _with_cookie(send, token: str):
    """`send` that adds the token cookie to the response (the page then needs no token in its URL)."""
    async def wrapped(message):
        if message["type"] == "http.response.start":
            cookie = f"{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict"
            message = dict(message, headers=list(message.get("headers", [])) + [(b"set-cookie", cookie.encode())])
        await send(message)
    return wrapped


async def _json_error(send, status: int, text: str) -> None:
    """Send a JSON {"error": text} response."""
    body = json.dumps({"error": text}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
