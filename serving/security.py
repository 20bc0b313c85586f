"""API-key authentication, an append-only audit log, and logs without patient data.

* ``LNRISK_API_KEY`` set → every endpoint except the health probes and metrics
  requires ``Authorization: Bearer <key>`` (or ``X-API-Key``); a missing or wrong key
  gets 401 with no detail.
* ``LNRISK_AUDIT_LOG`` (default ``$LNRISK_HOME/audit/audit.jsonl``) receives one JSON
  line per request: time, request id, endpoint, model version, number of patients, a
  salted SHA-256 of the input, and the outcome counts — never identifiers or values.
  The salt is ``LNRISK_AUDIT_SALT`` or a random one kept beside the log (mode 0600).
* Rejected input is logged by field and error type only: pydantic's messages would
  otherwise print the offending values (and a bad ``patient_id``) into the server log.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import secrets
import threading
import time
from pathlib import Path
from typing import Any

from pydantic import ValidationError

OPEN_PATHS = frozenset({"/livez", "/readyz", "/healthz", "/metrics"})
_BENTOML_HTTP_LOGGER = "bentoml._internal.server.http_app"


class APIKeyMiddleware:
    """ASGI middleware: a bearer key on every path but the probes, when one is set."""

    def __init__(self, app: Any, api_key: str | None = None) -> None:
        self.app = app
        self._fixed_key = api_key

    @property
    def api_key(self) -> str | None:
        # Read per request, so a key set (or rotated) in the environment of a running
        # process applies without rebuilding the app.
        return self._fixed_key or os.environ.get("LNRISK_API_KEY")

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        api_key = self.api_key
        if scope["type"] != "http" or not api_key or scope.get("path") in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        offered = headers.get("x-api-key") or ""
        auth = headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            offered = auth[7:].strip()
        if offered and hmac.compare_digest(offered, api_key):
            await self.app(scope, receive, send)
            return
        body = b'{"error":"unauthorized"}'
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"www-authenticate", b"Bearer"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class AuditLog:
    """Append-only JSON-lines audit trail with salted input hashes."""

    def __init__(self, path: str | Path | None = None, salt: str | None = None):
        home = Path(os.environ.get("LNRISK_HOME", ".lnrisk"))
        self.path = Path(
            path or os.environ.get("LNRISK_AUDIT_LOG") or home / "audit" / "audit.jsonl"
        ).resolve()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._salt = salt or os.environ.get("LNRISK_AUDIT_SALT") or self._stored_salt()
        self._lock = threading.Lock()

    def _stored_salt(self) -> str:
        salt_file = self.path.with_suffix(".salt")
        if not salt_file.exists():
            fd = os.open(salt_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32))
        return salt_file.read_text().strip()

    def input_hash(self, payload: Any) -> str:
        canonical = json.dumps(payload, sort_keys=True, default=str).encode()
        return hmac.new(self._salt.encode(), canonical, hashlib.sha256).hexdigest()

    def write(self, **fields: Any) -> None:
        line = json.dumps(
            {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **fields}, sort_keys=True
        )
        with self._lock, open(self.path, "a", encoding="utf-8") as f:
            f.write(line + "\n")
            f.flush()
            os.fsync(f.fileno())


class _RedactValidationErrors(logging.Filter):
    """Replace a logged pydantic ValidationError by its field paths and error types."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, ValidationError):
            fields = "; ".join(
                f"{'.'.join(map(str, e['loc']))}: {e['type']}" for e in exc.errors()
            )
            record.msg = "rejected invalid input (%s)"
            record.args = (fields,)
            record.exc_info = None
            record.exc_text = None
        return True


def install_log_redaction() -> None:
    """Attach the redaction filter to BentoML's HTTP error logger (idempotent)."""
    logger = logging.getLogger(_BENTOML_HTTP_LOGGER)
    if not any(isinstance(f, _RedactValidationErrors) for f in logger.filters):
        logger.addFilter(_RedactValidationErrors())
