"""The server trusts only its own names and the store heals (issue 12 items 4 and 6), over real
HTTP on loopback against the running UI server and through the real `rag` command:
  - a foreign Host header (DNS rebinding) is refused, the server's own names are served;
  - cross-origin browser requests, uploads included, are refused and get no CORS permission;
  - uploads leave Gradio's temporary folder after RAG_UPLOAD_CACHE_SECONDS;
  - login guesses are limited per client address and per user name (429), the right password
    works again after the window, and the password never reaches the console;
  - HTTPS with a self-signed certificate (made by the openssl command);
  - GRADIO_SHARE=True is refused without RAG_AUTH and warned about with it;
  - a damaged chroma.sqlite3 gives one line on every command, `rag index --rebuild` moves it aside;
    a store path that is a file is a one-line error; a read-only store answers and refuses indexing.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from rag import RAG
from rag.cli import main

from .conftest import ROOT, free_port, rag_cli

PASSWORD = "Corr3ct-Horse-Battery"
DOC = ("The zorblax revenue in 2023 was 12 million dollars according to the annual report.\n"
       "The zorblax company was founded in Oslo in 1999 by two engineers.\n")
QUESTION = "What was the zorblax revenue in 2023?"


@pytest.fixture(scope="module")
def tiny_docs(tmp_path_factory) -> Path:
    docs = tmp_path_factory.mktemp("tiny") / "docs"
    docs.mkdir()
    (docs / "zorblax.txt").write_text(DOC, encoding="utf-8")
    return docs


def _start(docs: Path, store: Path, **settings):
    from ui.app import launch

    bot = RAG(docs_dir=docs, store_dir=store, generator="extractive", **settings)
    demo, job, url = launch(bot, host="127.0.0.1", port=None, quiet=True)
    deadline = time.monotonic() + 120
    while job.running:
        assert time.monotonic() < deadline, "indexing never finished"
        time.sleep(0.05)
    assert job.error is None, job.error
    return demo, url


@pytest.fixture(scope="module")
def open_server(tiny_docs, tmp_path_factory):
    """No login; uploads leave the temporary folder after one second; one extra name allowed."""
    demo, url = _start(tiny_docs, tmp_path_factory.mktemp("open") / "store", upload_cache_seconds=1,
                       allowed_hosts="rag.example.org, .corp.example")
    yield url
    demo.close()


def _request(url: str, method: str = "GET", path: str = "/", headers=None, body=None, source=None,
             context=None):
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "https":
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(parts.hostname, parts.port, timeout=30,
                                                                       context=context)
    else:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30,
                                          source_address=(source, 0) if source else None)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


# ---- Host and Origin ----------------------------------------------------------------------------

@pytest.mark.slow
def test_foreign_host_header_is_refused_own_names_are_served(open_server):
    port = urllib.parse.urlsplit(open_server).port
    for path in ("/", "/config", "/gradio_api/info"):
        status, headers, body = _request(open_server, path=path, headers={"Host": f"rebind.evil.example:{port}"})
        assert status == 400 and b"RAG_ALLOWED_HOSTS" in body, (path, status, body)
        assert "access-control-allow-origin" not in headers
    # the page a rebinding attacker wants, with its own origin: refused too, and no CORS grant
    status, headers, _ = _request(open_server, path="/config", headers={
        "Host": f"rebind.evil.example:{port}", "Origin": f"http://rebind.evil.example:{port}"})
    assert status == 400 and "access-control-allow-origin" not in headers
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}", f"LOCALHOST:{port}",
                 f"rag.example.org:{port}", f"team.corp.example:{port}", f"10.1.2.3:{port}"):
        status, _, body = _request(open_server, path="/config", headers={"Host": host})
        assert status == 200 and b"components" in body, (host, status)
    for host in ("", "evil.example", f"rag.example.org.evil.example:{port}", f"corp.example.evil:{port}"):
        assert _request(open_server, path="/config", headers={"Host": host})[0] == 400, host


@pytest.mark.slow
def test_cross_origin_requests_and_uploads_are_refused(open_server):
    own = open_server  # http://127.0.0.1:PORT
    port = urllib.parse.urlsplit(own).port
    for origin in ("http://evil.example", "null", f"http://127.0.0.1:{port + 1}", f"https://127.0.0.1:{port}"):
        status, headers, _ = _request(own, path="/config", headers={"Origin": origin})
        assert status == 403 and "access-control-allow-origin" not in headers, origin
        status, headers, _ = _request(own, "OPTIONS", "/gradio_api/upload", headers={
            "Origin": origin, "Access-Control-Request-Method": "POST"})
        assert status == 403 and "access-control-allow-origin" not in headers, origin
    for origin in (own, "https://rag.example.org", "http://team.corp.example:8080"):  # its own, and listed names
        status, _, _ = _request(own, path="/config", headers={"Origin": origin})
        assert status == 200, origin

    body, ctype = _multipart("planted.txt", b"uploaded from another site")
    status, _, _ = _request(own, "POST", "/gradio_api/upload", {"Origin": "http://evil.example",
                                                                "Content-Type": ctype}, body)
    assert status == 403
    status, _, got = _request(own, "POST", "/gradio_api/upload", {"Origin": own, "Content-Type": ctype}, body)
    assert status == 200
    (saved,) = json.loads(got)
    assert Path(saved).read_bytes() == b"uploaded from another site"  # the page's own upload works

    # ... and leaves Gradio's temporary folder after RAG_UPLOAD_CACHE_SECONDS (1 s here)
    deadline = time.monotonic() + 20
    while Path(saved).exists():
        assert time.monotonic() < deadline, f"{saved} was never deleted"
        time.sleep(0.2)


def _multipart(name: str, data: bytes) -> tuple[bytes, str]:
    boundary = "----rag-test-boundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{name}\"\r\n"
            f"Content-Type: text/plain\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


# ---- login attempts ------------------------------------------------------------------------------

def _login(url: str, user: str, password: str, source: str = "127.0.0.1"):
    body = urllib.parse.urlencode({"username": user, "password": password})
    return _request(url, "POST", "/login", {"Content-Type": "application/x-www-form-urlencoded"}, body, source)


@pytest.mark.slow
def test_login_guesses_are_limited_per_client_and_per_user(tiny_docs, tmp_path, capfd):
    demo, url = _start(tiny_docs, tmp_path / "store", auth=f"alice:{PASSWORD}", login_attempts=3,
                       login_window=3)
    try:
        for guess in ("password", "123456", "letmein"):
            assert _login(url, "alice", guess)[0] == 400
        status, headers, body = _login(url, "alice", PASSWORD)  # the right password, too late
        assert status == 429 and int(headers["retry-after"]) >= 1 and b"try again" in body
        # the name is locked from every address; another name from another address is not
        assert _login(url, "alice", PASSWORD, source="127.0.0.2")[0] == 429
        assert _login(url, "bob", "guess", source="127.0.0.3")[0] == 400
        # the address is locked for every name
        for user in ("carol", "dave", "erin"):
            assert _login(url, user, "guess", source="127.0.0.4")[0] == 400
        assert _login(url, "frank", "guess", source="127.0.0.4")[0] == 429

        time.sleep(3.2)  # RAG_LOGIN_WINDOW
        status, headers, body = _login(url, "alice", PASSWORD)
        assert status == 200 and json.loads(body) == {"success": True} and "set-cookie" in headers
        from gradio_client import Client  # scripted use with the login still works

        answer = Client(url, auth=("alice", PASSWORD), verbose=False).predict(QUESTION, 0, "", [], api_name="/ask")
        assert answer["answered"] and "12 million" in answer["answer"]
    finally:
        demo.close()
    out, err = capfd.readouterr()
    assert PASSWORD not in out + err and "letmein" not in out + err


def test_lockouts_grow_and_a_success_clears_them():
    from ui.security import LoginThrottle

    now = [1000.0]
    throttle = LoginThrottle(attempts=2, window=10, clock=lambda: now[0])
    keys = ["client 10.0.0.1", "user alice"]
    delays = [throttle.begin(keys), throttle.begin(keys)]
    assert delays == [0.25, 0.5]  # each failure answered later than the last
    assert throttle.wait(keys) == 10 and throttle.wait(["user alice"]) == 10
    assert throttle.wait(["client 10.0.0.2", "user bob"]) == 0
    now[0] += 10
    assert throttle.wait(keys) == 0
    throttle.begin(keys)
    throttle.begin(keys)
    assert throttle.wait(keys) == 20  # the second lockout lasts twice as long
    now[0] += 20
    throttle.begin(keys)  # the right password now
    throttle.succeeded(keys)
    assert throttle.wait(keys) == 0
    throttle.begin(keys)
    assert throttle.wait(keys) == 0  # one failure after a success: not locked


def test_login_user_name_is_read_from_both_form_encodings():
    """Gradio's login page posts multipart FormData, scripts post url-encoded forms: the per-name
    count must see the name in both."""
    import asyncio

    from ui.security import _form_user

    def scope(ctype: str) -> dict:
        return {"type": "http", "method": "POST", "path": "/login", "headers": [(b"content-type", ctype.encode())]}

    boundary = "xYz"
    multipart = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"username\"\r\n\r\n alice \r\n"
                 f"--{boundary}\r\nContent-Disposition: form-data; name=\"password\"\r\n\r\npw\r\n"
                 f"--{boundary}--\r\n").encode()
    assert asyncio.run(_form_user(scope(f"multipart/form-data; boundary={boundary}"), multipart)) == "alice"
    assert asyncio.run(_form_user(scope("application/x-www-form-urlencoded"), b"username=bob&password=x")) == "bob"
    assert asyncio.run(_form_user(scope("application/json"), b"{}")) == ""


# ---- TLS and share links -------------------------------------------------------------------------

def _self_signed(folder: Path) -> tuple[Path, Path]:
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                    "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True, timeout=60)
    return cert, key


@pytest.mark.slow
def test_https_with_a_self_signed_certificate(tiny_docs, tmp_path):
    cert, key = _self_signed(tmp_path)
    demo, url = _start(tiny_docs, tmp_path / "store", ssl_certfile=cert, ssl_keyfile=key)
    try:
        assert url.startswith("https://127.0.0.1:")
        trusted = ssl.create_default_context(cafile=str(cert))
        status, _, body = _request(url, path="/config", context=trusted)
        assert status == 200 and b"components" in body
        with pytest.raises(ssl.SSLError):  # a client that does not trust this certificate refuses it
            _request(url, path="/config", context=ssl.create_default_context())
        with pytest.raises((http.client.HTTPException, ConnectionError)):  # no plain HTTP on that port
            _request(url.replace("https://", "http://"), path="/config")
        from gradio_client import Client

        client = Client(url, verbose=False, ssl_verify=False)
        assert "12 million" in client.predict(QUESTION, 0, "", [], api_name="/ask")["answer"]
    finally:
        demo.close()


def test_tls_settings_are_checked_before_start(tmp_path):
    from ui.security import tls_options

    cert, key = _self_signed(tmp_path)
    with pytest.raises(ValueError, match="both RAG_SSL_CERTFILE and RAG_SSL_KEYFILE"):
        tls_options(RAG(ssl_certfile=cert).settings)
    with pytest.raises(FileNotFoundError, match="RAG_SSL_KEYFILE"):
        tls_options(RAG(ssl_certfile=cert, ssl_keyfile=tmp_path / "missing.pem").settings)
    with pytest.raises(ValueError, match="cannot use RAG_SSL_CERTFILE"):
        tls_options(RAG(ssl_certfile=key, ssl_keyfile=cert).settings)  # swapped
    assert tls_options(RAG(ssl_certfile=cert, ssl_keyfile=key).settings)["ssl_certfile"] == str(cert)


@pytest.mark.slow
def test_share_link_refused_without_login(tiny_docs, tmp_path):
    """The real `python -m ui` with GRADIO_SHARE=True and no RAG_AUTH: refused before serving."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAG_", "OPENAI_", "CHROMA_", "GRADIO_"))}
    env.update({"GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1", "GRADIO_SHARE": "True"})
    r = subprocess.run([sys.executable, "-m", "ui", "--docs", str(tiny_docs), "--store", str(tmp_path / "store"),
                        "--port", str(port)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "GRADIO_SHARE=True" in r.stderr and "RAG_AUTH" in r.stderr and "public" in r.stderr
    assert "running at" not in r.stdout
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)


def test_share_link_with_login_is_warned_about(monkeypatch):
    """With RAG_AUTH the link is made (not here: no network), after a warning saying what it exposes."""
    from ui.security import share_requested, share_warning

    monkeypatch.setenv("GRADIO_SHARE", "True")
    assert share_requested()
    warning = share_warning(True, ("alice", PASSWORD))
    assert "public link" in warning and "documents" in warning and PASSWORD not in warning
    monkeypatch.setenv("GRADIO_SHARE", "false")
    assert not share_requested() and share_warning(False, None) is None


def test_host_policy_rules():
    from ui.security import HostPolicy

    policy = HostPolicy("0.0.0.0", "Rag.Example.org., .corp.example")
    assert all(policy.host_ok(h) for h in ("localhost", "rag.example.org:443", "a.b.corp.example", "corp.example",
                                           "192.168.1.5:7860", "[fe80::1]:80"))
    assert not any(policy.host_ok(h) for h in ("0.0.0.0.evil", "example.org", "x:notaport", "", "[::1"))
    assert policy.origin_ok("http://localhost:7860", "localhost:7860", "http")
    assert policy.origin_ok("https://rag.example.org", "127.0.0.1:7860", "http")  # a proxy's public name
    assert not policy.origin_ok("http://localhost:7861", "localhost:7860", "http")
    assert not policy.origin_ok("http://localhost", "localhost:7860", "http")
    assert policy.origin_ok("https://x.test", "x.test", "https")  # default ports
    assert HostPolicy("127.0.0.1", "*").host_ok("anything.example")


# ---- stores that heal ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def indexed_template(tiny_docs, tmp_path_factory) -> Path:
    """Indexed by the real command in another process: a store this process has opened stays open
    in Chroma's memory, and would not see its file damaged."""
    store = tmp_path_factory.mktemp("template") / "store"
    r = rag_cli("index", "--docs", str(tiny_docs), "--store", str(store))
    assert r.returncode == 0 and "1 added" in r.stdout, r.stderr
    return store


@pytest.fixture
def built_store(tiny_docs, indexed_template, tmp_path) -> tuple[Path, Path]:
    store = tmp_path / "store"
    shutil.copytree(indexed_template, store)
    return tiny_docs, store


def _cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.slow
def test_damaged_database_is_one_line_everywhere_and_rebuild_moves_it_aside(built_store, capsys):
    docs, store = built_store
    db = store / "chroma" / "chroma.sqlite3"
    db.write_bytes(os.urandom(db.stat().st_size))
    where = ["--docs", str(docs), "--store", str(store)]
    for command in (["status"], ["ask", QUESTION, "--generator", "extractive"], ["index"]):
        code, out, err = _cli(capsys, *command, *where)
        assert code == 1 and out == "", command
        assert err.count("\n") == 1 and err.startswith(f"error: the index in {store} cannot be opened"), err
        assert "rag index --rebuild" in err and "file is not a database" in err

    # the real command too: one line, no traceback
    r = rag_cli("status", *where)
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr

    code, out, err = _cli(capsys, "index", "--rebuild", *where)
    assert code == 0 and "1 added" in out, err
    (aside,) = store.glob("chroma.broken-*")
    assert f"moved to {aside}" in err and (aside / "chroma.sqlite3").read_bytes()[:16] != b"SQLite format 3\0"
    code, out, err = _cli(capsys, "ask", QUESTION, "--generator", "extractive", *where)
    assert code == 0 and "12 million" in out, err


def test_store_path_that_is_a_file_is_a_clear_error(tiny_docs, tmp_path, capsys):
    a_file = tmp_path / "store.txt"
    a_file.write_text("not a store")
    for command, store in ((["status"], a_file), (["ask", QUESTION], a_file), (["index"], a_file / "sub")):
        code, out, err = _cli(capsys, *command, "--docs", str(tiny_docs), "--store", str(store))
        assert code == 1 and err.count("\n") == 1, err
        assert ("is a file, not a folder" in err) if store == a_file else ("Not a directory" in err), err
    assert a_file.read_text() == "not a store"


# One process runs both commands (one model load): `rag ask`, then `rag index`, exit codes after each.
_ASK_THEN_INDEX = ("import sys; from rag.cli import main; n = sys.argv.index('--then'); "
                   "print('EXIT', main(sys.argv[1:n]), flush=True); print('EXIT', main(sys.argv[n + 1:]), flush=True)")


def _read_only_run(store: Path, *argv: str, env: dict) -> subprocess.CompletedProcess:
    """The `rag` commands on a store that really cannot be written. As root, write bits do not stop
    writes, so the store is bind-mounted read-only in a private mount namespace (unshare; writes then
    fail with EROFS for root too); otherwise its write bits are removed."""
    cmd = [sys.executable, "-c", _ASK_THEN_INDEX, *argv]
    if os.geteuid() == 0:
        script = 'mount --bind -o ro "$0" "$0" && exec "$@"'
        cmd = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, str(store), *cmd]
        return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    paths = [store, *store.rglob("*")]
    for p in paths:
        p.chmod(p.stat().st_mode & ~0o222)
    try:
        return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    finally:
        for p in paths:
            p.chmod(p.stat().st_mode | 0o200)


@pytest.mark.slow
def test_read_only_store_answers_and_refuses_indexing(built_store, tmp_path):
    docs, store = built_store
    before = sorted(store.rglob("*"))
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAG_", "OPENAI_", "CHROMA_"))}
    env.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "ANONYMIZED_TELEMETRY": "False",
                "TMPDIR": str(scratch)})
    where = ["--docs", str(docs), "--store", str(store)]
    r = _read_only_run(store, "ask", QUESTION, *where, "--json", "--generator", "extractive", "--then",
                       "index", *where, env=env)
    answer, asked, indexed = r.stdout.splitlines()
    assert asked == "EXIT 0" and indexed == "EXIT 1", r.stdout + r.stderr
    assert json.loads(answer)["answered"] and "12 million" in json.loads(answer)["answer"]
    assert "Traceback" not in r.stderr
    assert "cannot be written" in r.stderr and "answered from a copy" in r.stderr
    assert "error: the store" in r.stderr and "indexing needs write access" in r.stderr
    assert sorted(store.rglob("*")) == before  # nothing added
    assert list(scratch.glob("rag-readonly-store-*")) == []  # the temporary copy is gone
