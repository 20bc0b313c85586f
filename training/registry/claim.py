"""Moving ``@champion`` once when several promotions run at once.

MLflow's registry has no compare-and-set on an alias: two ``lnrisk promote`` started
together would both see the same champion, both pass the gate and both move the
alias. Before moving it, a promotion therefore claims the move: it checks that the
champion is still the version it evaluated, writes a claim token to a tag of the
registered model, waits :data:`SETTLE_SECONDS`, and proceeds only if the tag still
holds its own token and the champion is unchanged. Of promotions that write within
the settle time of each other, only the last writer proceeds; a later one finds the
champion already moved. This holds as long as the winner's alias calls take less
than the settle time, which is why the champion's alias is set first.
"""

from __future__ import annotations

import getpass
import os
import time
import uuid
from dataclasses import dataclass

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

CLAIM_TAG = "lnrisk.promotion_claim"
SETTLE_SECONDS = 2.0


@dataclass(frozen=True)
class Claim:
    """A promotion's exclusive right to move ``@champion`` from one version."""

    token: str
    champion: str
    challenger: str


def acting_user() -> str:
    """Who is acting: the tracking server's authenticated user, else the OS user.

    A team server accepted the request only with these credentials, so the name
    is the one the server authenticated.
    """
    return os.environ.get("MLFLOW_TRACKING_USERNAME") or getpass.getuser()


def alias_holder(name: str, alias: str) -> str | None:
    """The version behind ``name@alias``, or None."""
    try:
        return str(MlflowClient().get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


def claim_move(
    name: str,
    alias: str,
    *,
    champion: str,
    challenger: str,
    settle_seconds: float = SETTLE_SECONDS,
) -> Claim | None:
    """Claim moving ``name@alias`` from ``champion`` to ``challenger``.

    Returns the claim, or None when the champion has moved or another promotion
    wrote its claim later (re-checked after the settle time).
    """
    if alias_holder(name, alias) != champion:
        return None
    client = MlflowClient()
    token = f"{uuid.uuid4().hex} {champion}->{challenger} by {acting_user()}"
    client.set_registered_model_tag(name, CLAIM_TAG, token)
    time.sleep(settle_seconds)
    if client.get_registered_model(name).tags.get(CLAIM_TAG) != token:
        return None
    if alias_holder(name, alias) != champion:
        return None
    return Claim(token, champion, challenger)


def tag_finished_run(run_id: str, tags: dict[str, str]) -> None:
    """Set tags on a run that has already ended (the outcome of its claim)."""
    client = MlflowClient()
    for key, value in tags.items():
        client.set_tag(run_id, key, value)
