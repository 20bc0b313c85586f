"""HL7 CDS Hooks 2.0 for the screening: discovery, ``patient-view`` and feedback.

An EHR discovers the service at ``GET /cds-services``, calls ``POST
/cds-services/{id}`` when a chart is opened (``patient-view``) with the patient's
FHIR resources in ``prefetch``, and gets *cards* back: the 2-year lupus nephritis
risk, the three-valued gate and the trial's decision, with the criteria that
decided it. ``POST /cds-services/{id}/feedback`` records what the clinician did
with a card (accepted / overridden) in the audit log, without patient data.

The rules a card states come from the same ``screen`` as ``POST /screen``; the
record is read from FHIR by :func:`data_schema.fhir.read_patient`. What a request's
prefetch lacks is read from the client's FHIR server (``fhirServer``) when that
server is one the service is configured to read (:mod:`serving.fhir_client`);
whatever still lacks gets a card saying what is missing and why, never an error:
missing data is never read as absent history.

Specification: https://cds-hooks.hl7.org/2.0/ (discovery, request, cards,
feedback; the JWT that authenticates the client is checked by
:mod:`serving.cds_auth`). Research screening support, not a diagnostic device.
"""

# The wire format's member names are the specification's (camelCase).
# ruff: noqa: N815
from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any, Literal

from fastapi import FastAPI, Request
from pydantic import BaseModel, ConfigDict, Field

from data_schema import field_specs
from data_schema.fhir import load_mapping
from serving import fhir_client
from serving.schemas import DISCLAIMER
from serving.security import BODY_DIGEST_KEY, CDS_PATH

if TYPE_CHECKING:
    from data_schema.fhir import FhirMapping
    from eligibility import Decision

#: The one hook this service answers.
HOOK = "patient-view"
SUMMARY_MAX = 140  # characters; the specification says "<140"

log = logging.getLogger(__name__)


class _Open(BaseModel):
    """A CDS Hooks object: unknown members (extensions) are allowed and kept."""

    model_config = ConfigDict(extra="allow")


class CdsService(_Open):
    """One entry of the discovery document."""

    hook: str = Field(description="The hook this service answers.")
    id: str = Field(description="The {id} of POST /cds-services/{id}.")
    title: str | None = None
    description: str
    prefetch: dict[str, str] | None = Field(
        default=None,
        description="Prefetch templates: key → FHIR query with {{context.patientId}}.",
    )
    usageRequirements: str | None = None


class Discovery(_Open):
    """``GET /cds-services``: the services this server offers."""

    services: list[CdsService]


class HookContext(_Open):
    """The ``patient-view`` context: who looks at which chart."""

    userId: str = Field(description="The user: Practitioner/123, PractitionerRole/…")
    patientId: str = Field(description="The FHIR id of the patient in view.")
    encounterId: str | None = None


class FhirAuthorization(_Open):
    """The bearer token the service may use on the client's FHIR server."""

    access_token: str
    token_type: Literal["Bearer"]
    expires_in: int
    scope: str
    subject: str


class HookRequest(_Open):
    """``POST /cds-services/{id}``: one hook call."""

    hook: str = Field(description="Must be patient-view.")
    hookInstance: uuid.UUID = Field(description="A UUID for this call.")
    fhirServer: str | None = Field(
        default=None, description="Base URL of the client's FHIR server."
    )
    fhirAuthorization: FhirAuthorization | None = None
    context: HookContext
    prefetch: dict[str, dict[str, Any] | None] | None = Field(
        default=None,
        description="The discovery's templates filled in: a resource or a Bundle "
        "per key (null: the client could not fetch it).",
    )


class Coding(_Open):
    code: str
    system: str | None = None
    display: str | None = None


class Source(_Open):
    label: str = Field(description="Who says so: model and criteria versions.")
    url: str | None = None
    topic: Coding | None = None


class Link(_Open):
    label: str
    url: str
    type: Literal["absolute", "smart"]


class Card(_Open):
    """One card: the summary an EHR shows, and the detail behind it."""

    uuid: str = Field(description="Identifies the card in feedback.")
    summary: str = Field(max_length=SUMMARY_MAX - 1)
    indicator: Literal["info", "warning", "critical"]
    source: Source
    detail: str | None = Field(default=None, description="GitHub-flavoured Markdown.")
    overrideReasons: list[Coding] | None = None
    links: list[Link] | None = None


class HookResponse(_Open):
    cards: list[Card]


class OverrideReason(_Open):
    reason: Coding | None = None
    userComment: str | None = None


class CardFeedback(_Open):
    card: str = Field(description="The uuid of the card.")
    outcome: Literal["accepted", "overridden"]
    acceptedSuggestions: list[dict[str, Any]] | None = None
    overrideReason: OverrideReason | None = None
    outcomeTimestamp: str


class Feedback(_Open):
    """``POST /cds-services/{id}/feedback``: what the user did with cards."""

    feedback: list[CardFeedback] = Field(min_length=1)


#: Why a clinician may set a card aside; feedback reports which one was chosen.
OVERRIDE_REASON_SYSTEM = "urn:lnrisk:cds:override-reason"
OVERRIDE_REASONS = (
    ("already-screened", "Already screened for this trial"),
    ("not-appropriate", "Trial not appropriate for this patient"),
    ("data-outdated", "The chart's data are out of date"),
)


def service_id(trial_id: str) -> str:
    """The service's {id}: one screening service per criteria file's trial."""
    return f"{trial_id.lower()}-ln-risk"


#: Prefetch key per resource type the FHIR mapping reads, and the search parameter
#: that selects it by code (FHIR R4 search parameters of each resource).
PREFETCH_KEYS = {
    "Condition": "conditions",
    "Observation": "observations",
    "MedicationStatement": "medicationStatements",
    "MedicationAdministration": "medicationAdministrations",
    "Immunization": "immunizations",
}
CODE_SEARCH = {
    "Condition": "code",
    "Observation": "code",
    "MedicationStatement": "code",
    "MedicationAdministration": "code",
    "Immunization": "vaccine-code",
}


def prefetch_templates(mapping: FhirMapping) -> dict[str, str]:
    """What the screening reads, as CDS Hooks prefetch templates.

    One query per resource type the mapping reads, restricted to the codes the
    mapping reads from that type (``code=system|code,…``): a client sends the labs,
    diagnoses, medicines and vaccines the model and the criteria use, not the whole
    chart.
    """
    patient = "{{context.patientId}}"
    templates = {"patient": f"Patient/{patient}"}
    for rtype, key in PREFETCH_KEYS.items():
        codes = sorted(
            {
                code.key
                for concept in mapping.concepts.values()
                if rtype in concept.resources
                for code in concept.codes
            }
        )
        if codes:
            templates[key] = (
                f"{rtype}?patient={patient}&{CODE_SEARCH[rtype]}=" + ",".join(codes)
            )
    return templates


def discovery(trial_id: str, gate: float, mapping: FhirMapping) -> Discovery:
    """The discovery document: one ``patient-view`` service (``gate``: the risk
    threshold of the criteria file)."""
    return Discovery(
        services=[
            CdsService(
                hook=HOOK,
                id=service_id(trial_id),
                title=f"Lupus nephritis risk and {trial_id} screening",
                description=(
                    "2-year risk of new-onset lupus nephritis (calibrated model), "
                    f"the > {gate:.0%} risk gate and the {trial_id} eligibility "
                    "criteria, "
                    "with what to obtain when data are missing. " + DISCLAIMER
                ),
                prefetch=prefetch_templates(mapping),
                usageRequirements="Send every prefetch entry (an empty searchset "
                "Bundle when there is nothing): what is not sent is not known.",
            )
        ]
    )


def prefetch_gaps(request: HookRequest, templates: dict[str, str]) -> list[str]:
    """The prefetch keys the client did not fill (absent or null)."""
    sent = request.prefetch or {}
    return [key for key in templates if sent.get(key) is None]


def prefetch_resources(prefetch: dict[str, dict[str, Any] | None]) -> list[dict]:
    """Every resource of the prefetch: single resources and searchset entries."""
    resources: list[dict] = []
    for value in prefetch.values():
        if not value:
            continue
        if value.get("resourceType") == "Bundle":
            resources.extend(
                e["resource"]
                for e in value.get("entry") or []
                if isinstance(e, dict) and isinstance(e.get("resource"), dict)
            )
        else:
            resources.append(value)
    return resources


def prefetch_for(resources: list[dict]) -> dict[str, dict]:
    """The prefetch a client sends for these resources: the Patient, and a
    searchset Bundle per template (empty when the chart holds none)."""
    prefetch: dict[str, dict] = {
        key: {"resourceType": "Bundle", "type": "searchset", "entry": []}
        for key in PREFETCH_KEYS.values()
    }
    for resource in resources:
        rtype = resource.get("resourceType")
        if rtype == "Patient":
            prefetch["patient"] = resource
        elif rtype in PREFETCH_KEYS:
            prefetch[PREFETCH_KEYS[rtype]]["entry"].append({"resource": resource})
    return prefetch


def field_label(name: str) -> str:
    """A record field as a clinician reads it: 'Complement C3', not 'c3_g_l'."""
    spec = field_specs().get(name)
    if spec is None:
        return name
    return spec.description.split(". ")[0].split(" (")[0].rstrip(".")


def _shorten(items: list[str], room: int) -> str:
    """As many items as fit in ``room`` characters, then '+N more'."""
    shown: list[str] = []
    for i, item in enumerate(items):
        tail = f" +{len(items) - i - 1} more" if i < len(items) - 1 else ""
        if len(", ".join([*shown, item]) + tail) > room:
            if not shown:  # not even one fits: its start, then the count
                more = f"… +{len(items) - 1} more"
                return item[: max(room - len(more), 0)] + more
            return ", ".join(shown) + f" +{len(items) - len(shown)} more"
        shown.append(item)
    return ", ".join(shown)


def to_obtain(decision: Decision) -> list[str]:
    """What to measure or record, gate predictors first, without repeats."""
    return list(dict.fromkeys([*decision.gate_to_obtain, *decision.missing_fields]))


def summary(decision: Decision, trial_id: str) -> str:
    """The card's one line (< 140 characters)."""
    head = f"LN 2-year risk {decision.risk:.0%}".replace("%", " %") + f" — {trial_id} "
    if decision.status == "eligible":
        line = head + "candidate: confirm at the screening visit"
    elif decision.status == "ineligible":
        why = "risk below the gate" if decision.gate == "below" else "excluded"
        failing = [v.id for v in decision.verdicts if v.fails]
        line = head + f"not eligible: {why}"
        if failing and decision.gate != "below":
            line += " (" + _shorten(failing, SUMMARY_MAX - 4 - len(line)) + ")"
    else:
        line = head + "candidate: "
        # an open gate is settled by its few decisive predictors: name those first
        if decision.gate == "undetermined" and decision.gate_to_obtain:
            wanted = list(decision.gate_to_obtain)
        else:
            wanted = to_obtain(decision)
        labels = [field_label(f) for f in wanted]
        if labels:
            line += "obtain " + _shorten(labels, SUMMARY_MAX - 9 - len(line))
        else:
            line += "review " + _shorten(list(decision.to_confirm), 100)
    return line[: SUMMARY_MAX - 1]


INDICATOR = {"eligible": "warning", "needs_review": "info", "ineligible": "info"}


def _risk_line(decision: Decision, gate: float) -> str:
    low, high = decision.risk_range
    spread = "" if low == high else f" (plausible {low:.0%}–{high:.0%})"
    return (
        f"**2-year lupus nephritis risk {decision.risk:.0%}**{spread}; the gate "
        f"(risk > {gate:.0%}) is **{decision.gate}**."
    )


def _deciding(decision: Decision, provenance: dict[str, str]) -> list[str]:
    """The criteria that decided, each with its reason and the resources behind it."""
    deciding = [v for v in decision.verdicts if v.fails] or [
        v for v in decision.verdicts if v.verdict in ("unknown", "needs_judgment")
    ]
    lines = []
    for v in deciding:
        sources = sorted({provenance[f] for f in v.evidence if f in provenance})
        basis = f" (from {', '.join(sources)})" if sources else ""
        lines.append(f"- `{v.id}` ({v.verdict}): {v.reason}{basis}")
    return lines


def detail(
    decision: Decision,
    gate: float,
    problems: list[str],
    provenance: dict[str, str] | None = None,
    fetched: Sequence[str] = (),
) -> str:
    """The card's Markdown: risk and gate, the deciding criteria, what to obtain,
    what in the chart could not be read, and which prefetch entries were read from
    the client's FHIR server (``fetched``)."""
    lines = [_risk_line(decision, gate), "", f"Decision: **{decision.status}**."]
    deciding = _deciding(decision, provenance or {})
    if deciding:
        lines += ["", "Deciding criteria:", *deciding]
    elif decision.status == "eligible":
        met = sum(v.verdict == "met" for v in decision.verdicts)
        lines += ["", f"Every criterion passes ({met} met as recorded)."]
    wanted = to_obtain(decision)
    if wanted:
        lines += ["", "To obtain: " + ", ".join(field_label(f) for f in wanted) + "."]
    if decision.to_confirm:
        confirm = ", ".join(f"`{c}`" for c in decision.to_confirm)
        lines += ["", f"At the screening visit: {confirm}."]
    if problems:
        lines += ["", "Not used from the chart:"]
        lines += [f"- {p}" for p in problems]
    if fetched:
        keys = ", ".join(f"`{key}`" for key in fetched)
        lines += ["", f"Read from the FHIR server (not in the prefetch): {keys}."]
    return "\n".join([*lines, "", f"_{DISCLAIMER}_"])


def override_reasons() -> list[Coding]:
    return [
        Coding(code=code, system=OVERRIDE_REASON_SYSTEM, display=display)
        for code, display in OVERRIDE_REASONS
    ]


def decision_card(
    decision: Decision,
    trial_id: str,
    gate: float,
    source: Source,
    problems: list[str],
    provenance: dict[str, str] | None = None,
    fetched: Sequence[str] = (),
) -> Card:
    """The screening as one card."""
    return Card(
        uuid=str(uuid.uuid4()),
        summary=summary(decision, trial_id),
        indicator=INDICATOR[decision.status],
        source=source,
        detail=detail(decision, gate, problems, provenance, fetched),
        overrideReasons=override_reasons(),
    )


def missing_card(
    gaps: list[str],
    templates: dict[str, str],
    source: Source,
    why: dict[str, str] | None = None,
    note: str = "",
) -> Card:
    """The card when the prefetch lacks entries: which, why they could not be
    fetched from the client's FHIR server (``why``, per key, when they were asked
    for), ``note`` on why they were not asked for, and how to send them."""
    why = why or {}
    asked = [key for key in gaps if key in why]
    lines = [
        "The LN risk screening needs these prefetch entries, which the request did "
        "not carry (or carried as null):",
        "",
        *[
            f"- `{key}`: `{templates[key]}`"
            + (f" — not fetched from the FHIR server: {why[key]}" if key in why else "")
            for key in gaps
        ],
        "",
        "Missing history is not read as absent history, so no risk or decision is "
        "given. " + (note + " " if note else "") + "Send every entry; an empty "
        "searchset Bundle says there is nothing.",
    ]
    if asked:
        head = "LN risk not computed — could not fetch "
        reasons = {why[key].split(":")[0].split(" (")[0] for key in asked}
        tail = f" ({reasons.pop()})" if len(reasons) == 1 else ""
        tail = tail if len(head + tail) < SUMMARY_MAX - 30 else ""
        line = head + _shorten(gaps, SUMMARY_MAX - 1 - len(head + tail)) + tail
    else:
        line = f"LN risk not computed — prefetch lacks: {', '.join(gaps)}"
    return Card(
        uuid=str(uuid.uuid4()),
        summary=line[: SUMMARY_MAX - 1],
        indicator="info",
        source=source,
        detail="\n".join(lines),
    )


def unreadable_card(problems: list[str], source: Source) -> Card:
    """The card when the chart has no usable patient (no sex, say)."""
    return Card(
        uuid=str(uuid.uuid4()),
        summary="LN risk not computed — the chart lacks what every screening needs",
        indicator="info",
        source=source,
        detail="\n".join(["Could not build the patient record:", "", *problems]),
    )


def feedback_outcome(feedback: Feedback) -> dict[str, Any]:
    """The audit fields of a feedback call: counts, card ids and reason codes.

    A user's free-text comment may name the patient, so only its presence is kept.
    """
    reasons = [
        f.overrideReason.reason.code
        for f in feedback.feedback
        if f.overrideReason and f.overrideReason.reason
    ]
    return {
        "accepted": sum(f.outcome == "accepted" for f in feedback.feedback),
        "overridden": sum(f.outcome == "overridden" for f in feedback.feedback),
        "cards": [f.card[:64] for f in feedback.feedback][:100],
        "override_reasons": sorted({r[:64] for r in reasons}),
        "comments": sum(
            bool(f.overrideReason and f.overrideReason.userComment)
            for f in feedback.feedback
        ),
    }


# --- the HTTP side: a FastAPI app BentoML mounts beside the service's own routes ---

app = FastAPI(
    title="CDS Hooks 2.0",
    version="2.0",
    docs_url=None,
    redoc_url=None,
    openapi_url=None,  # its paths are merged into the service's /docs.json
)


def _service() -> Any:
    """The LNRiskService instance of this worker."""
    import bentoml

    return bentoml.get_current_service()


def _source(svc: Any) -> Source:
    return Source(
        label=f"{svc.model_name} v{svc.model_version} · "
        f"{svc.criteria.criteria_version}",
        topic=Coding(
            code="trial-screening",
            system="urn:lnrisk:cds:topic",
            display=f"{svc.criteria.trial_id} screening",
        ),
    )


def _known(svc: Any, service: str) -> None:
    from fastapi import HTTPException

    if service != service_id(svc.criteria.trial_id):
        raise HTTPException(
            404, f"no CDS service {service[:80]!r}; GET {CDS_PATH} lists them"
        )


@app.get(CDS_PATH, response_model=Discovery, response_model_exclude_none=True)
def cds_discovery() -> Discovery:
    """CDS Hooks discovery: the ``patient-view`` screening service and its
    prefetch templates."""
    svc = _service()
    return discovery(svc.criteria.trial_id, svc.gate, load_mapping())


@app.post(
    CDS_PATH + "/{service}",
    response_model=HookResponse,
    response_model_exclude_none=True,
)
def cds_patient_view(service: str, call: HookRequest, http: Request) -> HookResponse:
    """A ``patient-view`` call: the screening of the patient in view, as cards.

    The prefetch is read with the project's FHIR mapping and screened as ``/screen``
    screens a record. A prefetch entry not sent (or null) is read from the client's
    FHIR server when the call names one the service may read
    (``LNRISK_CDS_FHIR_SERVERS``); an entry still missing gets a card naming it and
    why, instead of a decision. Research screening support for NCT05585671, not a
    diagnostic device.
    """
    from fastapi import HTTPException

    svc = _service()
    _known(svc, service)
    if call.hook != HOOK:
        raise HTTPException(400, f"hook: this service answers {HOOK!r} only")
    templates = prefetch_templates(load_mapping())
    gaps = prefetch_gaps(call, templates)
    done = Completion(call)
    if gaps and call.fhirServer:
        done = complete_prefetch(call, templates, gaps)
        gaps = [key for key in gaps if key not in done.fetched]
    if gaps:
        card = missing_card(gaps, templates, _source(svc), done.why, done.note)
        outcome = {**done.counts, "prefetch_missing": 1}
    else:
        card, screened = screen_chart(svc, done.call, done.fetched)
        outcome = {**done.counts, **screened}
    _audit(svc, http, "cds_patient_view", str(call.hookInstance), **outcome)
    return HookResponse(cards=[card])


@dataclass(frozen=True)
class Completion:
    """A call's prefetch after asking the client's FHIR server for what it lacks.

    Attributes:
        call: the call, the fetched entries in its prefetch.
        fetched: the prefetch keys read from the server.
        why: why each key asked for could not be fetched.
        note: for the card, why nothing was asked for (the server is not one this
            service reads).
        counts: for the audit line (``fetched_keys``, ``fetch_failed``,
            ``fetch_pages``, ``fhir_server_refused``): never the token or a URL.
    """

    call: HookRequest
    fetched: list[str] = field(default_factory=list)
    why: dict[str, str] = field(default_factory=dict)
    note: str = ""
    counts: dict[str, int] = field(default_factory=dict)


def complete_prefetch(
    call: HookRequest, templates: dict[str, str], gaps: list[str]
) -> Completion:
    """What the prefetch lacks (``gaps``), read from the call's ``fhirServer`` when
    the service may read it (``LNRISK_CDS_FHIR_SERVERS``, read on every call)."""
    server = call.fhirServer or ""
    try:
        access = fhir_client.FhirAccess.from_env()
    except fhir_client.FhirAccessError as exc:
        log.warning("CDS Hooks: FHIR server access not configured: %s", exc)
        note = (
            "This service's setting of the FHIR servers it reads is invalid "
            f"(`{fhir_client.SERVERS_VARIABLE}`, `{fhir_client.SECONDS_VARIABLE}`), "
            "so nothing was fetched from the call's `fhirServer`."
        )
        return Completion(call, note=note, counts={"fhir_server_refused": 1})
    if not access.allows(server):
        note = (
            "The FHIR server the call names (`fhirServer`) is not one this service "
            f"is configured to read (`{fhir_client.SERVERS_VARIABLE}`), so nothing "
            "was fetched from it."
        )
        return Completion(call, note=note, counts={"fhir_server_refused": 1})
    auth = call.fhirAuthorization
    results = fhir_client.fetch_missing(
        server,
        {key: templates[key] for key in gaps},
        call.context.patientId,
        auth.access_token if auth else None,
        access.seconds,
    )
    got = {key: r.value for key, r in results.items() if r.value is not None}
    why = {
        key: r.problem or "not fetched" for key, r in results.items() if r.value is None
    }
    prefetch = {**(call.prefetch or {}), **got}
    counts = {
        "fetched_keys": len(got),
        "fetch_failed": len(why),
        "fetch_pages": sum(r.pages for r in results.values()),
    }
    call = call.model_copy(update={"prefetch": prefetch})
    return Completion(call, list(got), why, counts=counts)


def screen_chart(
    svc: Any, call: HookRequest, fetched: Sequence[str] = ()
) -> tuple[Card, dict[str, int]]:
    """The prefetch read into a record and screened: one card, and the audit's
    outcome count (``fetched``: the prefetch keys read from the FHIR server)."""
    from bentoml.exceptions import InvalidArgument

    from eligibility import Table, screen_patients
    from serving.fhir import read_resources

    day = date.today()
    resources = prefetch_resources(call.prefetch or {})
    source = _source(svc)
    try:
        reading, record = read_resources(resources, day)
    except InvalidArgument as exc:
        return unreadable_card([str(exc)], source), {"unreadable": 1}
    if record.patient_id != call.context.patientId:
        why = "the prefetch's Patient is not the patient in context (patientId)"
        return unreadable_card([why], source), {"unreadable": 1}
    table = Table.from_record(record, day)
    decision = screen_patients(svc.model, table, svc.criteria).decision(0)
    problems = [f"{p.resource}: {p.why}" for p in reading.problems]
    card = decision_card(
        decision,
        svc.criteria.trial_id,
        svc.gate,
        source,
        problems,
        reading.provenance,
        fetched,
    )
    return card, {decision.status: 1}


@app.post(CDS_PATH + "/{service}/feedback")
def cds_feedback(service: str, feedback: Feedback, http: Request) -> dict:
    """What the user did with cards (accepted / overridden), for the audit log."""
    svc = _service()
    _known(svc, service)
    _audit(svc, http, "cds_feedback", None, **feedback_outcome(feedback))
    return {}


def _audit(
    svc: Any, http: Request, endpoint: str, hook_instance: str | None, **outcome: Any
) -> None:
    """One audit line, like the service's own: ids and counts, no patient data."""
    state = http.scope.get("state") or {}
    digest = state.get(BODY_DIGEST_KEY) or b""
    request_id = http.headers.get("x-request-id") or hook_instance or uuid.uuid4().hex
    svc.audit.write(
        request_id=request_id[:64],
        endpoint=endpoint,
        model_name=svc.model_name,
        model_version=svc.model_version,
        criteria_version=svc.criteria.criteria_version,
        n_patients=1 if endpoint == "cds_patient_view" else 0,
        input_sha256=svc.audit.hash_bytes(digest),
        **outcome,
    )
