"""Shared fixtures. Every test runs offline: a socket guard fails any non-loopback connection."""

from __future__ import annotations

import ipaddress
import os
import shutil
import socket
import sys
from pathlib import Path

import pytest

from rag import offline
from rageval.processes import free_port  # noqa: F401 - the tests import it from here

offline.apply()

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds"
SHARED_EVAL = ROOT.parent / "shared" / "eval"

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _is_loopback(address) -> bool:
    if isinstance(address, (str, bytes)):  # unix socket
        return True
    host = address[0]
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a hostname: resolving it would already leave the machine


def _guarded(real):
    def connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(address):
            raise ConnectionRefusedError(f"test network guard: connection to {address!r} blocked")
        return real(self, address)

    return connect


@pytest.fixture(autouse=True, scope="session")
def network_guard():
    socket.socket.connect = _guarded(_real_connect)
    socket.socket.connect_ex = _guarded(_real_connect_ex)
    yield
    socket.socket.connect = _real_connect
    socket.socket.connect_ex = _real_connect_ex


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    """Tests never pick up a developer's .env or keys."""
    for key in list(os.environ):
        if key.startswith(("RAG_", "OPENAI_", "CHROMA_")):
            monkeypatch.delenv(key, raising=False)
    monkeypatch.chdir(ROOT)


@pytest.fixture
def docs_dir(tmp_path) -> Path:
    d = tmp_path / "docs"
    shutil.copytree(SEEDS, d)
    return d


@pytest.fixture
def make_bot(tmp_path):
    from rag import RAG

    def make(docs: Path, **overrides):
        overrides.setdefault("store_dir", tmp_path / "store")
        return RAG(docs_dir=docs, **overrides)

    return make


@pytest.fixture(scope="session")
def seeded_store(tmp_path_factory):
    """One indexed copy of the seeds shared by read-only tests."""
    from rag import RAG

    base = tmp_path_factory.mktemp("seeded")
    docs = base / "docs"
    shutil.copytree(SEEDS, docs)
    bot = RAG(docs_dir=docs, store_dir=base / "store")
    bot.index()
    return bot


def rag_cli(*args: str, input: str | None = None, env: dict | None = None, timeout: int = 300):
    """Run the real `rag` command in a subprocess."""
    import subprocess

    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("RAG_", "OPENAI_", "CHROMA_"))}
    full_env.update(offline.OFFLINE_ENV)
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "rag", *args], input=input, capture_output=True, text=True,
        env=full_env, timeout=timeout, cwd=ROOT,
    )
