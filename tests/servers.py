"""Start a real server process for a test and wait until it answers (shared helper)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

PROJECT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running(
    cmd: list[str],
    *,
    port: int,
    ready_path: str,
    env: dict[str, str] | None = None,
    timeout: float = 90,
) -> Iterator[str]:
    """Run ``cmd`` (listening on ``port``) until ``ready_path`` answers 200.

    Yields the base URL; stops the whole process group afterwards. A process that
    exits early fails the test with the end of its output.
    """
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        cmd, cwd=PROJECT, env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                out = proc.stdout.read().decode() if proc.stdout else ""
                pytest.fail(f"{' '.join(cmd[:4])} exited early:\n{out[-3000:]}")
            try:
                if httpx.get(url + ready_path, timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        else:
            pytest.fail(
                f"{' '.join(cmd[:4])}: {ready_path} not 200 within {timeout:g} s"
            )
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
