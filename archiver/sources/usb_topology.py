"""Networks, cameras and USB-capable Sync Modules of an account: from one homescreen request, cached in the
Network/Camera/SyncModule tables. The time of the last homescreen read is a Cursor row with source
``"homescreen"`` (so an account with no USB modules is remembered too). The cache is re-read after
``local_storage.discovery_interval`` and at once after a module problem."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session

from archiver.blink.local_storage import ModuleRef, alnum
from archiver.blink.models import Homescreen
from archiver.config import parse_duration
from archiver.db import repo
from archiver.db.engine import session_scope
from archiver.db.models import Camera, Cursor, Network, SyncModule, utcnow
from archiver.sources.base import SourceContext
from archiver.util import as_utc

log = logging.getLogger("archiver.sources.usb")

HOMESCREEN_CURSOR = "homescreen"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class CameraRef:
    blink_id: int
    name: str


@dataclass
class Topology:
    networks: dict[int, tuple[str, str | None]] = field(default_factory=dict)  # id -> (name, time zone)
    cameras: dict[int, dict[str, CameraRef]] = field(default_factory=dict)  # network -> alnum name -> camera
    modules: list[ModuleRef] = field(default_factory=list)
    from_cache: bool = False
    rejected: list[str] = field(default_factory=list)  # homescreen items skipped (each logged once)

    def add_camera(self, network_id: int, camera_id: int, name: str) -> None:
        self.cameras.setdefault(network_id, {})[alnum(name).casefold()] = CameraRef(camera_id, name)

    def camera(self, network_id: int, manifest_name: str | None) -> CameraRef | None:
        return self.cameras.get(network_id, {}).get(alnum(manifest_name).casefold())

    def usb_modules(self) -> list[ModuleRef]:
        return [m for m in self.modules if m.local_storage_status == "active" or m.offline]


def invalidate_discovery(engine: Engine, account_id: int) -> None:
    """Make the next sync re-read the homescreen (after a module problem)."""
    with session_scope(engine) as s:
        cur = repo.get_cursor(s, account_id, HOMESCREEN_CURSOR)
        if cur is not None:
            cur.since = EPOCH
            cur.updated_at = utcnow()
            s.add(cur)


def _load_cached(s: Session, account_id: int) -> Topology:
    topo = Topology(from_cache=True)
    for n in repo.networks_of(s, account_id):
        topo.networks[n.blink_id] = (n.name, n.time_zone)
    for c in repo.cameras_of(s, account_id):
        topo.add_camera(c.network_id, c.blink_id, c.name)
    for m in repo.sync_modules_of(s, account_id):
        topo.modules.append(ModuleRef(m.blink_id, m.network_id, m.name, m.status, m.local_storage_status))
    return topo


def _mirror(
    s: Session,
    model: type[Any],
    rows: Sequence[Any],
    account_id: int,
    items: Iterable[Any],
    apply: Callable[[Any, Any], None],
    now: datetime,
) -> None:
    """Make ``model``'s ``rows`` of the account mirror ``items`` (the cache only mirrors the homescreen)."""
    existing = {r.blink_id: r for r in rows}
    seen: set[int] = set()
    for item in items:
        row = existing.get(item.id)
        if row is None:
            extra = {} if model is Network else {"network_id": item.network_id}
            row = model(account_id=account_id, blink_id=item.id, name="", **extra)
        apply(row, item)
        row.seen_at = now
        s.add(row)
        seen.add(item.id)
    for blink_id, row in existing.items():
        if blink_id not in seen:  # gone from the account
            s.delete(row)


def _store_homescreen(s: Session, account_id: int, hs: Homescreen, now: datetime) -> Topology:
    topo = Topology()

    def net(row: Network, n: Any) -> None:
        row.name, row.time_zone = n.name, n.time_zone
        topo.networks[n.id] = (n.name, n.time_zone)

    def cam(row: Camera, c: Any) -> None:
        row.network_id, row.name, row.type = c.network_id, c.name, c.type
        topo.add_camera(c.network_id, c.id, c.name)

    def mod(row: SyncModule, m: Any) -> None:
        row.network_id, row.name, row.status = m.network_id, m.name, m.status
        row.local_storage_status = m.local_storage_status
        offline = bool(m.local_storage_enabled) and (m.status or "").lower() == "offline"
        usb_offline = offline and not m.usable_local_storage
        topo.modules.append(
            ModuleRef(m.id, m.network_id, m.name, m.status, m.local_storage_status, usb_offline)
        )

    _mirror(s, Network, repo.networks_of(s, account_id), account_id, hs.networks, net, now)
    _mirror(s, Camera, repo.cameras_of(s, account_id), account_id, hs.all_cameras(), cam, now)
    _mirror(s, SyncModule, repo.sync_modules_of(s, account_id), account_id, hs.sync_modules, mod, now)
    cur = repo.get_cursor(s, account_id, HOMESCREEN_CURSOR)
    if cur is None:
        cur = Cursor(account_id=account_id, source=HOMESCREEN_CURSOR, since=now)
    cur.since = now
    cur.updated_at = now
    s.add(cur)
    return topo


async def discover_topology(ctx: SourceContext, force: bool = False) -> Topology:
    """From the database while younger than ``discovery_interval``, else from one homescreen request."""
    interval = parse_duration(ctx.settings.local_storage.discovery_interval)
    now = datetime.now(UTC)
    if not force:
        with session_scope(ctx.engine) as s:
            cur = repo.get_cursor(s, ctx.account_id, HOMESCREEN_CURSOR)
            if cur is not None and now - as_utc(cur.since) < interval:
                return _load_cached(s, ctx.account_id)
    hs = await ctx.api.homescreen()
    for reason in hs.rejected:  # an odd item never stops the others from being read
        log.warning("account=%s homescreen: skipped %s", ctx.account_id, reason)
    with session_scope(ctx.engine) as s:
        topo = _store_homescreen(s, ctx.account_id, hs, now)
    topo.rejected = list(hs.rejected)
    log.info(
        "homescreen: %d networks, %d sync modules (%d with USB storage)",
        len(topo.networks),
        len(topo.modules),
        len(topo.usb_modules()),
    )
    return topo
