"""Screen patients from Python with BentoML's client (the service must be running).

    python examples/screen_client.py [http://127.0.0.1:3000]

Research screening support, not a diagnostic device.
"""

import sys

import bentoml

URL = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:3000"
patient = {
    "patient_id": "P-17",
    "sex": "male",
    "date_of_birth": "2002-03-14",
    "anti_dsdna_iu_ml": 800,
    "c3_g_l": 0.45,
    "c4_g_l": 0.05,
    "anti_c1q_positive": True,
}

with bentoml.SyncHTTPClient(URL) as client:  # add token="<key>" with LNRISK_API_KEY
    decision = client.screen(patient=patient, screening_date="2026-12-01")
    print(
        decision["status"], round(decision["risk_2y"], 3), decision["criteria_version"]
    )
    for verdict in decision["verdicts"][:3]:
        print(f"  {verdict['id']}: {verdict['verdict']} — {verdict['reason']}")
    batch = client.screen_batch(patients=[patient, {"sex": "female", "age_years": 40}])
    print(batch["counts"])
    try:
        client.screen(patient={**patient, "c3_g_l": 12})
    except bentoml.exceptions.BentoMLException as err:  # HTTP 400, names the field
        print(type(err).__name__, str(err)[:100])
