"""What a CDS Hooks call's prefetch lacks, read from the client's FHIR server.

CDS Hooks 2.0 ("Prefetch", "FHIR Resource Access"): a call names the client's FHIR
server (``fhirServer``) and may carry a bearer token for it (``fhirAuthorization``);
a service may fetch what the prefetch does not carry. This module runs the
discovery's prefetch templates against that server: ``{{context.patientId}}``
filled in (URL-encoded), ``GET {fhirServer}/{query}`` with ``Accept:
application/fhir+json`` and ``Authorization: Bearer <access_token>`` when a token is
given, searchset pages followed through their ``next`` links.

Each key comes back as the resource or Bundle a client would have sent, or as the
reason it could not be had: an HTTP status (with the OperationOutcome's diagnostics),
no answer within the time budget, a body that is not JSON, not the expected resource
type, a Patient who is not the patient in context, resources of another patient, or
more pages or entries than the caps — a history cut short is reported, never
screened.

Configuration (environment, read on every call, so a changed value applies to the
next call of a running worker):

* ``LNRISK_CDS_FHIR_SERVERS`` — comma-separated base URLs of the FHIR servers the
  service may read (``https://ehr.example.org/fhir``). A call's ``fhirServer`` must
  equal one of them (compared as written, a trailing ``/`` ignored). Each must be
  ``https``, except on ``localhost``, ``127.0.0.1`` or ``[::1]``. Unset or empty:
  nothing is fetched. The URL comes from the request, so it is never fetched
  unless listed here (server-side request forgery).
* ``LNRISK_CDS_FHIR_SECONDS`` — the time budget of one hook call's fetching, all
  keys and pages together (default 5; at most 60).

The access token is sent to the listed server only: redirects are not followed and
a ``next`` link outside the server's base URL is refused. It is never logged.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

import httpx

SERVERS_VARIABLE = "LNRISK_CDS_FHIR_SERVERS"
SECONDS_VARIABLE = "LNRISK_CDS_FHIR_SECONDS"
DEFAULT_SECONDS = 5.0
MAX_SECONDS = 60.0
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
PATIENT_PLACEHOLDER = "{{context.patientId}}"

MAX_PAGES = 20  # per query: the first page and 19 more
MAX_ENTRIES = 5_000  # per query, over all its pages
PAGE_SIZE = MAX_ENTRIES // MAX_PAGES  # asked for (``_count``); a server may send fewer
MAX_PAGE_BYTES = 32 * 1024 * 1024  # one response body
FETCH_THREADS = 16  # per worker process, shared by concurrent hook calls

#: FHIR R4 ``id``: 1–64 of A-Z a-z 0-9 - . (and not a path segment like ``..``).
FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")

log = logging.getLogger(__name__)


class FhirAccessError(ValueError):
    """The FHIR access configuration is invalid; the message names the variable."""


@dataclass(frozen=True)
class FhirAccess:
    """Which FHIR servers a hook call may have read, and how long fetching may take.

    Attributes:
        servers: base URLs, without a trailing ``/``.
        seconds: time budget of one call's fetching (s).
    """

    servers: frozenset[str] = frozenset()
    seconds: float = DEFAULT_SECONDS

    @classmethod
    def from_env(cls) -> FhirAccess:
        """The access the environment configures.

        Raises:
            FhirAccessError: a listed URL is not an absolute http(s) URL, is plain
                http on a host other than the local one, or the budget is not a
                number of seconds in (0, 60].
        """
        raw = os.environ.get(SERVERS_VARIABLE) or ""
        servers = frozenset(
            _checked_base(url.strip()) for url in raw.split(",") if url.strip()
        )
        budget = os.environ.get(SECONDS_VARIABLE) or str(DEFAULT_SECONDS)
        try:
            seconds = float(budget)
        except ValueError:
            seconds = float("nan")
        if not 0 < seconds <= MAX_SECONDS:  # also refuses nan
            raise FhirAccessError(
                f"{SECONDS_VARIABLE}={budget[:40]!r}: seconds in (0, {MAX_SECONDS:g}]"
            )
        return cls(servers, seconds)

    def allows(self, fhir_server: str) -> bool:
        """Whether the call's ``fhirServer`` is one the service may read."""
        return fhir_server.rstrip("/") in self.servers


def _checked_base(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise FhirAccessError(
            f"{SERVERS_VARIABLE}: {url[:100]!r} is not an http(s) URL"
        )
    if parts.query or parts.fragment or parts.username or parts.password:
        raise FhirAccessError(
            f"{SERVERS_VARIABLE}: {url[:100]!r}: a base URL has no query, fragment "
            "or credentials"
        )
    if parts.scheme != "https" and parts.hostname not in LOCAL_HOSTS:
        raise FhirAccessError(
            f"{SERVERS_VARIABLE}: {url[:100]!r} must be https (plain http only on "
            "localhost, 127.0.0.1 or [::1])"
        )
    return url.rstrip("/")


@dataclass(frozen=True)
class Fetched:
    """One prefetch key read from the server, or why it could not be.

    Attributes:
        key: the prefetch key (``observations``).
        value: the resource, or a searchset Bundle holding every page's entries;
            None when it could not be fetched.
        problem: why not (None when fetched).
        pages: responses read for it.
    """

    key: str
    value: dict[str, Any] | None = None
    problem: str | None = None
    pages: int = 0


class _RefusedError(Exception):
    """A key cannot be fetched; the message is the card's reason."""


class _OutOfTimeError(Exception):
    """The call's budget is spent: stop reading."""


def fill(template: str, patient_id: str) -> str:
    """A prefetch template with the patient's id, URL-encoded, filled in."""
    return template.replace(PATIENT_PLACEHOLDER, quote(patient_id, safe=""))


def expected_type(template: str) -> str:
    """The resource type a template answers: ``Patient`` for ``Patient/{id}``, the
    searched type (answered by a searchset Bundle) for ``Type?…``."""
    return re.split(r"[/?]", template, maxsplit=1)[0]


def fetch_missing(
    fhir_server: str,
    templates: dict[str, str],
    patient_id: str,
    access_token: str | None,
    seconds: float,
) -> dict[str, Fetched]:
    """Run the prefetch templates against the client's FHIR server.

    The keys are fetched at once (one thread each, pages in order); whatever has
    not arrived when ``seconds`` have passed is reported as not answered in time,
    so the call returns within the budget.

    Args:
        fhir_server: the server's base URL (checked against the allow-list by the
            caller).
        templates: prefetch key → template (``Observation?patient={{context.
            patientId}}&code=…``), the keys to fetch.
        patient_id: ``context.patientId``.
        access_token: ``fhirAuthorization.access_token``; None sends no
            ``Authorization`` header.
        seconds: the time budget, all keys and pages together (s).

    Returns:
        Per key: the resource or Bundle, or why it could not be fetched.
    """
    if not FHIR_ID.fullmatch(patient_id) or set(patient_id) == {"."}:
        why = "context.patientId is not a FHIR id (1–64 of A–Z, a–z, 0–9, '-', '.')"
        return {key: Fetched(key, problem=why) for key in templates}
    deadline = time.monotonic() + seconds
    cancelled = threading.Event()
    late = f"no answer within the {seconds:g} s budget ({SECONDS_VARIABLE})"
    base = fhir_server.rstrip("/")
    headers = {"Accept": "application/fhir+json"}
    if access_token is not None:
        headers["Authorization"] = f"Bearer {access_token}"
    client, pool = _shared()
    futures: dict[str, Future[Fetched]] = {
        key: pool.submit(
            _fetch_key,
            client,
            base,
            key,
            template,
            patient_id,
            headers,
            deadline,
            cancelled,
            late,
        )
        for key, template in templates.items()
    }
    done, _ = wait(futures.values(), timeout=max(deadline - time.monotonic(), 0.0))
    cancelled.set()
    results: dict[str, Fetched] = {}
    for key, future in futures.items():
        if future not in done:
            future.cancel()
            results[key] = Fetched(key, problem=late)
            continue
        try:
            results[key] = future.result()
        except Exception as exc:  # a bug must not cost the card
            # the type only: a message could carry the URL, which names the patient
            log.error("fetching %s from the FHIR server: %s", key, type(exc).__name__)
            results[key] = Fetched(key, problem=f"failed ({type(exc).__name__})")
    return results


def _fetch_key(
    client: httpx.Client,
    base: str,
    key: str,
    template: str,
    patient_id: str,
    headers: dict[str, str],
    deadline: float,
    cancelled: threading.Event,
    late: str,
) -> Fetched:
    rtype = expected_type(template)
    url = f"{base}/{fill(template, patient_id)}"
    pages = 0
    try:
        if "?" not in template:  # a read: one resource
            resource = _get(client, url, headers, deadline, cancelled)
            pages = 1
            _check_resource(resource, rtype, patient_id)
            return Fetched(key, resource, pages=pages)
        url += f"&_count={PAGE_SIZE}"
        entries: list[dict] = []
        next_url: str | None = url
        while next_url is not None:
            if pages == MAX_PAGES:
                raise _RefusedError(
                    f"more than {MAX_PAGES} pages: the history is not screened cut "
                    "short"
                )
            bundle = _get(client, next_url, headers, deadline, cancelled)
            pages += 1
            entries += _searchset_entries(bundle, rtype, patient_id)
            if len(entries) > MAX_ENTRIES:
                raise _RefusedError(
                    f"more than {MAX_ENTRIES:,} {rtype} resources: the history is "
                    "not screened cut short"
                )
            next_url = _next_link(bundle, base, next_url)
    except _RefusedError as exc:
        return Fetched(key, problem=str(exc), pages=pages)
    except _OutOfTimeError:
        return Fetched(key, problem=late, pages=pages)
    bundle = {"resourceType": "Bundle", "type": "searchset", "entry": entries}
    return Fetched(key, bundle, pages=pages)


def _get(
    client: httpx.Client,
    url: str,
    headers: dict[str, str],
    deadline: float,
    cancelled: threading.Event,
) -> dict[str, Any]:
    """One GET, its body read within the budget and parsed as JSON."""
    remaining = deadline - time.monotonic()
    if remaining <= 0 or cancelled.is_set():
        raise _OutOfTimeError
    try:
        with client.stream(
            "GET", url, headers=headers, timeout=httpx.Timeout(remaining)
        ) as resp:
            body = bytearray()
            for chunk in resp.iter_bytes():
                body += chunk
                if cancelled.is_set() or time.monotonic() > deadline:
                    raise _OutOfTimeError
                if len(body) > MAX_PAGE_BYTES:
                    raise _RefusedError(
                        f"a response over {MAX_PAGE_BYTES // 2**20} MB was not read"
                    )
    except httpx.TimeoutException as exc:
        raise _OutOfTimeError from exc
    except (httpx.HTTPError, httpx.InvalidURL) as exc:  # refused, reset, TLS, …
        raise _RefusedError(f"could not be read ({type(exc).__name__})") from exc
    try:
        payload = json.loads(bytes(body))
    except (ValueError, UnicodeDecodeError):
        payload = None
    if resp.status_code != 200:
        raise _RefusedError(_status_problem(resp, payload, "Authorization" in headers))
    if not isinstance(payload, dict):
        media = resp.headers.get("content-type", "no content type")[:60]
        raise _RefusedError(f"the answer is not a JSON object ({media})")
    return payload


def _status_problem(resp: httpx.Response, payload: Any, token_sent: bool) -> str:
    """``HTTP 401 Unauthorized: <OperationOutcome diagnostics>``."""
    why = f"HTTP {resp.status_code} {resp.reason_phrase}".rstrip()
    if isinstance(payload, dict) and payload.get("resourceType") == "OperationOutcome":
        said = [
            str(issue.get("diagnostics") or (issue.get("details") or {}).get("text"))
            for issue in payload.get("issue") or []
            if isinstance(issue, dict)
            and (issue.get("diagnostics") or (issue.get("details") or {}).get("text"))
        ]
        if said:
            why += ": " + "; ".join(said)[:200]
    if 300 <= resp.status_code < 400:
        why += " (redirects are not followed)"
    if resp.status_code in (401, 403) and not token_sent:
        why += " (the call carried no fhirAuthorization)"
    return why


def _check_resource(resource: dict[str, Any], rtype: str, patient_id: str) -> None:
    found = resource.get("resourceType")
    if found != rtype:
        raise _RefusedError(
            f"the answer's resourceType is {str(found)[:40]}, not {rtype}"
        )
    if rtype == "Patient" and resource.get("id") != patient_id:
        raise _RefusedError("the Patient returned is not the patient in context")


#: The element of each searched type that names its patient.
_PATIENT_ELEMENT = {"Immunization": "patient"}


def _searchset_entries(
    bundle: dict[str, Any], rtype: str, patient_id: str
) -> list[dict[str, Any]]:
    """A page's resources of the searched type, each checked to be the patient's.

    A server that ignored the ``patient`` parameter would return other patients'
    resources: the key is refused rather than read into this patient's record.
    Entries of other types (an OperationOutcome of search mode ``outcome``, say)
    are left out.
    """
    found = bundle.get("resourceType")
    if found != "Bundle":
        raise _RefusedError(
            f"the answer's resourceType is {str(found)[:40]}, not Bundle (searchset)"
        )
    if bundle.get("type") != "searchset":
        kind = str(bundle.get("type"))[:40]
        raise _RefusedError(f"the answer is a Bundle of type {kind}, not searchset")
    kept = []
    for entry in bundle.get("entry") or []:
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict) or resource.get("resourceType") != rtype:
            continue
        ref = (resource.get(_PATIENT_ELEMENT.get(rtype, "subject")) or {}).get(
            "reference"
        )
        if isinstance(ref, str) and not _names_patient(ref, patient_id):
            raise _RefusedError(
                f"the search returned {rtype} resources of another patient (did the "
                "server ignore the patient parameter?)"
            )
        kept.append({"resource": resource})
    return kept


def _names_patient(reference: str, patient_id: str) -> bool:
    """Whether a reference (``Patient/1``, absolute, versioned) names the patient;
    a reference that is not to a Patient (``urn:uuid:…``) is not contradicted."""
    parts = reference.split("/_history/")[0].split("/")
    if len(parts) < 2 or parts[-2] != "Patient":
        return True
    return parts[-1] == patient_id


def _next_link(bundle: dict[str, Any], base: str, current: str) -> str | None:
    """The ``next`` page's URL, which must stay on the same server."""
    for link in bundle.get("link") or []:
        if not isinstance(link, dict) or link.get("relation") != "next":
            continue
        url = link.get("url")
        if not isinstance(url, str) or not url:
            return None
        url = urljoin(current, url)
        here, there = urlsplit(base), urlsplit(url)
        same_origin = (here.scheme, here.netloc) == (there.scheme, there.netloc)
        root, path = here.path.rstrip("/"), there.path.rstrip("/")
        inside = path == root or path.startswith(root + "/")
        if not same_origin or not inside or ".." in path.split("/"):
            raise _RefusedError("a next link leads off the FHIR server: not followed")
        return url
    return None


# One HTTP client (connection pool) and one thread pool per worker process.
_lock = threading.Lock()
_state: dict[str, Any] = {}


def _shared() -> tuple[httpx.Client, ThreadPoolExecutor]:
    with _lock:
        if _state.get("pid") != os.getpid():  # first use, or a forked child
            # httpx logs each request's URL at INFO; here the URL names the patient
            httpx_log = logging.getLogger("httpx")
            if httpx_log.level == logging.NOTSET:
                httpx_log.setLevel(logging.WARNING)
            _state.update(
                pid=os.getpid(),
                client=httpx.Client(
                    follow_redirects=False,
                    limits=httpx.Limits(
                        max_connections=FETCH_THREADS,
                        max_keepalive_connections=FETCH_THREADS,
                    ),
                    headers={"User-Agent": "lnrisk-cds"},
                ),
                pool=ThreadPoolExecutor(FETCH_THREADS, thread_name_prefix="cds-fhir"),
            )
        return _state["client"], _state["pool"]
