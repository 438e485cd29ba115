"""The `archiver` command as a user runs it: exit codes, one-line errors, no secrets in output."""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

import pytest
from helpers import PASSWORD, PIN, USER, archive_files, cli_env, run_cli

from archiver.simulator import SimConfig, Simulator


@pytest.fixture
def sim2fa() -> Simulator:
    with Simulator(SimConfig(two_factor=True)) as s:
        net = s.add_network("Home")
        s.add_clips(s.add_camera(net, "Front Door"), 3, size=20_000)
        yield s


def test_login_with_pin_then_sync_reuses_the_stored_token(tmp_path: Path, sim2fa: Simulator) -> None:
    env = cli_env(tmp_path, sim2fa)
    res = run_cli(["login", "--username", USER, "--password-stdin", "--pin", PIN], env, input=PASSWORD + "\n")
    assert res.returncode == 0, res.stderr
    assert sim2fa.login_count == 1
    res = run_cli(["sync"], env)
    assert res.returncode == 0, res.stderr
    assert "stored 3" in res.stdout
    assert sim2fa.login_count == 1  # no second login
    assert len(archive_files(tmp_path / "archive", ".mp4")) == 3


def test_wrong_password_is_a_clear_error_with_exit_2(tmp_path: Path, sim2fa: Simulator) -> None:
    env = cli_env(tmp_path, sim2fa, ARCHIVER_BLINK__USERNAME=USER, ARCHIVER_BLINK__PASSWORD="wrong-secret-pw")
    res = run_cli(["sync"], env)
    assert res.returncode == 2
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith("error:")]
    assert lines == ["error: Blink rejected the username or password"]
    assert "wrong-secret-pw" not in res.stdout + res.stderr


def test_2fa_in_a_non_interactive_sync_says_to_run_login(tmp_path: Path, sim2fa: Simulator) -> None:
    env = cli_env(tmp_path, sim2fa, ARCHIVER_BLINK__USERNAME=USER, ARCHIVER_BLINK__PASSWORD=PASSWORD)
    res = run_cli(["sync"], env)
    assert res.returncode == 2
    assert "archiver login" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_wrong_pin_is_rejected_with_exit_2(tmp_path: Path, sim2fa: Simulator) -> None:
    env = cli_env(tmp_path, sim2fa)
    res = run_cli(["login", "--username", USER, "--password-stdin", "--pin", "000000"], env, input=PASSWORD)
    assert res.returncode == 2
    assert "PIN" in res.stderr


def test_passwords_and_tokens_never_reach_the_output(tmp_path: Path, sim2fa: Simulator) -> None:
    env = cli_env(tmp_path, sim2fa)
    out = run_cli(["-v", "login", "--username", USER, "--password-stdin", "--pin", PIN], env, input=PASSWORD)
    sim2fa.expire_tokens()  # force a refresh too
    out2 = run_cli(["-v", "sync"], env)
    out3 = run_cli(["-v", "status"], env)
    text = "".join(r.stdout + r.stderr for r in (out, out2, out3))
    assert out2.returncode == 0, out2.stderr
    db = sqlite3.connect(tmp_path / "archiver.db")
    access, refresh = db.execute("select access_token, refresh_token from account").fetchone()
    for secret in (PASSWORD, PIN, access, refresh):
        assert secret and secret not in text


def test_credential_storage_is_not_world_readable(tmp_path: Path, sim2fa: Simulator) -> None:
    env = cli_env(tmp_path, sim2fa)
    run_cli(["login", "--username", USER, "--password-stdin", "--pin", PIN], env, input=PASSWORD)
    mode = stat.S_IMODE(os.stat(tmp_path / "archiver.db").st_mode)
    assert mode & 0o077 == 0


@pytest.mark.parametrize(
    ("toml", "needle"),
    [
        ('[blink]\ntimeout_s = "fast"\n', "blink.timeout_s"),
        ("[sync]\nconcurrency = 0\n", "sync.concurrency"),
        ("[bogus]\nx = 1\n", "bogus"),
        ("[blink\n", "not valid TOML"),
        ('[sync]\nfilename_template = "{nope}.mp4"\n', "filename_template"),
    ],
    ids=["wrong-type", "out-of-range", "unknown-section", "broken-toml", "bad-template"],
)
def test_bad_config_is_one_line_naming_the_key_with_exit_2(
    tmp_path: Path, sim2fa: Simulator, toml: str, needle: str
) -> None:
    cfg = tmp_path / "archiver.toml"
    cfg.write_text(toml)
    env = cli_env(tmp_path, sim2fa, ARCHIVER_BLINK__USERNAME=USER, ARCHIVER_BLINK__PASSWORD=PASSWORD)
    res = run_cli(["--config", str(cfg), "sync"], env)
    assert res.returncode == 2
    assert len(res.stderr.strip().splitlines()) == 1 and needle in res.stderr


def test_env_var_with_a_bad_value_names_the_key(tmp_path: Path, sim2fa: Simulator) -> None:
    env = cli_env(tmp_path, sim2fa, ARCHIVER_SYNC__CONCURRENCY="many")
    res = run_cli(["sync"], env)
    assert res.returncode == 2 and "sync.concurrency" in res.stderr


def test_status_shows_counts_by_state_and_cursor(tmp_path: Path, sim2fa: Simulator) -> None:
    env = cli_env(tmp_path, sim2fa)
    run_cli(["login", "--username", USER, "--password-stdin", "--pin", PIN], env, input=PASSWORD)
    run_cli(["sync"], env)
    res = run_cli(["status"], env)
    assert res.returncode == 0
    assert "stored" in res.stdout and "cursor" in res.stdout and "cloud" in res.stdout


def test_demo_archives_into_the_demo_folder(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARCHIVER_")}
    res = run_cli(["demo", "--folder", str(tmp_path / "demo")], env)
    assert res.returncode == 0, res.stderr
    assert len(archive_files(tmp_path / "demo" / "archive", ".mp4")) >= 9


def test_sync_since_with_a_bad_date_is_a_one_line_error(tmp_path: Path, sim2fa: Simulator) -> None:
    res = run_cli(["sync", "--since", "last tuesday"], cli_env(tmp_path, sim2fa))
    assert res.returncode == 2 and res.stderr.strip().splitlines() == [
        "error: --since 'last tuesday' is not a date like 2024-05-01 or 2024-05-01T08:00:00+00:00"
    ]
