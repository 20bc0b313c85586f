"""One real team server per test session: ``mlflow server`` on PostgreSQL, basic auth.

The session creates two databases (tracking store and user store) with random
names on the PostgreSQL server of ``LNRISK_TEST_POSTGRES_URL`` (default: the
loopback server with trust auth), starts the server as ``make team-server`` does
(:mod:`training.registry.team_server`), gives three users the three roles, and
drops both databases at the end. Jobs run as ``python -m training`` subprocesses
with the user's credentials in their environment, as a team member runs them.

Without a reachable PostgreSQL the tests skip, saying how to provide one; with
``LNRISK_REQUIRE_POSTGRES=1`` (set by ``make test``, hence by CI) they fail instead.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import yaml

from tests.servers import PROJECT, free_port

POSTGRES_URL = os.environ.get(
    "LNRISK_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
USERS = {  # user name → role (passwords are drawn per session)
    "rita-reviewer": "reviewer",
    "dana-scientist": "data-scientist",
    "remy-release": "release-manager",
}


def _postgres_or_skip() -> None:
    import psycopg

    try:
        with psycopg.connect(POSTGRES_URL, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.OperationalError as exc:
        message = (
            f"no PostgreSQL at {POSTGRES_URL} ({str(exc).strip()[:200]}). Start one "
            "(e.g. `docker run -p 5432:5432 -e POSTGRES_HOST_AUTH_METHOD=trust "
            "postgres:15`) or set LNRISK_TEST_POSTGRES_URL to a server where this "
            "user may create databases"
        )
        if os.environ.get("LNRISK_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"LNRISK_REQUIRE_POSTGRES=1: {message}")
        pytest.skip(message)


def _db_url(name: str) -> str:
    """The tracking-store URL of database ``name`` on the test PostgreSQL server."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(POSTGRES_URL)
    return urlunsplit(parts._replace(scheme="postgresql+psycopg", path=f"/{name}"))


def _drop(name: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)
            )
        )


@dataclass
class TeamServerProcess:
    """The session's team server, which tests may stop and start again."""

    settings: object  # training.registry.team_server.TeamServer
    config_dir: Path
    admin_password: str
    log_path: Path
    passwords: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return self.settings.url

    def start(self, timeout: float = 120) -> None:
        from training.registry.team_server import server_command, server_env

        env = server_env(self.settings, self.config_dir)
        env["MLFLOW_AUTH_ADMIN_PASSWORD"] = self.admin_password
        env["MLFLOW_FLASK_SERVER_SECRET_KEY"] = secrets.token_hex(16)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            server_command(self.settings), cwd=PROJECT, env=env,
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"mlflow server exited early:\n{self.log_tail()}")
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        pytest.fail(f"mlflow server not healthy within {timeout:g} s")

    def stop(self) -> None:
        if self.proc is None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.proc = None

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]

    def env_for(self, user: str, home: Path) -> dict[str, str]:
        """A job's environment: the server, the user's credentials, its own stores."""
        password = self.admin_password if user == "admin" else self.passwords[user]
        return {
            **os.environ,
            "MLFLOW_TRACKING_URI": self.url,
            # mlflow.set_registry_uri() in this process exports MLFLOW_REGISTRY_URI
            # (the session's SQLite store): the job's registry is the server too
            "MLFLOW_REGISTRY_URI": self.url,
            "MLFLOW_TRACKING_USERNAME": user,
            "MLFLOW_TRACKING_PASSWORD": password,
            "LNRISK_HOME": str(home),
            "BENTOML_HOME": str(home / "bentoml"),
        }

    @contextlib.contextmanager
    def as_admin(self) -> Iterator[None]:
        """In-process MLflow clients authenticate as the admin (environment)."""
        keys = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")
        saved = {k: os.environ.get(k) for k in keys}
        os.environ.update(dict(zip(keys, ("admin", self.admin_password), strict=True)))
        try:
            yield
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value

    def api(self, path: str, **params: object) -> dict:
        """GET a REST endpoint of the server as the admin."""
        response = httpx.get(
            f"{self.url}/api/2.0/mlflow/{path}", params=params,
            auth=("admin", self.admin_password), timeout=30,
        )  # fmt: skip
        response.raise_for_status()
        return response.json()

    def search_runs(self, filter_string: str = "") -> list[dict]:
        """Runs of the project's experiment matching ``filter_string`` (admin)."""
        experiment = self.api("experiments/get-by-name", experiment_name="ln-risk-2y")
        response = httpx.post(
            f"{self.url}/api/2.0/mlflow/runs/search",
            json={"experiment_ids": [experiment["experiment"]["experiment_id"]],
                  "filter": filter_string, "max_results": 1000},
            auth=("admin", self.admin_password), timeout=30,
        )  # fmt: skip
        response.raise_for_status()
        return response.json().get("runs", [])


@pytest.fixture(scope="session")
def team_server(tmp_path_factory) -> Iterator[TeamServerProcess]:
    """The session's team server, roles given; stopped and its databases dropped."""
    _postgres_or_skip()
    from training.config import load_config
    from training.registry.team_server import TeamServer, ensure_database, grant_role

    name = f"lnrisk_team_test_{secrets.token_hex(4)}"
    root = tmp_path_factory.mktemp("team-server")
    settings = TeamServer(
        db_url=_db_url(name),
        auth_db_url=_db_url(f"{name}_auth"),
        artifacts=str(root / "artifacts"),
        port=free_port(),
        workers=2,
    )
    server = TeamServerProcess(
        settings, root, "admin-" + secrets.token_hex(12), root / "server.log"
    )
    try:
        ensure_database(settings.db_url)
        ensure_database(settings.auth_db_url)
        server.start()
        names = load_config().tracking
        for user, role in USERS.items():
            server.passwords[user] = "pw-" + secrets.token_hex(12)
            with server.as_admin():
                grant_role(
                    server.url, user, role, experiment=names.experiment,
                    registered_model=names.registered_model,
                    password=server.passwords[user],
                )  # fmt: skip
        yield server
    finally:
        server.stop()
        _drop(name)
        _drop(f"{name}_auth")


@pytest.fixture(scope="session")
def small_profile(small_config, tmp_path_factory) -> Path:
    """The small training profile without its search, as a YAML file for ``--config``.

    These tests are about the store, not the model: one fit per run keeps four
    concurrent trainings affordable on a small machine.
    """
    cfg = small_config.model_copy(
        update={"search": small_config.search.model_copy(update={"enabled": False})}
    )
    path = tmp_path_factory.mktemp("profile") / "small.yaml"
    path.write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
    return path
