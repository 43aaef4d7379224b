"""The API tests run on both stores; `sqlite_only` marks what only SQLite can answer."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.target import Target


@pytest.fixture(params=["sqlite", "postgres"])
def store_kind(request: pytest.FixtureRequest) -> str:
    marker = request.node.get_closest_marker("sqlite_only")
    if request.param == "postgres" and marker is not None:
        pytest.skip(f"SQLite only: {marker.args[0]}")
    return str(request.param)


@pytest.fixture
def target() -> Iterator[Target]:
    """A recording HTTP target on loopback for one test."""
    with Target() as t:
        yield t
