"""Child processes the benches and the tests start and stop: a free loopback port, a `chroma run`
server's heartbeat, terminate-then-kill, and the peak memory a process reached."""

from __future__ import annotations

import resource
import socket
import subprocess
import time
from pathlib import Path
from typing import Optional


def free_port() -> int:
    """A loopback port that is free now (a server started right after may still race for it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_process(proc: subprocess.Popen, grace: float) -> None:
    """Terminate, then kill what is still running after `grace` seconds."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_heartbeat(port: int, timeout: float = 60.0, proc: Optional[subprocess.Popen] = None,
                   every: float = 0.1, log: Optional[Path] = None) -> None:
    """Until the Chroma server on port answers its heartbeat; raises when `proc` (the server) exits
    first or `timeout` seconds pass. log: the server's output, named in the error."""
    import httpx

    see = f"; see {log}" if log else ""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"chroma run exited with {proc.returncode}{see}")
        try:
            # a request may take a few polls' time: a busy server answers late, not never
            if httpx.get(f"http://127.0.0.1:{port}/api/v2/heartbeat", timeout=max(1.0, 4 * every)).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(every)
    raise TimeoutError(f"no Chroma server on port {port} after {timeout} s{see}")


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MB."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # KiB on Linux
