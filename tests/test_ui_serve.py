"""`python -m ui` / `rag serve` as a user starts it: indexes with progress on the console, prints the
URL, and with RAG_AUTH set asks for a login and never prints the password."""

import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from rag import offline

from .conftest import ROOT, SEEDS, free_port

pytestmark = pytest.mark.slow
PASSWORD = "s3cret-Pa55word"


def test_serve_with_login(tmp_path):
    docs = tmp_path / "docs"
    shutil.copytree(SEEDS, docs)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAG_", "OPENAI_", "CHROMA_"))}
    env.update(offline.OFFLINE_ENV, RAG_GENERATOR="extractive", RAG_AUTH=f"alice:{PASSWORD}")
    proc = subprocess.Popen(
        [sys.executable, "-m", "ui", "--docs", str(docs), "--store", str(tmp_path / "store"), "--port", str(port)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    lines = []
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("index ready"):
                break
        out = "".join(lines)
        assert f"running at http://127.0.0.1:{port}" in out
        assert "embedding 5/5 documents" in out and "index ready: 5 added" in out  # console progress
        assert "warning" not in out.lower()  # loopback: no warning

        base = f"http://127.0.0.1:{port}"
        with pytest.raises(urllib.error.HTTPError) as denied:
            urllib.request.urlopen(f"{base}/config", timeout=10)
        assert denied.value.code == 401

        def login(password):
            data = urllib.parse.urlencode({"username": "alice", "password": password}).encode()
            return urllib.request.urlopen(urllib.request.Request(f"{base}/login", data=data), timeout=10)

        with pytest.raises(urllib.error.HTTPError) as wrong:
            login("wrong")
        assert wrong.value.code in (400, 401)
        assert login(PASSWORD).status == 200

        from gradio_client import Client  # scripted use with the login

        answer = Client(base, auth=("alice", PASSWORD), verbose=False).predict(
            "What remains a critical barrier to China's AI self-sufficiency?", 0, "", [], api_name="/ask")
        assert answer["answered"] and answer["sources"]
    finally:
        proc.terminate()
        rest, _ = proc.communicate(timeout=30)
    assert PASSWORD not in out + (rest or "")
