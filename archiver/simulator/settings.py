"""Archiver settings that point at a running simulator (the demo, tests, examples).

Kept out of the simulator package's ``__init__`` so the simulator itself never loads the archiver's config.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from archiver.config import Settings, load_settings
from archiver.simulator.server import Simulator


def settings_for(sim: Simulator, data_dir: Path, config: Path | None = None, **over: Any) -> Settings:
    """Settings that archive ``sim``'s account into ``data_dir``: every Blink host at ``sim.url``, the
    simulated user's username and password, a SQLite database in ``data_dir``. ``over`` are
    :func:`~archiver.config.load_settings` overrides; its ``blink`` entries are merged into these.
    ``config``: a TOML file read underneath (default: none, or ``ARCHIVER_CONFIG``)."""
    blink = {
        "server_url": sim.url,
        "username": sim.config.username,
        "password": sim.config.password,
        **over.pop("blink", {}),
    }
    over.setdefault("database", {"url": f"sqlite:///{Path(data_dir) / 'archiver.db'}"})
    return load_settings(config, data_dir=data_dir, blink=blink, **over)
