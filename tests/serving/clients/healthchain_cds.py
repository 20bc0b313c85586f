"""Drive the CDS Hooks service with HealthChain's CDS Hooks models (not ours).

Run inside a virtual environment with ``healthchain==0.16.*`` (its pins clash with
BentoML's). Arguments: the service's base URL and a JSON file holding a list of
``{"patientId": ..., "prefetch": {...}}`` charts. Every request is built with
HealthChain's ``CDSRequest`` / ``PatientViewContext`` / ``CDSFeedback``, every answer
parsed with its ``CDSServiceInformation`` / ``CDSResponse``; any mismatch raises.
Prints one JSON line summing up what was seen.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import httpx
from healthchain.models.hooks.patientview import PatientViewContext
from healthchain.models.requests.cdsrequest import CDSRequest
from healthchain.models.responses.cdsdiscovery import CDSServiceInformation
from healthchain.models.responses.cdsfeedback import CDSFeedback
from healthchain.models.responses.cdsresponse import CDSResponse


def call(http: httpx.Client, path: str, patient_id: str, prefetch: dict | None):
    request = CDSRequest(
        hook="patient-view",
        context=PatientViewContext(userId="Practitioner/123", patientId=patient_id),
        prefetch=prefetch,
    )
    body = json.loads(request.model_dump_json(exclude_none=True))
    resp = http.post(path, json=body)
    assert resp.status_code == 200, resp.text
    return CDSResponse.model_validate(resp.json())


def main(base_url: str, charts_file: str) -> None:
    charts = json.loads(Path(charts_file).read_text())
    with httpx.Client(base_url=base_url, timeout=60) as http:
        discovery = CDSServiceInformation.model_validate(
            http.get("/cds-services").json()
        )
        (service,) = discovery.services
        assert service.hook == "patient-view", service.hook
        assert set(charts[0]["prefetch"]) == set(service.prefetch or {})
        path = f"/cds-services/{service.id}"
        summaries, indicators, card_ids = [], [], []
        for chart in charts:
            response = call(http, path, chart["patientId"], chart["prefetch"])
            (card,) = response.cards
            assert card.source.label and card.detail
            summaries.append(card.summary)
            indicators.append(card.indicator.value)
            card_ids.append(card.uuid)
        lacking = dict(charts[0]["prefetch"])
        lacking.pop("observations")
        (missing,) = call(http, path, charts[0]["patientId"], lacking).cards
        now = datetime.now(UTC).isoformat()
        feedback = [
            CDSFeedback(card=card_ids[0], outcome="accepted", outcomeTimestamp=now),
            CDSFeedback(card=card_ids[1], outcome="overridden", outcomeTimestamp=now),
        ]
        sent = {"feedback": [json.loads(f.model_dump_json()) for f in feedback]}
        acknowledged = http.post(f"{path}/feedback", json=sent).status_code
    print(
        json.dumps(
            {
                "services": len(discovery.services),
                "prefetch_keys": sorted(service.prefetch or {}),
                "cards": len(summaries),
                "indicators": sorted(set(indicators)),
                "summaries": summaries,
                "missing_summary": missing.summary,
                "feedback_status": acknowledged,
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
