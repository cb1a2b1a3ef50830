"""Shared fixtures: the project's own server on a free loopback port, and engines."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from manyget import ENGINES
from manyget._server import Faults, Server

ALL_ENGINES = list(ENGINES)


@pytest.fixture(scope="session")
def server() -> Iterator[Server]:
    """The embedded flag server, shared by the whole session."""
    with Server(faults=Faults()) as srv:
        yield srv


@pytest.fixture(params=ALL_ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    """Each engine by name: end-to-end tests run once per engine."""
    name: str = request.param
    return name
