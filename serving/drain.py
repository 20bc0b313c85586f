"""Graceful drain: on SIGTERM a worker first says it is not ready, then stops.

An orchestrator restarting the service (a rolling update) sends SIGTERM and, at the
same time, takes the instance out of its load balancer; the two race. A worker that
stopped accepting at once would leave the connections the balancer still sends in
the listening socket's queue, to be reset when the process exits. So on SIGTERM a
worker keeps serving for ``LNRISK_DRAIN_SECONDS`` (default 5; 0 stops at once) while
``/readyz`` answers 503, then hands the signal to the server, which stops accepting
and finishes every request it has accepted before it exits.

Only ``bentoml serve`` workers install this (signals belong to a process's main
thread); an in-process test client never receives SIGTERM.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from types import FrameType
from typing import Any

DEFAULT_DRAIN_SECONDS = 5.0

log = logging.getLogger(__name__)


class Drain:
    """The SIGTERM handler of one worker process and its draining state."""

    def __init__(self, seconds: float | None = None) -> None:
        if seconds is None:
            raw = os.environ.get("LNRISK_DRAIN_SECONDS")
            seconds = float(raw) if raw else DEFAULT_DRAIN_SECONDS
        self.seconds = max(seconds, 0.0)
        self.draining = threading.Event()
        self._server_handler: Any = None

    def install(self) -> bool:
        """Wrap the server's SIGTERM handler (installed before the service starts).

        Returns False where there is none to wrap, or no handler can be set (not
        the main thread).
        """
        if threading.current_thread() is not threading.main_thread():
            return False
        handler = signal.getsignal(signal.SIGTERM)
        if not callable(handler):
            return False
        self._server_handler = handler
        signal.signal(signal.SIGTERM, self._on_sigterm)
        return True

    def _on_sigterm(self, sig: int, frame: FrameType | None) -> None:
        if self.draining.is_set():
            return
        self.draining.set()
        log.info("SIGTERM: not ready; stopping in %.1f s", self.seconds)
        timer = threading.Timer(self.seconds, self._stop, args=(sig, frame))
        timer.daemon = True
        timer.start()

    def _stop(self, sig: int, frame: FrameType | None) -> None:
        self._server_handler(sig, frame)  # uvicorn: stop accepting, finish, exit
