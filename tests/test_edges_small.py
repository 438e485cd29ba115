"""The small edges a re-test found: a config file that is not UTF-8, preflight probes left behind, exit
codes that disagree with the README's table, "None" in a log line, an unchecked tier."""

from __future__ import annotations

import errno
import logging
import os
import time
from pathlib import Path

import pytest
from helpers import cli_env, make_settings, run_cli, run_sync
from pydantic import ValidationError

from archiver.blink.models import TierInfo
from archiver.destinations import disk
from archiver.destinations.base import DestinationError
from archiver.destinations.disk import DiskDestination
from archiver.errors import BlinkError, ConfigError, RefreshRefused, Unavailable, describe
from archiver.simulator import SimConfig, Simulator


# --------------------------------------------------------------------------------- the config file
def test_a_config_file_that_is_not_utf8_is_one_line_naming_it_exit_2(tmp_path: Path, sim: Simulator) -> None:
    cfg = tmp_path / "archiver.toml"
    cfg.write_bytes('[blink]\nusername = "jos\xe9@example.com"\n'.encode("latin-1"))
    res = run_cli(["--config", str(cfg), "status"], cli_env(tmp_path, sim))
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and str(cfg) in lines[0] and "UTF-8" in lines[0], res.stderr
    assert "UnicodeDecodeError" not in res.stderr and "unexpected" not in res.stderr


# ------------------------------------------------------------------------------ preflight probes
def _old_probe(folder: Path, name: str) -> Path:
    probe = folder / name
    probe.write_bytes(b"ok")
    past = time.time() - 3600
    os.utime(probe, (past, past))
    return probe


def test_preflight_sweeps_stale_probes_and_keeps_a_running_ones(tmp_path: Path, sim: Simulator) -> None:
    from archiver.maintenance import preflight

    settings = make_settings(tmp_path, sim)
    staging = settings.staging_dir
    staging.mkdir(parents=True)
    root = tmp_path / "archive"
    root.mkdir()
    stale = [_old_probe(staging, ".preflight.4242"), _old_probe(root, ".preflight.4242.part")]
    running = root / ".preflight.999999.part"  # another process probing right now
    running.write_bytes(b"ok")
    keep = _old_probe(root, "preflight-notes.txt")  # not a probe
    preflight(settings, [DiskDestination(root)])
    assert not any(p.exists() for p in stale)
    assert running.exists() and keep.exists()
    assert sorted(p.name for p in staging.iterdir()) == []


def test_a_probe_that_fails_half_way_is_removed_and_a_full_staging_folder_exits_1(
    tmp_path: Path, sim: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    from archiver.maintenance import preflight

    def full(fd: int, data: bytes) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(disk, "_write_all", full)
    settings = make_settings(tmp_path, sim)
    with pytest.raises(Unavailable) as err:  # the next run may find room (a prune, a cleanup): exit 1
        preflight(settings, [])
    assert err.value.exit_code == 1 and "sync.staging_dir" in str(err.value) and "disk full" in str(err.value)
    assert list(settings.staging_dir.iterdir()) == []  # the probe did not stay behind
    root = tmp_path / "archive"
    with pytest.raises(DestinationError) as derr:
        DiskDestination(root).preflight()
    assert not derr.value.config and list(root.iterdir()) == []


def test_a_full_disk_is_exit_1_for_the_database_and_the_staging_folder_alike() -> None:
    import sqlite3

    from sqlalchemy.exc import OperationalError

    db_full = describe(OperationalError("INSERT", {}, sqlite3.OperationalError("database or disk is full")))
    assert db_full is not None and db_full.exit_code == 1
    assert Unavailable("sync.staging_dir: disk full").exit_code == 1
    assert ConfigError("x").exit_code == 2  # a person must act


def test_a_refused_refresh_says_the_next_run_tries_again_and_exits_1() -> None:
    """The README's table: 1 = the next run may clear it by itself (and the line says it will try)."""
    assert (
        RefreshRefused("Blink refused the token refresh (HTTP 403); the next run tries again").exit_code == 1
    )


# ---------------------------------------------------------------------------------- cloud cleanup
def test_cloud_cleanup_without_a_count_logs_words_not_none(
    tmp_path: Path, sim: Simulator, camera: int, caplog: pytest.LogCaptureFixture
) -> None:
    sim.add_clips(camera, 2, size=10_000)
    sim.quirks.delete_count = False
    caplog.set_level(logging.INFO, logger="archiver.cloud_cleanup")
    report = run_sync(make_settings(tmp_path, sim, cloud_cleanup={"enabled": True}))
    assert report.stored == 2
    lines = [r.getMessage() for r in caplog.records if r.name == "archiver.cloud_cleanup"]
    assert lines and all("None" not in line for line in lines)
    assert any("did not say how many of 2 deletions" in line for line in lines)


# ----------------------------------------------------------------------------------------- tier
@pytest.mark.parametrize("tier", ["evil.example.com", "u011/../x", "a" * 33, "", "u 011", "ü011"])
def test_a_tier_that_is_not_a_short_token_is_refused_where_it_enters(tier: str) -> None:
    with pytest.raises(ValidationError):
        TierInfo.model_validate({"tier": tier, "account_id": 1})


def test_a_tier_token_is_kept_lower_case() -> None:
    assert TierInfo.model_validate({"tier": "U011", "account_id": 1}).tier == "u011"
    assert TierInfo.model_validate({"tier": "e006-2", "account_id": 1}).tier == "e006-2"


def test_a_login_whose_tier_is_a_host_name_stops_with_one_line(tmp_path: Path) -> None:
    import asyncio

    from archiver.db.engine import open_engine
    from archiver.pipeline.runner import open_blink

    with Simulator(SimConfig(two_factor=False, tier="attacker.example")) as sim:
        settings = make_settings(tmp_path, sim)

        async def go() -> None:
            sync = open_blink(settings, open_engine(settings), settings.account_list()[0])
            try:
                await sync.auth.login(sim.config.username, sim.config.password, None)
            finally:
                await sync.aclose()

        with pytest.raises(BlinkError, match="no usable tier"):
            asyncio.run(go())


@pytest.mark.parametrize(
    ("refusal", "code", "says"), [("forbidden", 1, "next run tries again"), ("upgrade", 2, "update")]
)
def test_a_refused_refresh_exits_by_who_can_fix_it(
    tmp_path: Path, refusal: str, code: int, says: str
) -> None:
    import asyncio

    from archiver.db.engine import open_engine
    from archiver.errors import AuthError
    from archiver.pipeline.runner import sync_all

    with Simulator(SimConfig(two_factor=False)) as sim:
        settings = make_settings(tmp_path, sim)
        engine = open_engine(settings)
        asyncio.run(sync_all(settings, engine))  # signs in with the configured password
        sim.expire_tokens()
        sim.config.refresh_refusal = refusal
        with pytest.raises(AuthError) as err:
            asyncio.run(sync_all(settings, engine))
        engine.dispose()
    assert (
        err.value.exit_code == code and says in str(err.value) and "refresh token is kept" in str(err.value)
    )
    assert sim.login_count == 1  # no sign-in instead of the refresh


def test_the_spill_file_keeps_the_edge_back_off_and_the_token_age(tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    from archiver.blink.credentials import Credentials, SignInBlock, read_spill, spill

    now = datetime.now(UTC).replace(microsecond=0)
    creds = Credentials(
        hardware_id="HW",
        access_token="a",
        refresh_token="r",
        expires_at=now + timedelta(seconds=50),
        issued_at=now,
        account_id=1,
        block=SignInBlock(until=now + timedelta(minutes=15), count=2, reason="OAuth sign-in: HTTP 406"),
    )
    spill(tmp_path / "spill.json", creds)
    assert read_spill(tmp_path / "spill.json") == creds


def test_the_edge_back_off_is_kept_per_account_in_the_database(database_url: str) -> None:
    from datetime import UTC, datetime, timedelta

    from sqlmodel import select

    from archiver.blink.credentials import SignInBlock
    from archiver.db import repo
    from archiver.db.engine import make_engine, migrate, session_scope
    from archiver.db.models import Account

    engine = make_engine(database_url)
    migrate(engine)
    try:
        row = repo.get_or_create_account(engine, "home", "a@example.com", "oauth")
        until = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=30)
        block = SignInBlock(until=until, count=2, reason="OAuth sign-in: HTTP 406, cf-ray 8f1c-FRA")
        creds = repo.credentials_of(row)
        repo.save_credentials(engine, row.id or 0, type(creds)(**{**creds.__dict__, "block": block}))
        with session_scope(engine) as s:
            acct = s.exec(select(Account).where(Account.name == "home")).one()
            assert repo.credentials_of(acct).block == block
            line = repo.signin_blocked_of(acct, "home")
            assert line is not None and "cf-ray 8f1c-FRA" in line and "archiver login --account home" in line
            assert repo.signin_blocked_of(acct, "home", now=until + timedelta(seconds=1)) is None
        assert repo.signin_blocked(engine, "home") == line
        # a successful renewal clears it
        repo.save_credentials(engine, row.id or 0, creds)
        assert repo.signin_blocked(engine, "home") is None
    finally:
        engine.dispose()
