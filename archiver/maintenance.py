"""Prune and verify against the configured destinations (shared by the CLI, the sync and the worker)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.engine import Engine

from archiver.config import Settings
from archiver.db.engine import session_scope
from archiver.destinations import build_destinations
from archiver.retention import PruneReport, prune
from archiver.verify import VerifyReport, verify


def run_prune(settings: Settings, engine: Engine, *, dry_run: bool = False) -> PruneReport:
    dests = {d.name: d for d in build_destinations(settings)}
    with session_scope(engine) as s:
        return prune(s, dests, settings.retention, datetime.now(UTC), dry_run=dry_run)


def run_verify(settings: Settings, engine: Engine, *, sample: int | None = None) -> VerifyReport:
    dests = {d.name: d for d in build_destinations(settings)}
    with session_scope(engine) as s:
        return verify(s, dests, sample=sample)
