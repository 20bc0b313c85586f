"""Running ``lnrisk`` jobs against the team server as one of its users."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tests.servers import PROJECT


@dataclass(frozen=True)
class Job:
    """A finished ``lnrisk`` subprocess."""

    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    def __str__(self) -> str:
        return (
            f"lnrisk {' '.join(self.args)} → {self.returncode}\n"
            f"stdout: {self.stdout[-1500:]}\nstderr: {self.stderr[-3000:]}"
        )


def start_job(server, user: str, home: Path, *args: str):
    """Start ``python -m training ARGS`` as ``user``; returns the Popen."""
    home.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [sys.executable, "-m", "training", *args], cwd=PROJECT,
        env=server.env_for(user, home), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip


def finish(proc: subprocess.Popen, args: tuple[str, ...], timeout: float = 900) -> Job:
    out, err = proc.communicate(timeout=timeout)
    return Job(args, proc.returncode, out, err)


def run_job(server, user: str, home: Path, *args: str) -> Job:
    """Run ``lnrisk ARGS`` as ``user`` against the team server, to the end."""
    return finish(start_job(server, user, home, *args), args)


def new_home() -> Path:
    return Path(tempfile.mkdtemp(prefix="lnrisk-team-job-"))
