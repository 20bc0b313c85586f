"""Spread keep-alive connections over the workers by recycling them.

BentoML's workers share one listening socket, and an asyncio worker that wakes up
accepts every connection waiting at that moment. A client that opens its pool in a
burst (a screening tool, a load generator) can therefore land all its connections
on one worker while the other idles for as long as the connections live. Measured
here with wrk at concurrency 8 against two workers: in 3 of 6 runs one worker did
all the work, at half the throughput.

:class:`ConnectionRecycleMiddleware` closes a connection after a number of requests or
seconds, whichever comes first (``Connection: close`` on the answer, as nginx's
``keepalive_requests`` and ``keepalive_time`` do). The client reconnects, and the
new connection goes to whichever worker reaches ``accept`` first — usually the
idle one. The seconds matter for slow requests (1,000-patient batches), which would
take minutes to reach the request count.
"""

from __future__ import annotations

import os
import time
from typing import Any

#: Default number of requests a keep-alive connection serves before it is closed.
DEFAULT_REQUESTS_PER_CONNECTION = 100
#: Default age (seconds) after which a connection is closed at its next answer.
DEFAULT_CONNECTION_SECONDS = 2.0
# Connections seen but not yet recycled; forgotten in bulk beyond this (a stale
# count only makes a connection recycle early).
_MAX_TRACKED = 4096


class ConnectionRecycleMiddleware:
    """ASGI middleware: ``Connection: close`` once a connection is used up.

    Used up: ``LNRISK_REQUESTS_PER_CONNECTION`` answers (default 100; 0 = never
    recycle) or ``LNRISK_CONNECTION_SECONDS`` since its first request (default 2).
    A connection is known by its client address and port, which are unique while
    it is open.
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self.limit = int(
            os.environ.get(
                "LNRISK_REQUESTS_PER_CONNECTION", DEFAULT_REQUESTS_PER_CONNECTION
            )
        )
        self.seconds = float(
            os.environ.get("LNRISK_CONNECTION_SECONDS", DEFAULT_CONNECTION_SECONDS)
        )
        self._served: dict[Any, tuple[int, float]] = {}  # answers, first seen

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        client = scope.get("client")
        if scope["type"] != "http" or self.limit <= 0 or client is None:
            await self.app(scope, receive, send)
            return
        key = tuple(client)
        now = time.monotonic()
        served, since = self._served.pop(key, (0, now))
        if served + 1 < self.limit and now - since < self.seconds:
            if len(self._served) >= _MAX_TRACKED:
                self._served.clear()
            self._served[key] = (served + 1, since)
            await self.app(scope, receive, send)
            return

        async def send_and_close(message: dict) -> None:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", []), (b"connection", b"close")]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_and_close)
