"""The CLI's human output, from the real command: no log lines unless -v, the last sync and failed clips
by camera and local time in `status` (and `status --json`), `prune --dry-run` by camera and day,
`verify` pointing at `--repair`, every config error at once with "did you mean"."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from helpers import archive_files, cli_env, run_cli, sim_config

from archiver.config import load_settings
from archiver.errors import ConfigError
from archiver.simulator import Simulator

TIMESTAMPED = re.compile(r"^\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d")
DAY1 = datetime(2026, 11, 2, 5, 30, tzinfo=UTC)  # 23:30 on Nov 1 in Chicago: the local day is the 1st
DAY2 = datetime(2026, 11, 3, 18, 0, tzinfo=UTC)


def _setup(tmp_path: Path, sim: Simulator, extra: str = "") -> tuple[dict[str, str], list[str]]:
    env = cli_env(tmp_path / "data", sim)
    return env, ["--config", str(sim_config(tmp_path, sim, extra))]


def test_a_piped_sync_prints_its_summary_and_no_log_lines_and_v_adds_them(
    tmp_path: Path, sim: Simulator
) -> None:
    sim.add_clips(sim.add_camera(sim.add_network("Home"), "Front Door"), 3, size=20_000)
    env, cfg = _setup(tmp_path, sim)
    res = run_cli([*cfg, "sync"], env)
    assert res.returncode == 0, res.stderr
    assert res.stderr == ""  # nothing but the command's own output
    assert res.stdout.startswith("account default: listed 3 (3 new), stored 3, failed 0"), res.stdout
    assert not any(TIMESTAMPED.match(line) for line in res.stdout.splitlines())
    res = run_cli([*cfg, "-v", "sync"], env)
    assert res.returncode == 0, res.stderr
    assert any(TIMESTAMPED.match(line) and "DEBUG" in line for line in res.stderr.splitlines()), res.stderr


def test_status_names_failed_clips_by_camera_and_local_time_and_shows_the_last_sync(
    tmp_path: Path, sim: Simulator
) -> None:
    net = sim.add_network("Home", time_zone="America/Chicago")
    cam = sim.add_camera(net, "Front Door")
    sim.add_clip(cam, created_at=datetime.now(UTC) - timedelta(hours=2), size=20_000)
    refused = sim.add_clip(cam, created_at=DAY1, size=20_000)
    sim.quirks.forbidden_ids = {refused}
    env, cfg = _setup(tmp_path, sim, '[sync]\nsince = "2026-10-01"\n')
    res = run_cli([*cfg, "sync"], env)
    assert res.returncode == 1, res.stdout + res.stderr

    res = run_cli([*cfg, "status"], env)
    assert res.returncode == 0, res.stderr
    out = " ".join(res.stdout.split())  # rich may wrap a long line
    assert "last sync: " in out and "some clips failed (exit 1): stored 1, failed 1" in out, out
    assert f"failed Home/Front Door 2026-11-01 23:30:00 CST (cloud:{refused}, attempts 1" in out, out
    assert "HTTP 403" in out

    res = run_cli([*cfg, "status", "--json"], env)
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["version"] == 1
    [acct] = doc["accounts"]
    assert acct["name"] == "default" and acct["logged_in"] is True
    assert acct["clips"]["cloud"]["stored"] == 1 and acct["clips"]["cloud"]["failed"] == 1
    last = acct["last_sync"]
    assert (last["result"], last["exit_code"], last["stored"], last["failed"]) == ("failed", 1, 1, 1)
    [failed] = acct["failed"]
    assert failed["identity"] == f"cloud:{refused}" and failed["camera"] == "Front Door"
    assert failed["network"] == "Home" and failed["time_zone"] == "America/Chicago"
    assert failed["recorded_local"] == "2026-11-01T23:30:00-06:00"
    assert failed["recorded_at"].startswith("2026-11-02T05:30:00") and "403" in failed["reason"]
    assert failed["attempts"] == 1 and failed["next_try"] is not None


def test_status_json_with_no_account_is_an_empty_list(tmp_path: Path, sim: Simulator) -> None:
    res = run_cli(["status", "--json"], cli_env(tmp_path, sim))
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == {"version": 1, "accounts": []}


def test_prune_dry_run_lists_what_would_go_by_camera_and_local_day(tmp_path: Path, sim: Simulator) -> None:
    net = sim.add_network("Home", time_zone="America/Chicago")
    front, yard = sim.add_camera(net, "Front Door"), sim.add_camera(net, "Back Yard")
    for at in (DAY1, DAY1 + timedelta(minutes=5), DAY2):
        sim.add_clip(front, created_at=at, size=20_000)
    sim.add_clip(yard, created_at=DAY2, size=20_000)
    sim.add_clip(yard, created_at=datetime.now(UTC) - timedelta(hours=1), size=20_000)  # young: kept
    env, cfg = _setup(tmp_path, sim, '[sync]\nsince = "2026-10-01"\n')
    assert run_cli([*cfg, "sync"], env).returncode == 0  # (a sync prunes too: the rule comes after it)
    res = run_cli([*cfg, "prune", "--dry-run"], {**env, "ARCHIVER_RETENTION__MAX_AGE_DAYS": "7"})
    assert res.returncode == 0, res.stderr
    lines = [" ".join(line.split()) for line in res.stdout.splitlines()]
    assert lines[0].startswith("5 stored clips checked; would delete 4 clips"), lines
    rows = [line for line in lines[1:] if not line.startswith(("disk", "total"))]
    assert [r.rsplit(" ", 4)[0] for r in rows if "clip" in r] == [
        "Home/Back Yard 2026-11-03",
        "Home/Front Door 2026-11-01",  # the local day, not UTC's 2nd
        "Home/Front Door 2026-11-03",
    ], lines
    assert any(r.startswith("Home/Front Door 2026-11-01 2 clips ") for r in rows), lines
    assert any(r.startswith("total 4 clips ") for r in lines), lines
    assert len(archive_files(tmp_path / "data" / "archive", ".mp4")) == 5  # nothing deleted


def test_verify_suggests_repair_when_a_file_is_missing(tmp_path: Path, sim: Simulator) -> None:
    sim.add_clips(sim.add_camera(sim.add_network("Home"), "Front Door"), 2, size=20_000)
    env, cfg = _setup(tmp_path, sim)
    assert run_cli([*cfg, "sync"], env).returncode == 0
    assert "--repair" not in run_cli([*cfg, "verify"], env).stderr  # nothing to repair: no hint
    archive_files(tmp_path / "data" / "archive", ".mp4")[0].unlink()
    res = run_cli([*cfg, "verify"], env)
    assert res.returncode == 1
    assert "1 object can be repaired: run `archiver verify --repair`" in res.stderr, res.stderr
    assert not any(TIMESTAMPED.match(line) for line in res.stderr.splitlines()), res.stderr


def test_every_config_error_at_once_with_did_you_mean_and_exit_2(tmp_path: Path, sim: Simulator) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[sycn]\ncameras = []\n[schedule]\nintervall = "1h"\n[log]\nlevel = "LOUD"\n')
    res = run_cli(["--config", str(cfg), "status"], cli_env(tmp_path, sim))
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert lines[0] == "error: 3 invalid settings:", res.stderr
    assert sorted(line.strip() for line in lines[1:]) == [
        "log.level: 'LOUD' is not a log level: use one of DEBUG, INFO, WARNING, ERROR, CRITICAL",
        "schedule.intervall: unknown key (did you mean `interval`?)",
        "sycn: unknown key (did you mean `sync`?)",
    ]


@pytest.mark.parametrize(
    ("toml", "line"),
    [
        ("[sync]\nfilenme_template = 'x'\n", "invalid setting sync.filenme_template: unknown key "
         "(did you mean `filename_template`?)"),
        ("[[destinations]]\ntype = 's3'\nbucket = 'b'\nreigon = 'x'\n", "invalid setting "
         "destinations[0].reigon: unknown key (did you mean `region`?)"),
        ("[[accounts]]\nnmae = 'x'\n", "invalid setting accounts[0].nmae: unknown key "
         "(did you mean `name`?)"),
        ("[log]\njsn = true\n", "invalid setting log.jsn: unknown key (did you mean `json`?)"),
        ("[sync]\nzzzzzz = 1\n", "invalid setting sync.zzzzzz: unknown key in this section"),
    ],
)  # fmt: skip
def test_a_misspelt_key_gets_did_you_mean(tmp_path: Path, toml: str, line: str) -> None:
    cfg = tmp_path / "a.toml"
    cfg.write_text(toml)
    with pytest.raises(ConfigError) as err:
        load_settings(cfg)
    assert str(err.value) == line


def test_log_settings_in_the_config_are_honoured_by_a_one_shot_sync(tmp_path: Path, sim: Simulator) -> None:
    """A CronJob that asked for JSON log lines (`[log] json = true`) keeps getting them on stderr."""
    sim.add_clips(sim.add_camera(sim.add_network("Home"), "Front Door"), 1, size=20_000)
    env, cfg = _setup(tmp_path, sim, "[log]\njson = true\n")
    res = run_cli([*cfg, "sync"], env)
    assert res.returncode == 0, res.stderr
    records = [json.loads(line) for line in res.stderr.splitlines()]
    assert any(r["msg"].startswith("stored clip=cloud:") for r in records), res.stderr


def test_the_sync_summary_counts_duplicates_once(capsys: pytest.CaptureFixture[str]) -> None:
    from archiver.cli.commands import print_reports
    from archiver.pipeline.report import SyncReport

    assert print_reports([SyncReport(account="home", listed=3, new=3, stored=2, duplicates=1)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("account home: listed 3 (3 new), stored 2, failed 0, 1 already stored from another "
                          "source, 0.0 MB"), out  # fmt: skip
    print_reports([SyncReport(account="home", stored=2)])
    assert "another source" not in capsys.readouterr().out


def test_the_terminal_progress_view_shows_warnings_without_timestamps() -> None:
    import io
    import logging

    from rich.console import Console

    from archiver.cli.progress import RichReporter
    from archiver.logs import setup_logging

    shown = io.StringIO()
    setup_logging("WARNING", human=True)
    try:
        reporter = RichReporter("home", Console(file=shown, force_terminal=True, width=120))
        reporter.planned(1)
        logging.getLogger("archiver.test").info("hidden without -v")
        logging.getLogger("archiver.test").warning("a warning worth seeing")
        reporter.close()
    finally:
        setup_logging("WARNING")
    text = shown.getvalue()
    assert "a warning worth seeing" in text and "hidden without -v" not in text
    assert not re.search(r"\d\d:\d\d:\d\d\]", text), text
