"""Start a real server process for a test and wait until it answers."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import tempfile
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
    exits early fails the test with the end of its output. The output goes to a
    file, never to an undrained pipe: a server that logs more than a pipe holds
    (64 kB of rejected fuzzing input, say) would block in its next log write.
    """
    url = f"http://127.0.0.1:{port}"
    log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in the finally below
    proc = subprocess.Popen(
        cmd, cwd=PROJECT, env={**os.environ, **(env or {})},
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                log.seek(0)
                out = log.read().decode(errors="replace")
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
        log.close()
