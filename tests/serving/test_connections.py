"""Keep-alive connections are recycled so that clients spread over the workers."""

from __future__ import annotations

import time

import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from serving.connections import ConnectionRecycleMiddleware


def _client(monkeypatch, requests: int, seconds: float) -> TestClient:
    monkeypatch.setenv("LNRISK_REQUESTS_PER_CONNECTION", str(requests))
    monkeypatch.setenv("LNRISK_CONNECTION_SECONDS", str(seconds))
    app = Starlette(routes=[Route("/", lambda request: PlainTextResponse("ok"))])
    return TestClient(ConnectionRecycleMiddleware(app))


def _closes(client: TestClient) -> bool:
    resp = client.get("/")
    assert resp.status_code == 200 and resp.text == "ok"
    return resp.headers.get("connection") == "close"


def test_every_nth_answer_closes_the_connection(monkeypatch) -> None:
    client = _client(monkeypatch, requests=3, seconds=60)
    assert [_closes(client) for _ in range(7)] == [
        False, False, True, False, False, True, False
    ]  # fmt: skip


def test_an_old_connection_closes_at_its_next_answer(monkeypatch) -> None:
    client = _client(monkeypatch, requests=1000, seconds=0.2)
    assert not _closes(client)
    time.sleep(0.25)
    assert _closes(client)
    assert not _closes(client)  # a new connection starts counting again


@pytest.mark.parametrize("requests", [0, -1])
def test_zero_turns_recycling_off(monkeypatch, requests) -> None:
    client = _client(monkeypatch, requests=requests, seconds=0)
    assert not any(_closes(client) for _ in range(5))
