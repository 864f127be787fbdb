"""Champion and challenger behind one deployment address: split, shadow, compare, promote, abort.

The scenario itself is the ``duel`` fixture (tests/e2e/conftest.py), run here on the local and
Docker targets and in test_swarm.py on Docker Swarm."""

from __future__ import annotations

import uuid

import httpx
import pytest

import workbench as wb


def test_local_champion_and_challenger(duel, numeric_data) -> None:
    duel("local", numeric_data)


@pytest.mark.docker
def test_docker_champion_and_challenger(duel, numeric_data, docker_engine) -> None:
    duel("docker", numeric_data)


def test_the_router_refuses_route_changes_without_the_token(duel_versions) -> None:
    champion, _ = duel_versions
    name = f"token-{uuid.uuid4().hex[:5]}"
    dep = wb.deploy(champion.uri, name=name)
    try:
        table = httpx.get(f"{dep.url}/workbench/router").json()
        response = httpx.put(f"{dep.url}/workbench/router", json={**table, "champion": ["http://127.0.0.1:9"]})
        assert response.status_code == 401
        assert httpx.get(f"{dep.url}/workbench/router").json() == table
    finally:
        wb.stop(name)
