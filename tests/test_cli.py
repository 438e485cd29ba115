"""The `archiver` command as a user runs it: exit codes, one-line errors, no secrets in output."""

from __future__ import annotations

import json
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


def login_two_phase(env: dict[str, str], pin: str = PIN) -> None:
    """`archiver login` without a terminal, then `archiver login --pin` (what a script does)."""
    res = run_cli(["login", "--username", USER, "--password-stdin"], env, input=PASSWORD + "\n")
    assert res.returncode == 2 and "archiver login --pin" in res.stderr, res.stderr
    res = run_cli(["login", "--pin", pin], env)
    assert res.returncode == 0, res.stderr


def test_login_with_pin_then_sync_reuses_the_stored_token(tmp_path: Path, sim2fa: Simulator) -> None:
    env = cli_env(tmp_path, sim2fa)
    login_two_phase(env)
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
    assert len(lines) == 1
    assert lines[0].startswith("error: login needed: Blink rejected the configured username or password")
    assert "`archiver login`" in lines[0]
    assert "wrong-secret-pw" not in res.stdout + res.stderr
    # a refused password is not tried again by a machine (lock-out risk): the next sync stops at once
    posts = sim2fa.request_count("/oauth/v2/signin", "POST")
    res = run_cli(["sync"], env)
    assert res.returncode == 2 and "login needed" in res.stderr
    assert sim2fa.request_count("/oauth/v2/signin", "POST") == posts == 1


def test_2fa_in_a_non_interactive_sync_says_to_run_login(tmp_path: Path, sim2fa: Simulator) -> None:
    env = cli_env(tmp_path, sim2fa, ARCHIVER_BLINK__USERNAME=USER, ARCHIVER_BLINK__PASSWORD=PASSWORD)
    res = run_cli(["sync"], env)
    assert res.returncode == 2
    assert "archiver login" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_wrong_pin_is_rejected_with_exit_2(tmp_path: Path, sim2fa: Simulator) -> None:
    env = cli_env(tmp_path, sim2fa)
    res = run_cli(["login", "--username", USER, "--password-stdin"], env, input=PASSWORD)
    assert res.returncode == 2
    res = run_cli(["login", "--pin", "000000"], env)
    assert res.returncode == 2
    assert "PIN" in res.stderr and len(res.stderr.strip().splitlines()) == 1


def test_passwords_and_tokens_never_reach_the_output(tmp_path: Path, sim2fa: Simulator) -> None:
    env = cli_env(tmp_path, sim2fa)
    out = run_cli(["-v", "login", "--username", USER, "--password-stdin"], env, input=PASSWORD)
    db = sqlite3.connect(tmp_path / "archiver.db")
    (pending,) = db.execute("select pending_signin from account").fetchone()
    doc = json.loads(pending)  # the waiting sign-in's secrets: CSRF token, PKCE verifier, cookies
    pending_secrets = [doc["csrf"], doc["verifier"], *(c["value"] for c in doc["cookies"])]
    out_wrong = run_cli(["-v", "login", "--pin", "654321"], env)
    out_pin = run_cli(["-v", "status"], env)
    out_ok = run_cli(["-v", "login", "--pin", PIN], env)
    sim2fa.expire_tokens()  # force a refresh too
    out2 = run_cli(["-v", "sync"], env)
    out3 = run_cli(["-v", "status"], env)
    runs = (out, out_wrong, out_pin, out_ok, out2, out3)
    text = "".join(r.stdout + r.stderr for r in runs)
    assert out_ok.returncode == 0 and out2.returncode == 0, out2.stderr
    access, refresh = db.execute("select access_token, refresh_token from account").fetchone()
    for secret in (PASSWORD, PIN, "654321", access, refresh, *pending_secrets):
        assert secret and secret not in text


def test_credential_storage_is_not_world_readable(tmp_path: Path, sim2fa: Simulator) -> None:
    env = cli_env(tmp_path, sim2fa)
    login_two_phase(env)
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
    login_two_phase(env)
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


@pytest.mark.parametrize("alpha_password", ["wrong-secret-pw", PASSWORD], ids=["wrong-password", "pin-asked"])
def test_sync_of_several_accounts_syncs_the_others_when_one_needs_a_login(
    tmp_path: Path, sim2fa: Simulator, alpha_password: str
) -> None:
    """Account alpha (listed first) cannot sign in: Blink refuses its password, or asks for a PIN (the
    sign-in then waits for it). Account beta is logged in: it is still synced, and the run exits 2 with
    one line naming alpha; the next run does the same without signing alpha in again."""
    cfg = tmp_path / "archiver.toml"
    cfg.write_text(
        f'data_dir = "{tmp_path}"\n'
        f'[[accounts]]\nname = "alpha"\nusername = "{USER}"\npassword = "{alpha_password}"\n'
        f'[[accounts]]\nname = "beta"\nusername = "{USER}"\npassword = "{PASSWORD}"\n'
    )
    env = cli_env(tmp_path, sim2fa, ARCHIVER_CONFIG=str(cfg))
    res = run_cli(["login", "--account", "beta", "--password-stdin"], env, input=PASSWORD + "\n")
    assert res.returncode == 2 and "archiver login --account beta --pin" in res.stderr, res.stderr
    assert run_cli(["login", "--account", "beta", "--pin", PIN], env).returncode == 0
    for run in range(2):
        res = run_cli(["sync"], env)
        assert res.returncode == 2, res.stdout + res.stderr
        assert "account beta: listed" in res.stdout and "failed 0" in res.stdout
        errors = [ln for ln in res.stderr.splitlines() if ln.startswith("error:")]
        assert len(errors) == 1 and errors[0].startswith("error: account alpha: login needed"), res.stderr
        assert "archiver login --account alpha" in errors[0] and "beta" not in errors[0]
        assert alpha_password not in res.stdout + res.stderr
        if run == 0:
            assert "stored 3" in res.stdout
    assert len(archive_files(tmp_path / "archive", ".mp4")) == 3
    assert sim2fa.request_count("/oauth/v2/signin", "POST") == 2  # beta's, and alpha's one automatic try
