"""API-key authentication, an append-only audit log, and logs without patient data.

* ``LNRISK_API_KEY`` set → every endpoint except the health probes and metrics
  requires ``Authorization: Bearer <key>`` (or ``X-API-Key``); a missing or wrong key
  gets 401 with no detail. The CDS Hooks paths (``/cds-services…``) also accept a
  CDS client's signed JWT instead, and require one of the two when
  ``LNRISK_CDS_JWKS`` is set (see :mod:`serving.cds_auth`).
* ``LNRISK_AUDIT_LOG`` (default ``$LNRISK_HOME/audit/audit.jsonl``) receives one JSON
  line per request: time, request id, endpoint, model version, number of patients, a
  salted SHA-256 of the input, and the outcome counts — never identifiers or values.
  The salt is ``LNRISK_AUDIT_SALT`` or a random one kept beside the log (mode 0600).
* Request bodies larger than ``LNRISK_MAX_BODY_MB`` (default 32 MB, room for the
  10,000 patients a request may hold) get 413 before anything is parsed. The body's
  SHA-256 is kept in the request state; the audit line carries an HMAC of it.
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

from serving.cds_auth import client_token_accepted

CDS_PATH = "/cds-services"  # CDS Hooks: also open to a CDS client's signed JWT
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
        path = scope.get("path") or ""
        cds = path == CDS_PATH or path.startswith(CDS_PATH + "/")
        secured = api_key or (cds and os.environ.get("LNRISK_CDS_JWKS"))
        if scope["type"] != "http" or not secured or path in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        offered = headers.get("x-api-key") or ""
        auth = headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            offered = auth[7:].strip()
        if offered and api_key and hmac.compare_digest(offered, api_key):
            await self.app(scope, receive, send)
            return
        if offered and cds and client_token_accepted(scope, offered):
            await self.app(scope, receive, send)
            return
        await _send_json(
            send, 401, b'{"error":"unauthorized"}', [(b"www-authenticate", b"Bearer")]
        )


#: Request bodies the service reads. Anything else gets 415 before it is parsed
#: (BentoML would otherwise hand multipart and form bodies to a form parser that
#: fails with 500, and unpickle application/vnd.bentoml+pickle).
ACCEPTED_MEDIA_TYPES = ("application/json", "application/fhir+json")


class ContentTypeMiddleware:
    """ASGI middleware: a request body must be JSON (plain or FHIR), else 415.

    A request without a body (GET, or an empty POST) passes whatever it declares.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("method") in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        declared = headers.get(b"content-type", b"").decode("latin-1")
        media = declared.split(";")[0].strip().lower()
        length = headers.get(b"content-length", b"0")
        bodiless = b"transfer-encoding" not in headers and length.strip() in (
            b"0",
            b"",
        )
        if media in ACCEPTED_MEDIA_TYPES or (not media and bodiless):
            await self.app(scope, receive, send)
            return
        body = json.dumps(
            {
                "error": "unsupported media type",
                "content_type": declared[:100] or None,
                "accepted": list(ACCEPTED_MEDIA_TYPES),
            }
        ).encode()
        accept = ", ".join(ACCEPTED_MEDIA_TYPES).encode()
        await _send_json(send, 415, body, [(b"accept-post", accept)])


DEFAULT_MAX_BODY_MB = 32.0
BODY_DIGEST_KEY = "lnrisk_body_sha256"  # request state: SHA-256 of the body bytes
SYNC_SECONDS = 1.0  # audit log: fsync at most this often


async def _send_json(send: Any, status: int, body: bytes, extra=()) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *extra,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class BodySizeLimitMiddleware:
    """ASGI middleware: 413 for a body over the limit, declared or streamed.

    A declared ``Content-Length`` over the limit is refused before reading. A body
    without one (chunked) is read up to the limit first and then replayed to the
    app, so the app never sees a truncated body. On the way it records the SHA-256
    of the body bytes in the request state (``BODY_DIGEST_KEY``): the audit log
    hashes what was received without serialising the parsed records again.
    """

    def __init__(self, app: Any, max_bytes: int | None = None) -> None:
        self.app = app
        self._fixed = max_bytes

    @property
    def max_bytes(self) -> int:
        if self._fixed is not None:
            return self._fixed
        mb = float(os.environ.get("LNRISK_MAX_BODY_MB") or DEFAULT_MAX_BODY_MB)
        return int(mb * 1024 * 1024)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("method") in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes
        too_large = b'{"error":"request body too large","limit_bytes":%d}' % limit
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _send_json(send, 413, too_large)
            return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # client went away
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > limit:
                await _send_json(send, 413, too_large)
                return
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        scope.setdefault("state", {})[BODY_DIGEST_KEY] = hashlib.sha256(body).digest()
        replayed = False

        async def replay() -> dict:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


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
        self._file: Any = None
        self._dirty = False

    def _stored_salt(self) -> str:
        salt_file = self.path.with_suffix(".salt")
        if not salt_file.exists():
            fd = os.open(salt_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32))
        return salt_file.read_text().strip()

    def hash_bytes(self, data: bytes) -> str:
        """Salted SHA-256 (HMAC) of bytes: a body, or a digest of one."""
        return hmac.new(self._salt.encode(), data, hashlib.sha256).hexdigest()

    def write(self, **fields: Any) -> None:
        """Append one line; it reaches the OS at once and the disk within a second.

        Each line is one ``write`` to a file opened in append mode, so lines from
        concurrent requests (or workers) never interleave. fsync per request cost
        more than the whole screening, so a background thread syncs at most once a
        second when something was written (power loss may lose that second; a
        process crash or restart loses nothing).
        """
        line = json.dumps(
            {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **fields}, sort_keys=True
        )
        with self._lock:
            if self._file is None:
                self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115
                threading.Thread(target=self._sync_loop, daemon=True).start()
            self._file.write(line + "\n")
            self._file.flush()
            self._dirty = True

    def sync(self) -> None:
        """fsync what was written so far."""
        with self._lock:
            if self._file is not None and self._dirty:
                os.fsync(self._file.fileno())
                self._dirty = False

    def _sync_loop(self) -> None:
        while True:
            time.sleep(SYNC_SECONDS)
            self.sync()


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
