"""`archiver login --pin -` reads the PIN from standard input and ``ARCHIVER_LOGIN_PIN`` gives it to a
container: never in the process list or the shell history."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import PASSWORD, USER, cli_env, run_cli

from archiver.simulator import SimConfig, Simulator


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(SimConfig(two_factor=True, pin=None)) as s:
        s.add_clips(s.add_camera(s.add_network("Home"), "Front Door"), 1, size=20_000)
        yield s


def start_sign_in(tmp_path: Path, sim: Simulator) -> dict[str, str]:
    """The first phase (in process, as `--password-stdin` does it): the sign-in waits for its PIN."""
    import asyncio

    from helpers import make_settings

    from archiver.db.engine import open_engine
    from archiver.errors import PinNeeded
    from archiver.pipeline.runner import open_blink

    settings = make_settings(tmp_path, sim)
    engine = open_engine(settings)

    async def go() -> None:
        sync = open_blink(settings, engine, settings.account_list()[0])
        try:
            await sync.auth.login(USER, PASSWORD, None)
        finally:
            await sync.aclose()

    with pytest.raises(PinNeeded):
        asyncio.run(go())
    engine.dispose()
    return cli_env(tmp_path, sim)


def test_pin_from_standard_input(tmp_path: Path, sim: Simulator) -> None:
    env = start_sign_in(tmp_path, sim)
    pin = sim.last_pin() or ""
    res = run_cli(["login", "--pin", "-"], env, input=f"{pin}\n")  # kubectl exec -i … --pin - <<< 123456
    assert res.returncode == 0, res.stderr
    assert "logged in as" in res.stdout and pin not in res.stdout + res.stderr
    assert len(sim.sent_pins) == 1 and sim.request_count("/oauth/v2/signin", "POST") == 1


def test_pin_from_the_environment(tmp_path: Path, sim: Simulator) -> None:
    env = start_sign_in(tmp_path, sim)
    res = run_cli(["login"], {**env, "ARCHIVER_LOGIN_PIN": sim.last_pin() or ""})
    assert res.returncode == 0, res.stderr
    assert len(sim.sent_pins) == 1 and sim.request_count("/oauth/v2/signin", "POST") == 1


def test_an_empty_or_odd_pin_on_standard_input_is_one_line_and_keeps_the_sign_in(
    tmp_path: Path, sim: Simulator
) -> None:
    from archiver.cli.commands import _read_pin
    from archiver.errors import ConfigError

    for given in ("", "   ", "12 34 5x", "1" * 13):
        with pytest.raises(ConfigError, match="--pin"):
            _read_pin(given)
    assert _read_pin(" 12 34 56 ") == "123456"
    env = start_sign_in(tmp_path, sim)
    res = run_cli(["login", "--pin", "-"], env, input="\n")
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1 and "--pin" in res.stderr
    assert sim.request_count("/oauth/v2/2fa/verify") == 0  # nothing was sent: the PIN is still good
    assert run_cli(["login", "--pin", sim.last_pin() or ""], env).returncode == 0
