"""PostgreSQL fixtures: ``pg_server_url`` (session) and ``pg_url`` (a fresh database per test).

The server comes from ``ARCHIVER_TEST_DATABASE_URL`` (``.ci/postgres.sh`` starts one and exports it), e.g.
``postgresql+psycopg://postgres@127.0.0.1:5432/postgres``; without it every test using these skips.
Use with ``pytest_plugins = ["pg_fixtures"]`` in a test module.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy.engine import make_url


def _libpq(url: str, database: str | None = None) -> str:
    u = make_url(url)
    if database is not None:
        u = u.set(database=database)
    return u.set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def pg_server_url() -> str:
    url = os.environ.get("ARCHIVER_TEST_DATABASE_URL")
    if not url:
        pytest.skip("ARCHIVER_TEST_DATABASE_URL is not set (source .ci/postgres.sh to start a server)")
    return url


@pytest.fixture
def pg_url(pg_server_url: str) -> Iterator[str]:
    """A new, uniquely named database on the test server (SQLAlchemy URL), dropped afterwards."""
    psycopg = pytest.importorskip("psycopg")
    name = f"archiver_test_{uuid.uuid4().hex[:12]}"
    admin = _libpq(pg_server_url)
    with psycopg.connect(admin, autocommit=True, connect_timeout=10) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = make_url(pg_server_url).set(database=name)
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True, connect_timeout=10) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                (name,),
            )
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
