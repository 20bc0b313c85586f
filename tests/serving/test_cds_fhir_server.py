"""A ``patient-view`` call with an incomplete prefetch, answered from the client's
FHIR server over real HTTP.

The FHIR server is a small search server started here on 127.0.0.1 (the standard
library's ``ThreadingHTTPServer``): no HAPI FHIR or other FHIR server is available
to the test suite. It serves synthetic charts for ``Patient/{id}`` reads and
``{Type}?patient={id}&code=…`` searches (filtered by the code list), in small pages
linked by ``next``, behind a bearer token, and records every request it gets.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from starlette.testclient import TestClient

from serving.cds_hooks import prefetch_for

TOKEN = "tok-3f9a1c"  # the test server's bearer token
SERVICE = "/cds-services/nct05585671-ln-risk"
#: The element holding each searched type's code (FHIR R4 ``code`` search parameter).
CODE_ELEMENT = {
    "Observation": "code",
    "Condition": "code",
    "MedicationStatement": "medicationCodeableConcept",
    "MedicationAdministration": "medicationCodeableConcept",
    "Immunization": "vaccineCode",
}


class FhirServer:
    """A FHIR R4 search server over some charts, for one test.

    Attributes:
        requests: (path with query, Authorization header) of every request.
        page_size: entries per searchset page.
        delay: seconds each answer waits.
        token: the bearer token required (None: open).
        ignore_patient: answer searches with every patient's resources.
        next_base: the base URL of the ``next`` links (default: this server's).
    """

    def __init__(self, charts: list[list[dict]]) -> None:
        self.resources = [r for chart in charts for r in chart]
        self.requests: list[tuple[str, str | None]] = []
        self.page_size = 5
        self.delay = 0.0
        self.token: str | None = TOKEN
        self.ignore_patient = False
        self.next_base: str | None = None
        self.patient_override: dict | str | None = None  # str: sent as HTML
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.httpd.server_port}/fhir"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, args=(0.05,), daemon=True
        )

    def paths(self) -> list[str]:
        return [urlsplit(path).path.removeprefix("/fhir/") for path, _ in self.requests]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # http.server's name
                auth = self.headers.get("Authorization")
                server.requests.append((self.path, auth))
                if server.delay:
                    time.sleep(server.delay)
                if server.token and auth != f"Bearer {server.token}":
                    self._send(401, _outcome("a valid bearer token is required"))
                    return
                parts = urlsplit(self.path)
                route = parts.path.removeprefix("/fhir/").split("/")
                params = {k: v[0] for k, v in parse_qs(parts.query).items()}
                if len(route) == 2 and route[0] == "Patient":
                    self._read(route[1])
                elif len(route) == 1 and route[0] in CODE_ELEMENT:
                    self._search(route[0], parts.path, params)
                else:
                    self._send(404, _outcome(f"unknown path {parts.path}"))

            def _read(self, pid: str) -> None:
                if server.patient_override is not None:
                    self._send(200, server.patient_override)
                    return
                found = [
                    r
                    for r in server.resources
                    if r["resourceType"] == "Patient" and r["id"] == pid
                ]
                if found:
                    self._send(200, found[0])
                else:
                    self._send(404, _outcome(f"Patient/{pid} is not known"))

            def _search(self, rtype: str, path: str, params: dict[str, str]) -> None:
                pid = params.get("patient", "").removeprefix("Patient/")
                codes = set(
                    (params.get("code") or params.get("vaccine-code") or "").split(",")
                )
                hits = [
                    r
                    for r in server.resources
                    if r["resourceType"] == rtype
                    and (server.ignore_patient or _patient_of(r) == pid)
                    and any(
                        f"{c.get('system')}|{c.get('code')}" in codes
                        for c in r[CODE_ELEMENT[rtype]]["coding"]
                    )
                ]
                offset = int(params.get("_offset", 0))
                page = hits[offset : offset + server.page_size]
                bundle = {
                    "resourceType": "Bundle",
                    "type": "searchset",
                    "total": len(hits),
                    "link": [{"relation": "self", "url": server.base + self.path}],
                    "entry": [
                        {"resource": r, "search": {"mode": "match"}} for r in page
                    ],
                }
                if offset + server.page_size < len(hits):
                    base = server.next_base or server.base
                    query = urlencode({**params, "_offset": offset + server.page_size})
                    bundle["link"].append(
                        {"relation": "next", "url": f"{base}/{rtype}?{query}"}
                    )
                self._send(200, bundle)

            def _send(self, status: int, body: dict | str) -> None:
                media = (
                    "text/html" if isinstance(body, str) else "application/fhir+json"
                )
                data = (body if isinstance(body, str) else json.dumps(body)).encode()
                self.send_response(status)
                self.send_header("Content-Type", media)
                self.send_header("Content-Length", str(len(data)))
                if status == 401:
                    self.send_header("WWW-Authenticate", "Bearer")
                self.end_headers()
                with contextlib.suppress(OSError):  # the client gave up: out of time
                    self.wfile.write(data)

        return Handler


def _outcome(diagnostics: str) -> dict:
    return {
        "resourceType": "OperationOutcome",
        "issue": [
            {"severity": "error", "code": "security", "diagnostics": diagnostics}
        ],
    }


def _patient_of(resource: dict) -> str:
    ref = (resource.get("subject") or resource.get("patient") or {}).get("reference")
    return (ref or "").removeprefix("Patient/")


@pytest.fixture(scope="module")
def charts() -> list[list[dict]]:
    """Synthetic patients' FHIR resources as of today (patient-view screens today)."""
    from synthetic.fhir import patient_bundles
    from synthetic.generator import generate_cohort

    cohort = generate_cohort(n=4, seed=5, incidence=0.6)
    bundles = patient_bundles(cohort, date.today(), seed=5)
    return [[e["resource"] for e in b["entry"]] for b in bundles]


@pytest.fixture
def fhir(charts, monkeypatch) -> Iterator[FhirServer]:
    """The FHIR server of the charts, the one server the service may read."""
    server = FhirServer(charts)
    server.thread.start()
    monkeypatch.setenv(
        "LNRISK_CDS_FHIR_SERVERS", f"https://ehr.example.org/fhir, {server.base}/"
    )
    monkeypatch.delenv("LNRISK_CDS_FHIR_SECONDS", raising=False)
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()


def _patient_id(resources: list[dict]) -> str:
    return next(r["id"] for r in resources if r["resourceType"] == "Patient")


def hook_call(
    resources: list[dict], server: str | None, token: str | None = TOKEN, **prefetch
) -> dict:
    """A patient-view call naming ``server``; its prefetch: ``prefetch`` only."""
    call = {
        "hook": "patient-view",
        "hookInstance": str(uuid.uuid4()),
        "context": {"userId": "Practitioner/77", "patientId": _patient_id(resources)},
        "prefetch": prefetch or None,
    }
    if server:
        call["fhirServer"] = server
    if token:
        call["fhirAuthorization"] = {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": 300,
            "scope": "patient/*.read",
            "subject": "lnrisk-cds",
        }
    return call


def card_of(client: TestClient, call: dict) -> dict:
    resp = client.post(SERVICE, json=call)
    assert resp.status_code == 200, resp.text
    (card,) = resp.json()["cards"]
    return card


def decision_of(card: dict) -> tuple[str, str, str]:
    """The summary, the risk-and-gate line and the decision line of a card."""
    lines = card["detail"].splitlines()
    return card["summary"], lines[0], lines[2]


def audit_line(hook_instance: str) -> dict:
    log = Path(os.environ["LNRISK_HOME"]).resolve() / "audit" / "audit.jsonl"
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    return next(line for line in lines if line["request_id"] == hook_instance)


def test_no_prefetch_gets_the_decision_of_the_full_prefetch(
    client: TestClient, fhir: FhirServer, charts
) -> None:
    """Fetched from the server, page by page, each chart gets the card the whole
    chart sent as prefetch gets."""
    decisions = set()
    for resources in charts:
        full = {**hook_call(resources, None, None), "prefetch": prefetch_for(resources)}
        expected = card_of(client, full)
        fhir.requests.clear()
        call = hook_call(resources, fhir.base)
        card = card_of(client, call)
        assert decision_of(card) == decision_of(expected)
        assert (
            "Read from the FHIR server (not in the prefetch): `patient`"
            in (card["detail"])
        )
        decisions.add(decision_of(card)[2])
        paths = fhir.paths()
        assert paths.count("Observation") > 2  # 30-odd results, 5 a page
        assert set(paths) == {
            "Patient/" + _patient_id(resources),
            *("Condition", "Observation", "Immunization"),
            *("MedicationStatement", "MedicationAdministration"),
        }
        assert {auth for _, auth in fhir.requests} == {f"Bearer {TOKEN}"}
        audit = audit_line(call["hookInstance"])
        assert audit["fetched_keys"] == 6 and audit["fetch_failed"] == 0
        assert audit["fetch_pages"] == len(fhir.requests)
        assert TOKEN not in json.dumps(audit) and fhir.base not in json.dumps(audit)
    assert len(decisions) > 1, decisions  # more than one decision was compared


def test_a_partial_prefetch_fetches_only_the_missing_keys(
    client: TestClient, fhir: FhirServer, charts
) -> None:
    resources = charts[0]
    full = prefetch_for(resources)
    expected = card_of(client, {**hook_call(resources, None, None), "prefetch": full})
    sent = {k: v for k, v in full.items() if k not in ("observations", "immunizations")}
    card = card_of(client, hook_call(resources, fhir.base, **sent))
    assert set(fhir.paths()) == {"Observation", "Immunization"}
    assert decision_of(card) == decision_of(expected)
    assert "(not in the prefetch): `observations`, `immunizations`." in card["detail"]


def test_the_bearer_token_is_required_and_a_401_is_named(
    client: TestClient, fhir: FhirServer, charts
) -> None:
    without = hook_call(charts[0], fhir.base, token=None)
    card = card_of(client, without)
    assert card["summary"].startswith("LN risk not computed — could not fetch ")
    assert "(HTTP 401 Unauthorized)" in card["summary"]
    assert len(fhir.requests) == 6  # each key tried once, without a token
    assert {auth for _, auth in fhir.requests} == {None}
    for key in ("patient", "observations", "immunizations"):
        line = next(
            x for x in card["detail"].splitlines() if x.startswith(f"- `{key}`")
        )
        assert "HTTP 401 Unauthorized: a valid bearer token is required" in line
        assert "the call carried no fhirAuthorization" in line
    assert "Decision:" not in card["detail"]
    fhir.requests.clear()
    wrong = card_of(client, hook_call(charts[0], fhir.base, token="expired"))
    assert "HTTP 401" in wrong["summary"]
    assert "no fhirAuthorization" not in wrong["detail"]
    assert {auth for _, auth in fhir.requests} == {"Bearer expired"}
    # an open server is read without a token
    fhir.token = None
    assert "Decision:" in card_of(client, without)["detail"]


def test_a_server_not_listed_is_never_contacted(
    client: TestClient, fhir: FhirServer, charts, monkeypatch
) -> None:
    monkeypatch.setenv("LNRISK_CDS_FHIR_SERVERS", "https://ehr.example.org/fhir")
    call = hook_call(charts[0], fhir.base)
    card = card_of(client, call)
    assert fhir.requests == []
    assert card["summary"].startswith("LN risk not computed — prefetch lacks: patient")
    assert "is not one this service is configured to read" in card["detail"]
    assert "`LNRISK_CDS_FHIR_SERVERS`" in card["detail"]
    assert audit_line(call["hookInstance"])["fhir_server_refused"] == 1
    monkeypatch.delenv("LNRISK_CDS_FHIR_SERVERS")  # the default: none
    card_of(client, hook_call(charts[0], fhir.base))
    # a path below a listed server is another server
    monkeypatch.setenv("LNRISK_CDS_FHIR_SERVERS", fhir.base)
    card_of(client, hook_call(charts[0], fhir.base + "/Patient"))
    assert fhir.requests == []
    # plain http is refused for any host but this one: the setting is invalid
    monkeypatch.setenv("LNRISK_CDS_FHIR_SERVERS", f"{fhir.base},http://ehr.example.org")
    card = card_of(client, hook_call(charts[0], fhir.base))
    assert fhir.requests == []
    assert "setting of the FHIR servers it reads is invalid" in card["detail"]


def test_a_slow_server_gets_a_card_within_the_budget(
    client: TestClient, fhir: FhirServer, charts, monkeypatch
) -> None:
    monkeypatch.setenv("LNRISK_CDS_FHIR_SECONDS", "1")
    fhir.delay = 4.0
    started = time.monotonic()
    resp = client.post(SERVICE, json=hook_call(charts[0], fhir.base))
    took = time.monotonic() - started
    assert resp.status_code == 200, resp.text
    (card,) = resp.json()["cards"]
    assert took < 3.0, took
    assert "(no answer within the 1 s budget)" in card["summary"]
    assert card["detail"].count("no answer within the 1 s budget") == 6


# --- the client on its own: what it refuses, and why -------------------------------


def _fetch(fhir: FhirServer, resources: list[dict], keys=None, **kw):
    from data_schema.fhir import load_mapping
    from serving.cds_hooks import prefetch_templates
    from serving.fhir_client import fetch_missing

    templates = prefetch_templates(load_mapping())
    wanted = {k: templates[k] for k in keys or templates}
    patient_id = kw.pop("patient_id", _patient_id(resources))
    return fetch_missing(fhir.base, wanted, patient_id, TOKEN, kw.pop("seconds", 5))


def test_a_history_longer_than_the_page_cap_is_not_screened_cut_short(
    fhir: FhirServer, charts
) -> None:
    from serving.fhir_client import MAX_PAGES

    fhir.page_size = 1
    (got,) = _fetch(fhir, charts[0], ["observations"]).values()
    assert got.value is None and got.pages == MAX_PAGES
    assert got.problem.startswith(f"more than {MAX_PAGES} pages")
    fhir.page_size = 100
    (got,) = _fetch(fhir, charts[0], ["observations"]).values()
    assert got.pages == 1 and len(got.value["entry"]) > MAX_PAGES


def test_another_patient_s_resources_refuse_the_key(fhir: FhirServer, charts) -> None:
    fhir.ignore_patient = True
    got = _fetch(fhir, charts[0], ["observations", "conditions"])
    for fetched in got.values():
        assert "of another patient" in fetched.problem
    fhir.ignore_patient = False
    fhir.patient_override = next(r for r in charts[1] if r["resourceType"] == "Patient")
    (got,) = _fetch(fhir, charts[0], ["patient"]).values()
    assert got.problem == "the Patient returned is not the patient in context"
    fhir.patient_override = {"resourceType": "Bundle", "type": "searchset"}
    (got,) = _fetch(fhir, charts[0], ["patient"]).values()
    assert got.problem == "the answer's resourceType is Bundle, not Patient"
    fhir.patient_override = "<html>Sign in</html>"
    (got,) = _fetch(fhir, charts[0], ["patient"]).values()
    assert got.problem == "the answer is not a JSON object (text/html)"


def test_a_next_link_off_the_server_is_not_followed(fhir: FhirServer, charts) -> None:
    fhir.next_base = "http://127.0.0.2:9/fhir"
    (got,) = _fetch(fhir, charts[0], ["observations"]).values()
    assert got.problem == "a next link leads off the FHIR server: not followed"
    assert len(fhir.requests) == 1


def test_an_unknown_patient_and_a_bad_id_are_reported(fhir: FhirServer, charts) -> None:
    (got,) = _fetch(fhir, charts[0], ["patient"], patient_id="nobody").values()
    assert got.problem == "HTTP 404 Not Found: Patient/nobody is not known"
    got = _fetch(fhir, charts[0], patient_id="../../admin")
    assert all("not a FHIR id" in f.problem for f in got.values())
    assert len(fhir.requests) == 1  # the first call only


def test_the_access_setting_is_checked(monkeypatch) -> None:
    from serving.fhir_client import FhirAccess, FhirAccessError

    monkeypatch.delenv("LNRISK_CDS_FHIR_SERVERS", raising=False)
    monkeypatch.delenv("LNRISK_CDS_FHIR_SECONDS", raising=False)
    assert FhirAccess.from_env() == FhirAccess(frozenset(), 5.0)
    monkeypatch.setenv(
        "LNRISK_CDS_FHIR_SERVERS",
        "https://ehr.example.org/fhir/, http://localhost:8080/fhir,http://[::1]/r4",
    )
    access = FhirAccess.from_env()
    assert access.allows("https://ehr.example.org/fhir")
    assert access.allows("http://localhost:8080/fhir/")
    assert access.allows("http://[::1]/r4")
    assert not access.allows("https://ehr.example.org")
    assert not access.allows("http://ehr.example.org/fhir")
    assert not access.allows("https://ehr.example.org/fhir/Patient")
    for bad in (
        "http://ehr.example.org/fhir",
        "ftp://ehr.example.org",
        "https://user:pw@ehr.example.org/fhir",
        "https://ehr.example.org/fhir?x=1",
        "ehr.example.org",
    ):
        monkeypatch.setenv("LNRISK_CDS_FHIR_SERVERS", bad)
        with pytest.raises(FhirAccessError, match="LNRISK_CDS_FHIR_SERVERS"):
            FhirAccess.from_env()
    monkeypatch.delenv("LNRISK_CDS_FHIR_SERVERS")
    for bad in ("0", "-1", "61", "soon", "nan"):
        monkeypatch.setenv("LNRISK_CDS_FHIR_SECONDS", bad)
        with pytest.raises(FhirAccessError, match="LNRISK_CDS_FHIR_SECONDS"):
            FhirAccess.from_env()
