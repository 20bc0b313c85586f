"""CDS Hooks client authentication: a signed JWT checked against a JWKS file."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from starlette.testclient import TestClient

BASE = "https://cds.example.org"
ISSUER = "https://ehr.example.org"


def _key_pair(kid: str) -> tuple[ec.EllipticCurvePrivateKey, dict]:
    private = ec.generate_private_key(ec.SECP384R1())
    public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(private.public_key()))
    return private, {**public, "kid": kid, "alg": "ES384", "use": "sig"}


@pytest.fixture(scope="module")
def keys() -> dict:
    """The client's key, its public half (the JWKS), and a stranger's key."""
    client, jwk = _key_pair("ehr-2026")
    stranger, _ = _key_pair("ehr-2026")  # same kid, different key
    return {"client": client, "stranger": stranger, "jwks": {"keys": [jwk]}}


@pytest.fixture
def cds(client: TestClient, keys, tmp_path: Path, monkeypatch) -> TestClient:
    """The shared app with a JWKS and an API key configured."""
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(keys["jwks"]))
    monkeypatch.setenv("LNRISK_CDS_JWKS", str(path))
    monkeypatch.setenv("LNRISK_CDS_ISSUERS", ISSUER)
    monkeypatch.setenv("LNRISK_CDS_BASE_URL", BASE)
    monkeypatch.setenv("LNRISK_API_KEY", "s3cret-key")
    return client


def token(key, *, aud: str = BASE + "/cds-services", **claims) -> str:
    now = int(time.time())
    payload = {
        "iss": ISSUER,
        "sub": "ehr-client-7",
        "aud": aud,
        "iat": now,
        "exp": now + 300,
        "jti": uuid.uuid4().hex,
        **claims,
    }
    return jwt.encode(
        payload, key, algorithm="ES384", headers={"kid": "ehr-2026", "typ": "JWT"}
    )


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


def test_a_signed_client_token_is_accepted(cds: TestClient, keys) -> None:
    resp = cds.get("/cds-services", headers=bearer(token(keys["client"])))
    assert resp.status_code == 200, resp.text
    assert resp.json()["services"][0]["hook"] == "patient-view"


@pytest.mark.parametrize(
    ("case", "make"),
    [
        ("expired", lambda k: token(k["client"], exp=int(time.time()) - 120)),
        ("wrong key", lambda k: token(k["stranger"])),
        ("wrong audience", lambda k: token(k["client"], aud=BASE + "/other")),
        ("untrusted issuer", lambda k: token(k["client"], iss="https://evil.test")),
        ("no jti", lambda k: token(k["client"], jti=None)),
        ("not a token", lambda k: "a.b.c"),
    ],
)
def test_a_bad_client_token_is_refused(cds: TestClient, keys, case, make) -> None:
    resp = cds.get("/cds-services", headers=bearer(make(keys)))
    assert resp.status_code == 401, case
    assert resp.json() == {"error": "unauthorized"}


def test_a_token_is_accepted_once(cds: TestClient, keys) -> None:
    once = token(keys["client"])
    assert cds.get("/cds-services", headers=bearer(once)).status_code == 200
    assert cds.get("/cds-services", headers=bearer(once)).status_code == 401


def test_the_audience_is_the_endpoint_called(cds: TestClient, keys) -> None:
    service = cds.get("/cds-services", headers=bearer(token(keys["client"])))
    sid = service.json()["services"][0]["id"]
    path = f"/cds-services/{sid}/feedback"
    body = {
        "feedback": [
            {
                "card": str(uuid.uuid4()),
                "outcome": "accepted",
                "outcomeTimestamp": "2026-12-01T10:00:00Z",
            }
        ]
    }
    discovery_token = token(keys["client"])
    assert cds.post(path, json=body, headers=bearer(discovery_token)).status_code == 401
    good = token(keys["client"], aud=BASE + path)
    assert cds.post(path, json=body, headers=bearer(good)).status_code == 200


def test_the_api_key_still_works_and_tokens_open_only_cds(cds, keys) -> None:
    assert cds.get("/cds-services", headers=bearer("s3cret-key")).status_code == 200
    assert cds.get("/cds-services").status_code == 401
    # a client token is for the CDS Hooks paths only
    resp = cds.post(
        "/model_info", json={}, headers=bearer(token(keys["client"], aud=BASE))
    )
    assert resp.status_code == 401
