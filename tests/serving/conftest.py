"""One in-process ASGI app of the service for the whole session.

BentoML registers its Prometheus metrics per app, so a second app in the same process
would collide; every HTTP contract test shares this client.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient


@pytest.fixture(scope="session")
def client(served) -> Iterator[TestClient]:
    from serving.service import LNRiskService

    with TestClient(LNRiskService.to_asgi()) as c:
        yield c
