"""CDS Hooks client authentication: the client's signed JWT, checked against a JWKS.

CDS Hooks 2.0 ("Trusting CDS Clients"): every call, discovery included, carries
``Authorization: Bearer <JWT>`` signed by the client with a key from its JSON Web
Key Set. The token names ``iss`` (the client), ``sub`` (its client id), ``aud``
(the CDS service endpoint called), ``exp``, ``iat`` and ``jti`` (a nonce), and its
header names the key (``kid``).

Configuration (environment):

* ``LNRISK_CDS_JWKS`` — a JSON file holding the trusted clients' public keys
  (``{"keys": [...]}``); unset → no JWT is accepted (the API key still is).
* ``LNRISK_CDS_ISSUERS`` — comma-separated ``iss`` values to accept (unset: any
  issuer whose key is in the JWKS).
* ``LNRISK_CDS_BASE_URL`` — the service's public base URL (``https://cds.example.org``);
  ``aud`` must be that plus the path called (unset: the URL the request arrived at,
  from its Host header and scheme).

A token is accepted once: its ``jti`` is remembered until it expires (per worker
process). Specification: https://cds-hooks.hl7.org/2.0/#trusting-cds-clients.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from pathlib import Path

import jwt

#: Signature algorithms a client may use (the specification names ES384 and RS384).
ALGORITHMS = ["ES384", "RS384", "ES256", "RS256", "ES512", "RS512", "PS384", "PS256"]
REQUIRED_CLAIMS = ["iss", "sub", "aud", "exp", "iat", "jti"]
LEEWAY_SECONDS = 30  # clock skew between the client and this server
MAX_LIFETIME_SECONDS = 3600  # a longer-lived token is refused (the spec: ~5 min)

log = logging.getLogger(__name__)


class TokenRejectedError(Exception):
    """The token is not one this service trusts; the message says why (no PHI)."""


class ClientVerifier:
    """Verifies CDS clients' JWTs against the keys of one JWKS file."""

    def __init__(self, jwks: dict, issuers: frozenset[str] = frozenset()) -> None:
        self.keys = {
            key.key_id: key
            for key in jwt.PyJWKSet.from_dict(jwks).keys
            if key.key_id is not None
        }
        self.issuers = issuers
        self._seen: dict[str, float] = {}  # jti → exp
        self._lock = threading.Lock()

    @classmethod
    def from_env(cls) -> ClientVerifier | None:
        """The verifier the environment configures, or None (no JWKS set)."""
        path = os.environ.get("LNRISK_CDS_JWKS")
        if not path:
            return None
        issuers = os.environ.get("LNRISK_CDS_ISSUERS") or ""
        return _cached(path, issuers)

    def verify(self, token: str, audience: str) -> dict:
        """The token's claims, once its signature, audience and times check out."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise TokenRejectedError(f"malformed token: {exc}") from exc
        key = self.keys.get(header.get("kid") or "")
        if key is None:
            raise TokenRejectedError("unknown kid: no such key in the configured JWKS")
        try:
            claims = jwt.decode(
                token,
                key=key,
                algorithms=ALGORITHMS,
                audience=audience,
                leeway=LEEWAY_SECONDS,
                options={"require": REQUIRED_CLAIMS},
            )
        except jwt.PyJWTError as exc:
            raise TokenRejectedError(f"{type(exc).__name__}: {exc}") from exc
        if self.issuers and claims["iss"] not in self.issuers:
            raise TokenRejectedError("iss is not a trusted CDS client")
        if claims["exp"] - claims["iat"] > MAX_LIFETIME_SECONDS:
            raise TokenRejectedError("token lives longer than an hour")
        self._once(str(claims["jti"]), float(claims["exp"]))
        return claims

    def _once(self, jti: str, exp: float) -> None:
        now = time.time()
        with self._lock:
            if jti in self._seen:
                raise TokenRejectedError("jti already used (replayed token)")
            if len(self._seen) > 10_000:
                self._seen = {j: e for j, e in self._seen.items() if e > now}
            self._seen[jti] = exp + LEEWAY_SECONDS


_verifiers: dict[tuple[str, str, float], ClientVerifier] = {}


def _cached(path: str, issuers: str) -> ClientVerifier:
    """One verifier per JWKS file version (a rewritten file is read again)."""
    mtime = Path(path).stat().st_mtime
    key = (path, issuers, mtime)
    if key not in _verifiers:
        jwks = json.loads(Path(path).read_text())
        allowed = frozenset(i.strip() for i in issuers.split(",") if i.strip())
        _verifiers.clear()
        _verifiers[key] = ClientVerifier(jwks, allowed)
    return _verifiers[key]


def audience(scope: dict) -> str:
    """The URL a token must name as ``aud``: the endpoint this request calls."""
    base = os.environ.get("LNRISK_CDS_BASE_URL")
    if not base:
        headers = dict(scope.get("headers") or [])
        host = headers.get(b"host", b"").decode("latin-1")
        base = f"{scope.get('scheme', 'http')}://{host}"
    return base.rstrip("/") + scope.get("path", "")


def client_token_accepted(scope: dict, token: str) -> bool:
    """Whether ``token`` is a valid CDS client JWT for this request."""
    verifier = ClientVerifier.from_env()
    if verifier is None or token.count(".") != 2:
        return False
    try:
        claims = verifier.verify(token, audience(scope))
    except TokenRejectedError as exc:
        log.info("CDS client token rejected: %s", exc)
        return False
    scope.setdefault("state", {})["cds_client"] = claims["iss"]
    return True
