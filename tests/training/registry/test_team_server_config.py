"""The team server's settings, command line, auth config and alias guard (no server).

The running server, the roles and the jobs against it are tested in
``tests/team_server/`` (real PostgreSQL, real ``mlflow server``).
"""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
from pathlib import Path

import pytest
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from training.registry import server_auth
from training.registry.team_server import (
    AUTH_FUNCTION,
    TeamServer,
    auth_db_of,
    password_variable,
    redacted,
    server_command,
    server_env,
)

DB = "postgresql+psycopg://mlflow:s3cret@db.internal:5432/lnrisk_mlflow"


def test_settings_come_from_the_environment(tmp_path) -> None:
    server = TeamServer.from_env(
        {"LNRISK_TEAM_DB_URL": DB, "LNRISK_TEAM_ARTIFACTS": "s3://bucket/lnrisk",
         "LNRISK_TEAM_PORT": "5123"}
    )  # fmt: skip
    assert server.auth_db_url.endswith("/lnrisk_mlflow_auth")
    assert server.artifacts == "s3://bucket/lnrisk"
    assert server.url == "http://127.0.0.1:5123"
    local = TeamServer.from_env(
        {"LNRISK_TEAM_DB_URL": DB, "LNRISK_TEAM_ARTIFACTS": str(tmp_path / "a")}
    )
    assert Path(local.artifacts).is_absolute()


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"LNRISK_TEAM_ARTIFACTS": "/x"}, "LNRISK_TEAM_DB_URL"),
        ({"LNRISK_TEAM_DB_URL": "sqlite:///x.db", "LNRISK_TEAM_ARTIFACTS": "/x"},
         "LNRISK_TEAM_DB_URL"),
        ({"LNRISK_TEAM_DB_URL": DB}, "LNRISK_TEAM_ARTIFACTS"),
    ],
)  # fmt: skip
def test_missing_or_wrong_settings_are_named(env, named) -> None:
    with pytest.raises(ValueError, match=named):
        TeamServer.from_env(env)


def test_auth_database_and_redaction() -> None:
    assert auth_db_of("postgresql://u@h/db") == "postgresql://u@h/db_auth"
    assert "s3cret" not in redacted(DB) and "mlflow:***@" in redacted(DB)
    assert password_variable("dana-s") == "LNRISK_TEAM_PASSWORD_DANA_S"


def test_command_and_auth_config_hold_no_secret(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("MLFLOW_AUTH_ADMIN_PASSWORD", "not-in-any-file-123")
    server = TeamServer.from_env(
        {"LNRISK_TEAM_DB_URL": DB, "LNRISK_TEAM_ARTIFACTS": "gs://b/p"}
    )
    cmd = server_command(server)
    for flag in ("--serve-artifacts", "--artifacts-destination", "--app-name"):
        assert flag in cmd
    assert cmd[cmd.index("--app-name") + 1] == "basic-auth"
    assert cmd[cmd.index("--backend-store-uri") + 1] == DB
    env = server_env(server, tmp_path)
    ini = Path(env["MLFLOW_AUTH_CONFIG_PATH"]).read_text()
    assert f"authorization_function = {AUTH_FUNCTION}" in ini
    assert "database_uri = postgresql+psycopg://" in ini
    assert "not-in-any-file-123" not in ini and "admin_password" not in ini


def _request(method: str, path: str, **kwargs) -> Request:
    return Request(EnvironBuilder(method=method, path=path, **kwargs).get_environ())


def test_the_guard_recognises_alias_moves() -> None:
    path = "/api/2.0/mlflow/registered-models/alias"
    body = {"name": "ln-risk", "alias": "champion", "version": "3"}
    assert server_auth._alias_request(_request("POST", path, json=body)) == (
        "ln-risk", "champion",
    )  # fmt: skip
    deleted = _request("DELETE", path, query_string={"name": "m", "alias": "a"})
    assert server_auth._alias_request(deleted) == ("m", "a")
    assert server_auth._alias_request(_request("GET", path)) is None
    other = _request("POST", "/api/2.0/mlflow/runs/create", json=body)
    assert server_auth._alias_request(other) is None
    assert server_auth.guarded_aliases() == frozenset({"champion"})


def test_the_mlflow_internals_the_guard_calls_exist_in_the_pinned_version() -> None:
    assert importlib.metadata.version("mlflow").startswith("3.17.")
    source = Path(importlib.util.find_spec("mlflow.server.auth").origin).read_text()
    defined = set()
    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef):
            defined.add(node.name)
        elif isinstance(node, ast.Assign):
            defined |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.ImportFrom):
            defined |= {alias.asname or alias.name for alias in node.names}
    missing = set(server_auth.MLFLOW_PRIVATE_API) - defined
    assert not missing, f"mlflow.server.auth no longer defines {missing}"
