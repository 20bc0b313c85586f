"""A team's tracking server: ``mlflow server`` on PostgreSQL, proxied artifacts, roles.

``make team-server`` runs :func:`serve`: the backend store and the basic-auth user
store on PostgreSQL, artifacts proxied by the server (``--serve-artifacts``) to a
folder or a bucket, and the auth app's ``authorization_function`` set to the alias
guard of :mod:`training.registry.server_auth`. ``make team-roles`` (or ``python -m
training.registry.team_server add-user NAME ROLE``) gives people one of three roles:

* ``reviewer``: READ on the experiment and the registered model (browse, compare);
* ``data-scientist``: EDIT on both (train, evaluate, recalibrate, register versions);
* ``release-manager``: EDIT on the experiment and MANAGE on the registered model,
  which the alias guard requires to move ``@champion``.

Every setting comes from the environment (:data:`ENV`); no secret is written to
the repository. The admin's password is ``MLFLOW_AUTH_ADMIN_PASSWORD`` on the server
and ``MLFLOW_TRACKING_USERNAME`` / ``MLFLOW_TRACKING_PASSWORD`` for the role script.
"""

from __future__ import annotations

import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit, urlunsplit

import typer

ENV: dict[str, str] = {
    "LNRISK_TEAM_DB_URL": "SQLAlchemy URL of the tracking database "
    "(postgresql+psycopg://user@host:5432/lnrisk_mlflow)",
    "LNRISK_TEAM_AUTH_DB_URL": "URL of the user store (default: the tracking "
    "database's name + _auth)",
    "LNRISK_TEAM_ARTIFACTS": "where the server stores artifacts: a folder, "
    "s3://bucket/prefix or gs://bucket/prefix",
    "LNRISK_TEAM_HOST": "address to listen on (default 127.0.0.1)",
    "LNRISK_TEAM_PORT": "port (default 5001)",
    "LNRISK_TEAM_WORKERS": "server worker processes (default 2)",
    "LNRISK_TEAM_ALLOWED_HOSTS": "host names clients use, for MLflow's host check",
    "MLFLOW_AUTH_ADMIN_PASSWORD": "the admin's password (first start only)",
    "MLFLOW_FLASK_SERVER_SECRET_KEY": "secret for the login forms' CSRF tokens",
}
"""The team server's environment variables and what each one is."""

ROLES: dict[str, tuple[str, str]] = {
    "reviewer": ("READ", "READ"),
    "data-scientist": ("EDIT", "EDIT"),
    "release-manager": ("EDIT", "MANAGE"),
}
"""Role → (permission on the experiment, permission on the registered model)."""

AUTH_CACHE_TTL_SECONDS = 60
"""Seconds a worker trusts a verified password (``auth_cache_ttl_seconds``)."""

AUTH_FUNCTION = "training.registry.server_auth:authenticate_with_alias_guard"

app = typer.Typer(
    help="The team's MLflow tracking server (PostgreSQL, proxied artifacts, roles).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@dataclass(frozen=True)
class TeamServer:
    """Where the team server keeps things and where it listens."""

    db_url: str
    auth_db_url: str
    artifacts: str
    host: str = "127.0.0.1"
    port: int = 5001
    workers: int = 2
    allowed_hosts: str = ""

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> TeamServer:
        """Read :data:`ENV`; ``LNRISK_TEAM_DB_URL`` is required.

        Raises:
            ValueError: naming the missing or invalid variable.
        """
        env = dict(os.environ if env is None else env)
        db_url = env.get("LNRISK_TEAM_DB_URL", "")
        if not db_url.startswith("postgresql"):
            raise ValueError(
                "LNRISK_TEAM_DB_URL must be a PostgreSQL URL, e.g. "
                "postgresql+psycopg://mlflow@127.0.0.1:5432/lnrisk_mlflow "
                f"(got {db_url!r})"
            )
        artifacts = env.get("LNRISK_TEAM_ARTIFACTS", "")
        if not artifacts:
            raise ValueError("LNRISK_TEAM_ARTIFACTS must name a folder or a bucket")
        if "://" not in artifacts:
            artifacts = str(Path(artifacts).resolve())
        return cls(
            db_url=db_url,
            auth_db_url=env.get("LNRISK_TEAM_AUTH_DB_URL") or auth_db_of(db_url),
            artifacts=artifacts,
            host=env.get("LNRISK_TEAM_HOST", "127.0.0.1"),
            port=int(env.get("LNRISK_TEAM_PORT", "5001")),
            workers=int(env.get("LNRISK_TEAM_WORKERS", "2")),
            allowed_hosts=env.get("LNRISK_TEAM_ALLOWED_HOSTS", ""),
        )

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


def auth_db_of(db_url: str) -> str:
    """The user store's URL: the tracking database's name with ``_auth`` appended.

    The user store has its own migrations (mlflow#10052): a database of its own keeps
    them apart from the tracking schema's.
    """
    parts = urlsplit(db_url)
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + "_auth"))


def ensure_database(db_url: str) -> bool:
    """Create the URL's PostgreSQL database if it is missing; True if created."""
    import psycopg
    from psycopg import sql

    parts = urlsplit(db_url)
    name = parts.path.lstrip("/")
    admin = urlunsplit(parts._replace(scheme="postgresql", path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        found = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
        ).fetchone()
        if found:
            return False
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return True


def write_auth_config(server: TeamServer, path: Path) -> Path:
    """The basic-auth ini: user store on PostgreSQL, the alias guard, no password.

    The admin's password stays in ``MLFLOW_AUTH_ADMIN_PASSWORD``; MLflow reads it on
    the first start, when it creates the admin user.
    """
    path.write_text(
        "[mlflow]\n"
        "default_permission = READ\n"
        f"database_uri = {server.auth_db_url}\n"
        "admin_username = admin\n"
        f"authorization_function = {AUTH_FUNCTION}\n"
        "grant_default_workspace_access = false\n"
        # Each request otherwise re-derives the password hash (PBKDF2, ~0.1-1 s of
        # CPU); a cached check makes a password change take up to this long to
        # reach the other workers.
        f"auth_cache_ttl_seconds = {AUTH_CACHE_TTL_SECONDS}\n"
    )
    return path


def server_command(server: TeamServer) -> list[str]:
    """The ``mlflow server`` command line of the team server."""
    cmd = [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", server.db_url,
        "--serve-artifacts", "--artifacts-destination", server.artifacts,
        "--app-name", "basic-auth",
        "--host", server.host, "--port", str(server.port),
        "--workers", str(server.workers),
    ]  # fmt: skip
    if server.allowed_hosts:
        cmd += ["--allowed-hosts", server.allowed_hosts]
    return cmd


def server_env(server: TeamServer, config_dir: Path) -> dict[str, str]:
    """The server process's environment: the auth config and quiet defaults."""
    env = dict(os.environ)
    env["MLFLOW_AUTH_CONFIG_PATH"] = str(
        write_auth_config(server, config_dir / "basic_auth.ini")
    )
    env.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    # No GenAI job runners: this server tracks runs and models only.
    env.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    # The auth app imports the alias guard from this project.
    project = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (project, env.get("PYTHONPATH", "")) if p
    )
    return env


@app.command()
def serve() -> None:
    """Start the team server in the foreground (settings from the environment)."""
    try:
        server = TeamServer.from_env()
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    if not os.environ.get("MLFLOW_AUTH_ADMIN_PASSWORD"):
        typer.echo(
            "warning: MLFLOW_AUTH_ADMIN_PASSWORD is not set; the server cannot create "
            "its admin user on a new user store",
            err=True,
        )
    for url in (server.db_url, server.auth_db_url):
        if ensure_database(url):
            typer.echo(f"created database {urlsplit(url).path.lstrip('/')}", err=True)
    if "://" not in server.artifacts:
        Path(server.artifacts).mkdir(parents=True, exist_ok=True)
    config_dir = Path(tempfile.mkdtemp(prefix="lnrisk-team-server-"))
    env = server_env(server, config_dir)
    typer.echo(f"team server on {server.url} (store {redacted(server.db_url)})")
    os.execvpe(sys.executable, server_command(server), env)


def redacted(url: str) -> str:
    """A database URL without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


def grant_role(
    tracking_uri: str,
    username: str,
    role: str,
    *,
    experiment: str,
    registered_model: str,
    password: str | None = None,
) -> None:
    """Create ``username`` (when a password is given) and grant ``role``.

    Runs as the admin (``MLFLOW_TRACKING_USERNAME`` / ``_PASSWORD``). The experiment
    and the registered model are created first if missing, so that the admin (not
    whoever trains first) owns them.

    Raises:
        ValueError: an unknown role.
        mlflow.exceptions.MlflowException: the server refused a call.
    """
    from mlflow.exceptions import MlflowException
    from mlflow.server.auth.client import AuthServiceClient

    if role not in ROLES:
        raise ValueError(f"role must be one of {sorted(ROLES)}, got {role!r}")
    experiment_id = ensure_team_objects(tracking_uri, experiment, registered_model)
    auth = AuthServiceClient(tracking_uri)
    if password is not None:
        try:
            auth.create_user(username, password)
        except MlflowException as exc:
            if "exists" not in str(exc).lower():
                raise
            auth.update_user_password(username, password)
    on_experiment, on_model = ROLES[role]
    auth.grant_user_permission(username, "experiment", experiment_id, on_experiment)
    auth.grant_user_permission(username, "registered_model", registered_model, on_model)


def ensure_team_objects(
    tracking_uri: str, experiment: str, registered_model: str
) -> str:
    """The experiment's id, creating it and the registered model if missing."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    found = client.get_experiment_by_name(experiment)
    experiment_id = (
        found.experiment_id if found else client.create_experiment(experiment)
    )
    try:
        client.get_registered_model(registered_model)
    except MlflowException:
        client.create_registered_model(registered_model)
    return experiment_id


@app.command("add-user")
def add_user(
    username: Annotated[str, typer.Argument(help="The user's login name.")],
    role: Annotated[str, typer.Argument(help=f"One of {', '.join(ROLES)}.")],
    password_env: Annotated[
        str,
        typer.Option(help="Environment variable holding the new user's password."),
    ] = "LNRISK_TEAM_USER_PASSWORD",
    config: Annotated[
        Path | None, typer.Option(help="YAML training profile (MLflow names).")
    ] = None,
) -> None:
    """Create a user (or reset its password) and give it a role, as the admin."""
    from training.config import load_config

    uri = os.environ.get("MLFLOW_TRACKING_URI", "")
    if not uri.startswith("http"):
        typer.echo("error: set MLFLOW_TRACKING_URI to the team server's URL", err=True)
        raise typer.Exit(2)
    password = os.environ.get(password_env) or None
    names = load_config(config).tracking
    from mlflow.exceptions import MlflowException

    try:
        grant_role(
            uri, username, role,
            experiment=names.experiment, registered_model=names.registered_model,
            password=password,
        )  # fmt: skip
    except (ValueError, MlflowException) as exc:
        typer.echo(f"error: {username}: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(f"{username}: {role} on {names.experiment} / {names.registered_model}")


ROLE_ENV: dict[str, str] = {
    "reviewer": "LNRISK_TEAM_REVIEWERS",
    "data-scientist": "LNRISK_TEAM_DATA_SCIENTISTS",
    "release-manager": "LNRISK_TEAM_RELEASE_MANAGERS",
}
"""Role → variable listing its users (comma-separated). A new user's password
comes from ``LNRISK_TEAM_PASSWORD_<NAME>`` (upper case, ``-`` → ``_``)."""


def password_variable(username: str) -> str:
    return "LNRISK_TEAM_PASSWORD_" + username.upper().replace("-", "_")


@app.command()
def roles(
    config: Annotated[
        Path | None, typer.Option(help="YAML training profile (MLflow names).")
    ] = None,
) -> None:
    """Give every user listed in :data:`ROLE_ENV` its role (``make team-roles``)."""
    listed = {
        role: [u.strip() for u in os.environ.get(var, "").split(",") if u.strip()]
        for role, var in ROLE_ENV.items()
    }
    if not any(listed.values()):
        names = ", ".join(ROLE_ENV.values())
        typer.echo(f"error: list users in {names}", err=True)
        raise typer.Exit(2)
    for role, users in listed.items():
        for user in users:
            add_user(user, role, password_env=password_variable(user), config=config)


if __name__ == "__main__":  # pragma: no cover - python -m entry point
    app()
