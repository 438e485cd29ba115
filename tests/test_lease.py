"""Account leases: exclusivity, expiry of a dead holder, release — on SQLite and PostgreSQL — and two real
`archiver sync` processes racing for the same account."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from helpers import sim_config
from sqlalchemy.engine import Engine

from archiver.db.engine import open_database
from archiver.db.lease import account_lease, release, try_acquire
from archiver.db.models import utcnow
from archiver.simulator import Faults, SimConfig, Simulator

CLI = "import archiver.cli.worker; from archiver.cli import main; main()"


@pytest.fixture
def engine(database_url: str):  # type: ignore[no-untyped-def]
    eng = open_database(database_url)
    yield eng
    eng.dispose()


TTL = timedelta(minutes=5)


@pytest.mark.timeout(60)
def test_exclusive_until_released(engine: Engine) -> None:
    assert try_acquire(engine, "account:a", "holder-1", TTL)
    assert not try_acquire(engine, "account:a", "holder-2", TTL)
    assert try_acquire(engine, "account:a", "holder-1", TTL)  # renewal by the holder
    assert try_acquire(engine, "account:b", "holder-2", TTL)  # other names are independent
    release(engine, "account:a", "holder-2")  # not the holder: no effect
    assert not try_acquire(engine, "account:a", "holder-2", TTL)
    release(engine, "account:a", "holder-1")
    assert try_acquire(engine, "account:a", "holder-2", TTL)


@pytest.mark.timeout(60)
def test_dead_holder_expires(engine: Engine) -> None:
    t0 = utcnow()
    assert try_acquire(engine, "account:a", "dead", TTL, now=t0)
    assert not try_acquire(engine, "account:a", "alive", TTL, now=t0 + TTL - timedelta(seconds=1))
    assert try_acquire(engine, "account:a", "alive", TTL, now=t0 + TTL + timedelta(seconds=1))
    assert not try_acquire(engine, "account:a", "dead", TTL, now=t0 + TTL + timedelta(seconds=2))


@pytest.mark.timeout(60)
def test_account_lease_context_manager(engine: Engine) -> None:
    with account_lease(engine, "acct") as held:
        assert held
        with account_lease(engine, "acct") as second:
            assert not second
    with account_lease(engine, "acct") as again:
        assert again
    with pytest.raises(RuntimeError), account_lease(engine, "acct") as held:  # released on errors too
        raise RuntimeError("boom")
    assert try_acquire(engine, "account:acct", "someone-else", TTL)


def _config(tmp_path: Path, sim: Simulator, db_url: str) -> Path:
    return sim_config(tmp_path, sim, f'[database]\nurl = "{db_url}"\n')


@pytest.mark.timeout(90)
def test_two_sync_processes_one_wins(tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path / 'data' / 'archiver.db'}"
    open_database(db_url).dispose()  # schema first, so the two processes only race for the lease
    with Simulator(SimConfig(two_factor=False), Faults(latency_s=0.25)) as sim:
        cam = sim.add_camera(sim.add_network("Home"), "Front")
        sim.add_clips(cam, 5)
        cfg = _config(tmp_path, sim, db_url)
        env = {**os.environ, "ARCHIVER_CONFIG": str(cfg)}
        env.pop("ARCHIVER_DATA_DIR", None)
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", CLI, "sync"],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for _ in range(2)
        ]
        outs = []
        for p in procs:
            out, _ = p.communicate(timeout=75)
            outs.append((p.returncode, out))
    assert [rc for rc, _ in outs] == [0, 0], outs
    held = [out for _, out in outs if "lease held" in out]
    synced = [out for _, out in outs if "stored 5" in out]
    assert len(held) == 1 and len(synced) == 1, outs
    files = list((tmp_path / "data" / "archive").rglob("*.mp4"))
    assert len(files) == 5


@pytest.mark.timeout(60)
def test_the_prune_lease_excludes_every_prune_path_even_in_one_process(
    engine: Engine, tmp_path: Path
) -> None:
    """The worker's two prune paths, `archiver sync`'s prune and `archiver prune` take one ``job:prune``
    lease with a holder per acquisition: while one holds it, the others (same process too) skip."""
    import asyncio

    from archiver.config import load_settings
    from archiver.db.lease import job_lease
    from archiver.pipeline.runner import prune_after_sync
    from archiver.worker import Worker

    settings = load_settings(None, data_dir=tmp_path, retention={"max_age_days": 30})
    with job_lease(engine, "prune") as held:
        assert held
        with job_lease(engine, "prune") as again:
            assert not again  # the same process, another path: excluded
        assert Worker(settings, engine).prune_once() is None
        assert asyncio.run(prune_after_sync(settings, engine)) is None
    report = Worker(settings, engine).prune_once()  # released: the next path prunes
    assert report is not None and report.pruned == 0
