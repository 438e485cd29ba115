"""What Home Assistant is told: account and camera states, clip events (payload models), read from the DB.

Everything here is synchronous and reads the database; the bridge runs it in a worker thread. No payload
holds a secret: Blink URLs (they carry tokens in some accounts), credentials and presigned links never
appear; error texts go through the log redactor.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import func
from sqlmodel import Session, col, select

from archiver.analysis import Tag
from archiver.analysis.store import last_tagged, summary
from archiver.config import AccountSettings
from archiver.db import repo
from archiver.db.models import Account, Clip, ClipState, ObjectKind, SilenceAlert, StoredObject
from archiver.destinations.base import Destination, check_key
from archiver.homeassistant.discovery import CLIP_EVENT_TYPE, CameraInfo
from archiver.logs import REDACTOR
from archiver.notify import needs_login
from archiver.pipeline.naming import local_time
from archiver.sources.usb_topology import HOMESCREEN_CURSOR
from archiver.util import as_utc, one_line

log = logging.getLogger("archiver.mqtt")

MAX_THUMBNAIL_BYTES = 4 * 1024 * 1024
THUMBNAIL_KINDS = (ObjectKind.thumbnail, ObjectKind.generated_thumbnail)


def _iso(ts: datetime | None) -> str | None:
    return as_utc(ts).isoformat() if ts is not None else None


# -- payloads -----------------------------------------------------------------------------------------
class SyncOutcome(BaseModel):
    """The last sync of an account, as this process saw it."""

    finished_at: datetime
    ok: bool
    message: str = ""
    login_needed: str | None = None
    listed: int = 0
    stored: int = 0
    failed: int = 0


class AccountState(BaseModel):
    last_sync: str | None  # UTC ISO 8601 (sensor device class timestamp)
    sync_problem: bool | None  # None until a sync ran
    login_needed: bool
    archive_bytes: int
    failed_clips: int
    sync_module_offline: bool = False  # the silence watch: a Sync Module of the account is offline
    usb_inactive: bool = False  # ... or its USB storage is no longer active
    details: dict[str, Any] = Field(default_factory=dict)  # entity attributes


class CameraState(BaseModel):
    last_clip: str | None
    clips_archived: int
    last_person: str | None = None  # the newest clip tagged "person" (a tag detector is on)
    silent: bool = False  # the silence watch's "camera silent" is open
    details: dict[str, Any] = Field(default_factory=dict)


class StoredFile(BaseModel):
    destination: str
    kind: str
    key: str
    size: int
    uri: str | None = None  # file:///… for a disk destination, s3://bucket/key for S3
    path: str | None = None  # the absolute file name, for a disk destination


class ClipEvent(BaseModel):
    """Sent (not retained) under ``<base_topic>/<account>/clip`` after a clip is stored."""

    id: str  # Blink's media id (cloud) or the Sync Module's clip id (USB)
    identity: str
    account: str
    camera: str | None
    camera_id: int | None
    network: str | None
    network_id: int | None
    source: str
    recorded_at: str  # UTC, ISO 8601
    recorded_at_local: str  # the network's local time, with its offset
    time_zone: str | None
    duration_s: float | None
    size: int | None
    width: int | None = None
    height: int | None = None
    stored_at: str | None
    key: str | None  # the clip's key in the archive
    files: list[StoredFile]
    image_entity: str | None = None  # the camera's thumbnail image entity (its default entity id)
    # what is in the clip (archiver.analysis): None / [] when it was not analysed (yet)
    analyzed: bool = False
    activity: float | None = None  # 0.0-1.0, the share of the picture that changed
    tags: list[Tag] = Field(default_factory=list)  # {label, confidence, at_s}
    labels: list[str] = Field(default_factory=list)  # the tags' labels, once each (for automations)


class CameraClipEvent(ClipEvent):
    """The camera's ``event`` entity's message: the clip message plus ``event_type`` and ``url`` (the
    clip's page in the web UI when ``[server] public_url`` is set)."""

    event_type: str = CLIP_EVENT_TYPE
    url: str | None = None


# -- login needed -------------------------------------------------------------------------------------
def login_needed_reason(
    account: AccountSettings, row: Account | None, error: BaseException | None
) -> str | None:
    """Why a person must run `archiver login` for this account, or None.

    Derived today from the last sync's error (``archiver.notify.needs_login``) and from whether a token
    is stored when no password is configured, and from the account's own mark
    (``Account.login_needed_reason``, set when an automatic sign-in stopped at a PIN)."""
    if error is not None and needs_login(error):
        return REDACTOR.scrub(one_line(error, 300)) or "Blink wants a new login"
    return repo.login_needed_of(row, account.name, password_configured=account.password is not None)


# -- reading the archive ------------------------------------------------------------------------------
def account_row(s: Session, name: str) -> Account | None:
    return s.exec(select(Account).where(Account.name == name)).first()


def cameras_of(s: Session, account_id: int) -> list[CameraInfo]:
    """The account's cameras: the homescreen cache once the account's homescreen was read (a camera
    removed from the Blink account is gone from it, and so are its entities; its clips stay in the
    archive), else the cameras known from clips (newest name wins)."""
    out: dict[int, CameraInfo] = {}
    nets = {n.blink_id: n.name for n in repo.networks_of(s, account_id)}
    for cam in repo.cameras_of(s, account_id):
        out[cam.blink_id] = CameraInfo(
            id=cam.blink_id, name=cam.name, network=nets.get(cam.network_id), account_id=account_id
        )
    if repo.get_cursor(s, account_id, HOMESCREEN_CURSOR) is not None:
        return sorted(out.values(), key=lambda c: c.id)
    ids = s.exec(
        select(Clip.camera_blink_id)
        .where(Clip.account_id == account_id, col(Clip.camera_blink_id).is_not(None))
        .distinct()
    ).all()
    for cid in ids:
        if cid is None or cid in out:
            continue
        last = s.exec(
            select(Clip)
            .where(Clip.account_id == account_id, Clip.camera_blink_id == cid)
            .order_by(col(Clip.created_at).desc())
            .limit(1)
        ).first()
        if last is not None:
            out[cid] = CameraInfo(
                id=cid,
                name=last.camera_name or f"camera {cid}",
                network=last.network_name,
                account_id=account_id,
            )
    return sorted(out.values(), key=lambda c: c.id)


def latest_stored(s: Session, account_id: int, camera_id: int) -> Clip | None:
    return s.exec(
        select(Clip)
        .where(
            Clip.account_id == account_id,
            Clip.camera_blink_id == camera_id,
            Clip.state == ClipState.stored,
        )
        .order_by(col(Clip.created_at).desc(), col(Clip.id).desc())
        .limit(1)
    ).first()


PERSON = "person"


def silence_of(s: Session, account_id: int) -> dict[tuple[str, str], SilenceAlert]:
    """The account's open silence-watch alerts by ``(kind, subject)`` (archiver.silence)."""
    rows = s.exec(select(SilenceAlert).where(SilenceAlert.account_id == account_id))
    return {(r.kind, r.subject): r for r in rows}


def camera_state(
    s: Session, account_id: int, camera: CameraInfo, *, last_person: bool = False
) -> tuple[CameraState, Clip | None]:
    """The camera's state (``last_person``: also its newest clip tagged "person")."""
    count = s.exec(
        select(func.count()).where(
            Clip.account_id == account_id,
            Clip.camera_blink_id == camera.id,
            Clip.state == ClipState.stored,
        )
    ).one()
    last = latest_stored(s, account_id, camera.id)
    state = _camera_state(camera, int(count), last)
    if last_person:
        state.last_person = _iso(last_tagged(s, camera.id, PERSON))
    alert = silence_of(s, account_id).get(("camera_silent", str(camera.id)))
    state.silent = alert is not None
    if alert is not None:
        state.details["silent_since"] = _iso(alert.raised_at)
        state.details["silent_detail"] = alert.detail
    return state, last


def _camera_state(camera: CameraInfo, count: int, last: Clip | None) -> CameraState:
    details: dict[str, Any] = {"camera": camera.name, "camera_id": camera.id, "network": camera.network}
    if last is not None:
        details.update(
            last_clip_id=last.blink_id,
            last_clip_local=local_time(last.created_at, last.time_zone).isoformat(),
            last_clip_source=str(last.source),
        )
    return CameraState(
        last_clip=_iso(last.created_at) if last else None, clips_archived=count, details=details
    )


def camera_state_after(camera: CameraInfo, before: CameraState, clip: Clip) -> tuple[CameraState, bool]:
    """The camera's state once ``clip`` is stored, from the state before it (no query: a backfill of
    thousands of clips costs no count per clip); True when the clip is the camera's newest."""
    newest = before.last_clip is None or as_utc(clip.created_at) >= datetime.fromisoformat(before.last_clip)
    if newest:
        after = _camera_state(camera, before.clips_archived + 1, clip)
        after.last_person, after.silent = before.last_person, before.silent
        return after, True
    return before.model_copy(update={"clips_archived": before.clips_archived + 1}), False


def with_tags(state: CameraState, clip: Clip, event: ClipEvent) -> CameraState:
    """The camera's state once the clip's tags are known: a "person" newer than the last one moves
    ``last_person`` (no query per clip)."""
    if PERSON not in event.labels:
        return state
    at = as_utc(clip.created_at)
    if state.last_person is not None and datetime.fromisoformat(state.last_person) >= at:
        return state
    return state.model_copy(update={"last_person": at.isoformat()})


def account_state(s: Session, account: AccountSettings, outcome: SyncOutcome | None) -> AccountState:
    row = account_row(s, account.name)
    archive = failed = 0
    last_sync: datetime | None = outcome.finished_at if outcome else None
    if row is not None and row.id is not None:
        archive = repo.archive_bytes(s, row.id)
        failed = int(
            s.exec(
                select(func.count()).where(Clip.account_id == row.id, Clip.state == ClipState.failed)
            ).one()
        )
        if last_sync is None:  # before this process synced: the last listing the database remembers
            cur = repo.get_cursor(s, row.id)
            last_sync = cur.updated_at if cur else None
    reason = outcome.login_needed if outcome else login_needed_reason(account, row, None)
    details: dict[str, Any] = {"account": account.name, "login_reason": reason}
    alerts = silence_of(s, row.id) if row is not None and row.id is not None else {}
    offline = sorted(a.name for (kind, _), a in alerts.items() if kind == "sync_module_offline")
    usb = sorted(a.name for (kind, _), a in alerts.items() if kind == "usb_inactive")
    if offline:
        details["sync_modules_offline"] = offline
    if usb:
        details["usb_storage_inactive"] = usb
    if outcome is not None:
        details.update(
            last_error=outcome.message or None,
            last_listed=outcome.listed,
            last_stored=outcome.stored,
            last_failed=outcome.failed,
        )
    return AccountState(
        last_sync=_iso(last_sync),
        sync_problem=None if outcome is None else not outcome.ok,
        login_needed=reason is not None,
        archive_bytes=archive,
        failed_clips=failed,
        sync_module_offline=bool(offline),
        usb_inactive=bool(usb),
        details=details,
    )


def _where(dest: Destination | None, key: str) -> str | None:
    """The destination's own word for where the object is (a local path or a URL), or None."""
    if dest is None:
        return None
    try:
        return dest.location(check_key(key, dest.name))
    except Exception:  # a refused key or a backend that cannot tell
        return None


def _path(dest: Destination | None, key: str) -> str | None:
    where = _where(dest, key)
    return where if where is not None and where.startswith("/") else None


def _uri(dest: Destination | None, key: str) -> str | None:
    where = _where(dest, key)
    if where is not None and where.startswith("/"):
        return Path(where).as_uri()
    return where


def clip_event(
    s: Session, account: str, clip: Clip, destinations: Sequence[Destination], image_entity: str | None
) -> ClipEvent:
    assert clip.id is not None
    by_name = {d.name: d for d in destinations}
    objects = repo.objects_of(s, clip.id)
    files = [
        StoredFile(
            destination=o.destination,
            kind=str(o.kind),
            key=o.key,
            size=o.size,
            uri=_uri(by_name.get(o.destination), o.key),
            path=_path(by_name.get(o.destination), o.key),
        )
        for o in sorted(objects, key=lambda o: (str(o.kind), o.destination))
    ]
    main = next((o for o in objects if o.kind == ObjectKind.transcode), None) or next(
        (o for o in objects if o.kind == ObjectKind.clip), None
    )
    analysis = summary(s, clip.id) or {}
    tags = [Tag.model_validate(t) for t in analysis.get("tags") or []]  # type: ignore[attr-defined]
    activity = analysis.get("activity")
    return ClipEvent(
        analyzed=bool(analysis),
        activity=round(activity, 4) if isinstance(activity, float) else None,
        tags=tags,
        labels=sorted({t.label for t in tags}),
        id=clip.blink_id,
        identity=clip.identity,
        account=account,
        camera=clip.camera_name,
        camera_id=clip.camera_blink_id,
        network=clip.network_name,
        network_id=clip.network_blink_id,
        source=str(clip.source),  # the registered source name ("cloud"; "local" is the USB source)
        recorded_at=_iso(clip.created_at) or "",
        recorded_at_local=local_time(clip.created_at, clip.time_zone).isoformat(),
        time_zone=clip.time_zone,
        duration_s=clip.duration,
        size=clip.size,
        width=clip.width,
        height=clip.height,
        stored_at=_iso(clip.stored_at),
        key=main.key if main else None,
        files=files,
        image_entity=image_entity,
    )


def read_thumbnail(objects: Sequence[StoredObject], destinations: Sequence[Destination]) -> bytes | None:
    """The clip's thumbnail bytes from the first destination that can give them (disk before S3)."""
    by_name = {d.name: d for d in destinations}
    ordered = sorted(
        (o for o in objects if o.kind in THUMBNAIL_KINDS),
        key=lambda o: (
            THUMBNAIL_KINDS.index(o.kind),
            _path(by_name.get(o.destination), o.key) is None,  # local copies first
        ),
    )
    for obj in ordered:
        dest = by_name.get(obj.destination)
        if dest is None or obj.size > MAX_THUMBNAIL_BYTES:
            continue
        try:
            data = _read_small(dest, obj.key)
        except Exception as exc:  # one unreadable thumbnail must not stop the others
            log.debug("mqtt: thumbnail %s in %s unreadable: %s", obj.key, dest.name, exc)
            continue
        if data:
            return data
    return None


def _read_small(dest: Destination, key: str) -> bytes | None:
    chunks = dest.open(check_key(key, dest.name), 0, MAX_THUMBNAIL_BYTES)
    try:
        return b"".join(chunks)
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
