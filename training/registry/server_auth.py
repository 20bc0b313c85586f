"""The team server's authorization hook: basic auth plus a guard on ``@champion``.

MLflow's basic-auth app grants READ / EDIT / MANAGE per registered model, and setting
an alias only needs EDIT: a data scientist who may register versions could also move
``@champion``. The release decision is narrower than that, so the team server's auth
config names :func:`authenticate_with_alias_guard` as its ``authorization_function``.
It authenticates exactly as MLflow does, then refuses (HTTP 403, saying why) a request
that sets or deletes a guarded alias unless the user is an admin or holds MANAGE on
the registered model (the release manager role, :mod:`training.registry.team_server`).
The first assignment of a guarded alias (a registry without a champion) is allowed,
so the first registered version can still become the champion.

The guard relies on private functions of ``mlflow.server.auth`` (listed in
:data:`MLFLOW_PRIVATE_API`); they are checked against the pinned MLflow version by the
tests, and this module must be revisited when MLflow is upgraded.
"""

from __future__ import annotations

import os
from typing import Any

GUARDED_ALIASES_ENV = "LNRISK_GUARDED_ALIASES"
"""Comma-separated aliases only release managers move (default: ``champion``)."""

MLFLOW_PRIVATE_API: tuple[str, ...] = (
    "authenticate_request_basic_auth",
    "_get_role_permission_or_default",
    "_role_permission_for",
    "_get_model_registry_store",
    "store",
)
"""Names of ``mlflow.server.auth`` the guard calls (pinned to mlflow 3.17.x)."""

ALIAS_ENDPOINT_SUFFIX = "/mlflow/registered-models/alias"


def guarded_aliases() -> frozenset[str]:
    raw = os.environ.get(GUARDED_ALIASES_ENV, "champion")
    return frozenset(a.strip() for a in raw.split(",") if a.strip())


def _alias_request(request: Any) -> tuple[str, str] | None:
    """(model name, alias) of a request that sets or deletes an alias, else None."""
    if not request.path.endswith(ALIAS_ENDPOINT_SUFFIX):
        return None
    if request.method == "POST":
        body = request.get_json(force=True, silent=True) or {}
        name, alias = body.get("name"), body.get("alias")
    elif request.method == "DELETE":
        body = request.get_json(force=True, silent=True) or {}
        name = request.args.get("name") or body.get("name")
        alias = request.args.get("alias") or body.get("alias")
    else:
        return None
    if not name or not alias:
        return None
    return str(name), str(alias)


def _may_move_guarded_alias(username: str, name: str, alias: str) -> bool:
    from mlflow.exceptions import MlflowException
    from mlflow.server import auth

    if auth.store.get_user(username).is_admin:
        return True
    registry = auth._get_model_registry_store()
    try:
        registry.get_model_version_by_alias(name, alias)
    except MlflowException:
        return True  # no holder yet: the first champion may be set by its trainer
    permission = auth._get_role_permission_or_default(
        auth._role_permission_for(
            username=username,
            resource_type="registered_model",
            resource_key=name,
            workspace_lookup_id=name,
            workspace_fetcher=registry.get_registered_model,
            workspace_label="registered model",
        )
    )
    return bool(permission.can_manage)


def authenticate_with_alias_guard() -> Any:
    """MLflow's basic auth, then the guarded-alias check (``authorization_function``).

    Returns the request's ``Authorization`` when it may proceed, or a Flask response
    (401 from basic auth, 403 from the guard).
    """
    from flask import make_response, request
    from mlflow.server import auth

    authorization = auth.authenticate_request_basic_auth()
    target = _alias_request(request)
    if target is None or not hasattr(authorization, "username"):
        return authorization
    name, alias = target
    if alias in guarded_aliases() and not _may_move_guarded_alias(
        authorization.username, name, alias
    ):
        response = make_response(
            f"Permission denied: moving @{alias} of {name} needs MANAGE on the "
            "registered model (the release manager role)"
        )
        response.status_code = 403
        return response
    return authorization
