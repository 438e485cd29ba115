"""PostgreSQL for the tests: ``pg_server_url`` (the server) and ``pg_url`` (a fresh database per test).

The server is ``ARCHIVER_TEST_DATABASE_URL`` when set (e.g.
``postgresql+psycopg://postgres@127.0.0.1:5432/postgres``). Otherwise the first test that needs one starts
a throwaway server from the installed PostgreSQL binaries (``initdb``/``pg_ctl`` on PATH or under
``/usr/lib/postgresql/*/bin``; run as the ``postgres`` user when the tests run as root) in a temp dir on a
free loopback port. Under pytest-xdist the workers share that one server (a file lock in pytest's shared
temp dir decides who starts it); the controlling process stops it when the session finishes. Tests skip
only when no binaries are installed. Loaded by ``conftest.py``.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from glob import glob
from pathlib import Path
from typing import Any

import pytest
from filelock import FileLock
from helpers import free_port
from pydantic import BaseModel
from sqlalchemy.engine import make_url

STATE = "postgresql.json"  # in the session's shared temp dir


class Server(BaseModel):
    """A throwaway server this test session started (written to ``STATE`` for the other workers)."""

    url: str
    base: str  # temp dir: data/, the socket and the logs
    pg_ctl: str
    owner: str | None  # the user the server runs as when the tests run as root


def _libpq(url: str, database: str | None = None) -> str:
    u = make_url(url)
    if database is not None:
        u = u.set(database=database)
    return u.set(drivername="postgresql").render_as_string(hide_password=False)


def _bindir() -> Path | None:
    initdb = shutil.which("initdb")
    candidates = [Path(initdb).parent] if initdb else []
    candidates += [Path(d) for d in sorted(glob("/usr/lib/postgresql/*/bin"), reverse=True)]
    return next((d for d in candidates if (d / "initdb").is_file() and (d / "pg_ctl").is_file()), None)


def _run(cmd: list[str], owner: str | None, cwd: str) -> None:
    as_owner: dict[str, Any] = {}
    if owner:
        as_owner = {"user": owner, "group": pwd.getpwnam(owner).pw_gid, "extra_groups": []}
    out = subprocess.run(
        cmd,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        **as_owner,
    )
    if out.returncode:
        raise RuntimeError(f"{Path(cmd[0]).name} failed: {(out.stderr or out.stdout).strip()[-1500:]}")


def start_server(bindir: Path) -> Server:
    """initdb a trust-auth cluster in a fresh temp dir and start it on a free 127.0.0.1 port."""
    owner = None
    if os.geteuid() == 0:  # initdb refuses to run as root
        try:
            owner = pwd.getpwnam("postgres").pw_name
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user to run PostgreSQL as")
    base = tempfile.mkdtemp(prefix="archiver-pg.")
    os.chmod(base, 0o755)
    if owner:
        shutil.chown(base, owner)
    port = free_port()
    try:
        initdb = ["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-locale", "--no-sync"]
        _run([str(bindir / "initdb"), "-D", f"{base}/data", *initdb], owner, base)
        options = f"-c listen_addresses=127.0.0.1 -p {port} -k {base} -c fsync=off -c max_connections=200"
        pg_ctl = ["-l", f"{base}/postgres.log", "-w", "-t", "60", "-o", options, "start"]
        _run([str(bindir / "pg_ctl"), "-D", f"{base}/data", *pg_ctl], owner, base)
    except Exception:
        log = Path(base, "postgres.log")
        tail = log.read_text()[-1500:] if log.exists() else ""
        shutil.rmtree(base, ignore_errors=True)
        raise RuntimeError(f"could not start PostgreSQL from {bindir}\n{tail}") from None
    url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    return Server(url=url, base=base, pg_ctl=str(bindir / "pg_ctl"), owner=owner)


def stop_server(server: Server) -> None:
    try:
        _run([server.pg_ctl, "-D", f"{server.base}/data", "-m", "immediate", "-w", "stop"], server.owner, "/")
    finally:
        shutil.rmtree(server.base, ignore_errors=True)


def _shared_dir(config: pytest.Config) -> Path:
    """pytest's temp dir of the whole run: an xdist worker's basetemp is a child of the controller's."""
    basetemp = config._tmp_path_factory.getbasetemp()  # type: ignore[attr-defined]
    return basetemp.parent if hasattr(config, "workerinput") else basetemp


@pytest.fixture(scope="session")
def pg_server_url(pytestconfig: pytest.Config) -> str:
    url = os.environ.get("ARCHIVER_TEST_DATABASE_URL")
    if url:
        return url
    bindir = _bindir()
    if bindir is None:
        pytest.skip("no PostgreSQL binaries (initdb, pg_ctl) and no ARCHIVER_TEST_DATABASE_URL")
    shared = _shared_dir(pytestconfig)
    state = shared / STATE
    with FileLock(str(shared / f"{STATE}.lock")):
        if not state.exists():
            state.write_text(start_server(bindir).model_dump_json())
        return Server.model_validate_json(state.read_text()).url


@pytest.hookimpl(tryfirst=True)  # before pytest's temp dir clean-up
def pytest_sessionfinish(session: pytest.Session) -> None:
    """The controlling process (not an xdist worker; after they ended) stops the server the session
    started, if any."""
    config = session.config
    if hasattr(config, "workerinput") or not hasattr(config, "_tmp_path_factory"):
        return
    state = _shared_dir(config) / STATE
    if state.exists():
        stop_server(Server.model_validate_json(state.read_text()))
        state.unlink()


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
