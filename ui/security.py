"""What the server trusts (issue 12 item 4): its own host names, its own origin, a bounded number
of login guesses; HTTPS by RAG_SSL_CERTFILE/RAG_SSL_KEYFILE; no public share link without a login.

Gradio's own CORS middleware grants any origin once the Host header is not a localhost name, which
is exactly what a DNS-rebinding page sends (`Host: rebind.evil.example`, resolving to 127.0.0.1).
`Guard` therefore sits outside every Gradio middleware (`guarded_app`, passed to launch) and
refuses, before anything else runs:
  - a Host header that is not the bind address, localhost, the machine's name, an IP address or a
    name in RAG_ALLOWED_HOSTS (400): a rebinding page can only send its own domain name;
  - an Origin header that is not the server's own origin (or a name in RAG_ALLOWED_HOSTS) (403):
    browsers send Origin on every cross-origin request and every POST, so a foreign page can
    neither read the API nor post files into the upload folder. Scripts send no Origin;
  - a POST /login from a client address or for a user name that failed too often (429).
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional
from urllib.parse import urlsplit

LOGIN_BODY_LIMIT = 64 * 1024  # a login form is a few dozen bytes
# Gradio's login page shows nothing on a 429 (it reacts to 400 and 200 only): it says so up front.
LOGIN_NOTE = "After several wrong passwords, logins pause for a while: wait a minute and try again."
LOCKOUT_CAP = 3600.0  # a lockout doubles each time, up to an hour
_MAX_KEYS = 10_000  # beyond this many tracked clients and names, idle ones are forgotten


# ---- host names and origins ------------------------------------------------------------------

def _hostname(netloc: str) -> Optional[str]:
    """'Example.org:7860' -> 'example.org'; '[::1]:7860' -> '::1'; None when it is not a host."""
    try:
        parts = urlsplit(f"//{netloc}")
        name, _ = parts.hostname, parts.port  # .port raises on a bad port
    except ValueError:
        return None
    return name.rstrip(".") if name else None


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        return False


class HostPolicy:
    """The names this server answers to. An IP address is always accepted: DNS rebinding works
    only through a name the attacker's DNS controls, so a literal address is the server itself."""

    def __init__(self, bind_host: str, allowed: str = ""):
        entries = [e.strip().lower().rstrip(".") for e in allowed.split(",") if e.strip()]
        self.any_host = "*" in entries
        self.listed = {e for e in entries if e != "*"}
        own = {"localhost", bind_host.strip("[]").lower(), socket.gethostname().lower()}
        self.names = {n for n in own if n and n not in ("0.0.0.0", "::")} | self.listed
        self._lock = threading.Lock()

    def allow(self, name: str) -> None:
        """A name learnt after start (the share link's host)."""
        with self._lock:
            self.names = self.names | {name.lower()}
            self.listed = self.listed | {name.lower()}

    def host_ok(self, host_header: str) -> bool:
        if self.any_host:
            return True
        name = _hostname(host_header)
        return name is not None and (_is_ip(name) or self._named(name, self.names))

    def origin_ok(self, origin: str, host_header: str, scheme: str) -> bool:
        """Same origin as the page (host and port of the Host header), or a name listed in
        RAG_ALLOWED_HOSTS (a reverse proxy's public name). "null" (sandboxed frames, files) is foreign."""
        try:
            parts = urlsplit(origin)
            name, port = parts.hostname, parts.port or _default_port(parts.scheme)
            here = urlsplit(f"//{host_header}")
            here_port = here.port or _default_port(scheme)
        except ValueError:
            return False
        if not name or parts.scheme not in ("http", "https"):
            return False
        name = name.rstrip(".")
        if parts.scheme == scheme and name == (here.hostname or "").rstrip(".") and port == here_port:
            return True
        return self._named(name, self.listed)

    @staticmethod
    def _named(name: str, names: set[str]) -> bool:
        return name in names or any(n.startswith(".") and (name.endswith(n) or name == n[1:]) for n in names)


def _default_port(scheme: str) -> int:
    return 443 if scheme in ("https", "wss") else 80


# ---- login attempts ----------------------------------------------------------------------------

@dataclass
class _Record:
    failures: deque = field(default_factory=deque)  # times of failed (or pending) attempts
    locked_until: float = 0.0
    lockouts: int = 0  # lockouts so far: each one lasts twice as long as the last
    last_seen: float = 0.0


class LoginThrottle:
    """Failed logins counted per key (a client address, a user name). An attempt counts as failed
    from the moment it starts, so parallel guesses are counted too; a success clears its keys."""

    def __init__(self, attempts: int, window: float, clock: Callable[[], float] = time.monotonic):
        self.attempts, self.window, self.clock = attempts, window, clock
        self._records: dict[str, _Record] = {}
        self._lock = threading.Lock()

    def wait(self, keys: list[str]) -> float:
        """Seconds until these keys may try again; 0 means now."""
        now = self.clock()
        with self._lock:
            return max((max(0.0, r.locked_until - now) for k in keys if (r := self._records.get(k))), default=0.0)

    def begin(self, keys: list[str]) -> float:
        """Count an attempt; returns how long to hold its answer should it fail (growing with the
        failures so far: 0.25 s, 0.5 s, 1 s ... at most 4 s)."""
        now = self.clock()
        delay = 0.0
        with self._lock:
            self._forget_idle(now)
            for key in keys:
                r = self._records.setdefault(key, _Record())
                while r.failures and r.failures[0] <= now - self.window:
                    r.failures.popleft()
                r.failures.append(now)
                r.last_seen = now
                delay = max(delay, min(0.25 * 2 ** (len(r.failures) - 1), 4.0))
                if len(r.failures) >= self.attempts:
                    r.locked_until = now + min(self.window * 2 ** r.lockouts, max(LOCKOUT_CAP, self.window))
                    r.lockouts += 1
                    r.failures.clear()
        return delay

    def succeeded(self, keys: list[str]) -> None:
        with self._lock:
            for key in keys:
                self._records.pop(key, None)

    def _forget_idle(self, now: float) -> None:
        if len(self._records) < _MAX_KEYS:
            return
        idle = max(LOCKOUT_CAP, self.window)
        for key in [k for k, r in self._records.items() if r.locked_until < now and r.last_seen < now - idle]:
            del self._records[key]


# ---- the ASGI middleware -------------------------------------------------------------------

async def _plain(send, status: int, text: str, headers: Optional[dict[str, str]] = None) -> None:
    body = text.encode()
    raw = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class Guard:
    """ASGI middleware: Host, Origin and login checks in front of the whole app."""

    def __init__(self, app, hosts: HostPolicy, throttle: Optional[LoginThrottle]):
        self.app, self.hosts, self.throttle = app, hosts, throttle

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        refusal = self._refusal(scope, headers)
        if refusal is not None:
            status, text = refusal
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
            else:
                await _plain(send, status, text)
            return
        if (self.throttle is not None and scope["type"] == "http" and scope.get("method") == "POST"
                and scope.get("path", "").rstrip("/").endswith("/login")):
            await self._login(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _refusal(self, scope, headers: dict[str, str]) -> Optional[tuple[int, str]]:
        host = headers.get("host", "")
        if not self.hosts.host_ok(host):
            return 400, "This server does not answer to that host name; add it to RAG_ALLOWED_HOSTS.\n"
        origin = headers.get("origin")
        scheme = {"wss": "https", "ws": "http"}.get(scope.get("scheme", "http"), scope.get("scheme", "http"))
        if origin is not None and not self.hosts.origin_ok(origin, host, scheme):
            return 403, "Requests from other sites are refused.\n"
        return None

    async def _login(self, scope, receive, send) -> None:
        assert self.throttle is not None
        body, more = b"", True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > LOGIN_BODY_LIMIT:
                await _plain(send, 413, "Login form too large.\n")
                return
        client = (scope.get("client") or ("unknown", 0))[0]
        keys = [f"client {client}"]
        user = await _form_user(scope, body)
        if user:
            keys.append(f"user {user}")
        wait = self.throttle.wait(keys)
        if wait > 0:
            retry = str(int(wait) + 1)
            await _plain(send, 429, f"Too many failed logins; try again in {retry} s.\n", {"Retry-After": retry})
            return
        delay = self.throttle.begin(keys)
        await self.app(scope, _replay(body, receive), _watch_login(send, self.throttle, keys, delay))


def _replay(body: bytes, then=None):
    """A receive() that gives the body read already, then (if given) the client's own receive."""
    sent = False

    async def receive():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        if then is None:
            return {"type": "http.disconnect"}
        return await then()

    return receive


def _watch_login(send, throttle: LoginThrottle, keys: list[str], delay: float):
    async def watched(message):
        if message["type"] == "http.response.start":
            if message["status"] == 200:
                throttle.succeeded(keys)
            else:
                await asyncio.sleep(delay)  # a failure is answered later each time
        await send(message)

    return watched


async def _form_user(scope, body: bytes) -> str:
    """The user name of a login form (url-encoded or multipart), as Gradio reads it."""
    from starlette.requests import Request

    try:
        form = await Request(scope, _replay(body)).form()
        user = form.get("username")
    except Exception:  # noqa: BLE001 - a malformed form is Gradio's to refuse
        return ""
    return user.strip() if isinstance(user, str) else ""


def guarded_app(hosts: HostPolicy, throttle: Optional[LoginThrottle]):
    """A Gradio App whose outermost layer is Guard, for `launch(_app=...)`: Gradio adds its own
    middleware (CORS among them) to the app it is given, and only this keeps Guard outside them
    from the first request on."""
    from gradio.routes import App, ORJSONResponse

    class GuardedApp(App):
        def build_middleware_stack(self):
            return Guard(super().build_middleware_stack(), hosts, throttle)

    return GuardedApp(default_response_class=ORJSONResponse)


# ---- launch options ----------------------------------------------------------------------------

def share_requested() -> bool:
    """GRADIO_SHARE=True, read as Gradio reads it; the app passes share= itself to decide first."""
    return os.environ.get("GRADIO_SHARE", "").strip().lower() == "true"


def share_warning(share: bool, auth) -> Optional[str]:
    """A public link publishes the documents: refused without RAG_AUTH, warned about with it."""
    if not share:
        return None
    if auth is None:
        raise ValueError(
            "GRADIO_SHARE=True asks for a public gradio.live link: anyone who has it could read your "
            "documents and change them. Set RAG_AUTH=user:password first, or unset GRADIO_SHARE."
        )
    return ("GRADIO_SHARE=True: the public link printed below lets anyone who has it reach the login page "
            "of this server and, with the RAG_AUTH password, your documents. Unset GRADIO_SHARE to stop it.")


def tls_options(settings: Any) -> dict[str, Any]:
    """launch() arguments for HTTPS; {} when neither file is set."""
    cert, key = settings.ssl_certfile, settings.ssl_keyfile
    if cert is None and key is None:
        return {}
    if cert is None or key is None:
        raise ValueError("HTTPS needs both RAG_SSL_CERTFILE and RAG_SSL_KEYFILE")
    for name, path in (("RAG_SSL_CERTFILE", cert), ("RAG_SSL_KEYFILE", key)):
        if not Path(path).is_file():
            raise FileNotFoundError(f"{name}: no such file: {path}")
    _check_pem(Path(cert), Path(key))
    # ssl_verify=False: Gradio checks its own start-up over the loopback URL, where a certificate
    # for the server's public name (or a self-signed one) does not verify; browsers still check it.
    return {"ssl_certfile": str(cert), "ssl_keyfile": str(key), "ssl_verify": False}


def _check_pem(cert: Path, key: Path) -> None:
    import ssl

    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(str(cert), str(key))
    except (ssl.SSLError, OSError) as exc:
        raise ValueError(f"cannot use RAG_SSL_CERTFILE {cert} with RAG_SSL_KEYFILE {key}: {exc}") from None

