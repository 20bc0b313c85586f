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
    # A registry as columns, one list per field (null = not recorded); from pandas:
    # df.astype(object).where(df.notna(), None).to_dict("list")
    registry = {
        "patient_id": ["R-1", "R-2", "R-3"],
        "sex": ["female", "male", "female"],
        "age_years": [31, 24, None],
        "anti_dsdna_iu_ml": [40, 800, None],
        "c3_g_l": [1.1, 0.45, None],
    }
    table = client.screen_batch(columns=registry, screening_date="2026-12-01")
    print([(p["patient_id"], p["status"]) for p in table["patients"]])
    try:
        client.screen(patient={**patient, "c3_g_l": 12})
    except bentoml.exceptions.BentoMLException as err:  # HTTP 400, names the field
        print(type(err).__name__, str(err)[:100])
