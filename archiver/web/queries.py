"""Read-only database queries behind the pages. Every page asks for rows by id; nothing here builds a
file name from a request. Clip listings use keyset paging on (created_at, id): the same cost on the last
page of 100,000 clips as on the first."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel
from sqlalchemy import and_, func, or_
from sqlmodel import Session, col, select

from archiver.analysis.store import clip_filters
from archiver.db import repo, summary
from archiver.db.models import (
    Account,
    Clip,
    ClipAnalysis,
    ClipSource,
    ClipState,
    ClipTag,
    Cursor,
    ObjectKind,
    SilenceAlert,
    StoredObject,
)
from archiver.logs import REDACTOR
from archiver.util import as_utc

PAGE_SIZE = 60
MAX_ID = 2**31 - 1  # id columns are 32-bit INTEGER on PostgreSQL: a larger id in a URL does not exist
THUMB_KINDS = (ObjectKind.thumbnail, ObjectKind.generated_thumbnail)
VIDEO_KINDS = (ObjectKind.clip, ObjectKind.transcode)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
QUIET = 0.05  # a clip whose activity score is below this is dimmed (a still scene, wind, noise)


def zone(name: str | None) -> tzinfo:
    if name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    return UTC


def aware(ts: datetime) -> datetime:
    return as_utc(ts)


def local(ts: datetime, tz_name: str | None) -> datetime:
    return aware(ts).astimezone(zone(tz_name))


def source_label(source: ClipSource | str) -> str:
    return summary.source_label(str(source))


# -- rows shown on pages ---------------------------------------------------------------------------------
class CameraCard(BaseModel):
    account_id: int
    camera_id: int
    name: str
    network: str
    account: str
    clips: int
    last_at: datetime | None  # local time of the newest clip
    thumb_clip_id: int | None


class NetworkGroup(BaseModel):
    title: str
    cameras: list[CameraCard]


class ClipItem(BaseModel):
    id: int
    account_id: int
    camera_id: int | None
    camera: str
    network: str
    at: datetime  # local
    duration: float | None
    source: str
    has_thumb: bool
    activity: float | None = None  # archiver.analysis: None until analysed
    tags: list[str] = []  # the clip's tag labels, once each

    @property
    def quiet(self) -> bool:
        return self.activity is not None and self.activity < QUIET


class DayGroup(BaseModel):
    day: date
    clips: list[ClipItem]


class ClipPage(BaseModel):
    days: list[DayGroup]
    count: int
    next_cursor: str | None


class ClipFilter(BaseModel):
    account_id: int | None = None
    camera_id: int | None = None
    source: ClipSource | None = None
    start: date | None = None
    end: date | None = None  # inclusive
    tz_name: str | None = None  # the zone the dates are read in
    tag: str | None = None  # clips with this tag only (archiver.analysis)
    min_activity: float | None = None  # clips at least this active (0-1)

    def analysis_conds(self) -> list[object]:
        return clip_filters([self.tag] if self.tag else [], self.min_activity)


class MediaObject(BaseModel):
    kind: str  # an ObjectKind value or a processing step's own kind (daily_summary)
    destination: str
    key: str
    size: int
    sha256: str


class ClipDetail(BaseModel):
    item: ClipItem
    time_zone: str | None
    width: int | None
    height: int | None
    codec: str | None
    size: int | None
    stored_at: datetime | None
    objects: list[MediaObject]
    prev_id: int | None  # older
    next_id: int | None  # newer


class AccountStatus(BaseModel):
    id: int
    name: str
    last_listing: datetime | None
    last_stored: datetime | None
    login_needed: str | None
    signin_blocked: str | None = None  # Blink's edge refused a sign-in: automatic ones wait (the line)
    stored: int
    pending: int
    failed: int


class FailedClip(BaseModel):
    id: int
    account: str
    camera: str
    at: datetime
    source: str
    attempts: int
    reason: str
    next_try: datetime | None = None  # local; None: at the next sync


class DestinationSize(BaseModel):
    name: str
    objects: int
    bytes: int


class SilenceRow(BaseModel):
    account: str
    kind: str  # camera_silent | sync_module_offline | usb_inactive
    what: str  # "camera silent", ...
    name: str
    raised_at: datetime
    detail: str


class StatusPage(BaseModel):
    accounts: list[AccountStatus]
    failed: list[FailedClip]
    destinations: list[DestinationSize]
    silence: list[SilenceRow] = []  # the silence watch's open alerts (archiver.silence)


LoginCheck = Callable[[Account], str | None]


def login_needed(account: Account) -> str | None:
    """Why this account needs a person to run `archiver login`, or None: the mark an automatic sign-in left
    when Blink asked for a PIN (``Account.login_needed_reason``), else no stored session at all. The worker
    adds what its last sync saw (``Worker.login_needed``)."""
    if not account.login_needed_reason and repo.signin_blocked_of(account, account.name):
        return None  # the edge back-off is said on its own (``AccountStatus.signin_blocked``)
    return repo.login_needed_of(account, account.name)


# -- cursors ---------------------------------------------------------------------------------------------
def encode_cursor(created_at: datetime, clip_id: int) -> str:
    delta = aware(created_at) - EPOCH
    micros = (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds
    return f"{micros}-{clip_id}"


def decode_cursor(text: str | None) -> tuple[datetime, int] | None:
    """``<microseconds since epoch>-<clip id>``; anything else is ignored (first page)."""
    if not text:
        return None
    micros, _, clip_id = text.partition("-")
    if not micros.lstrip("-").isdigit() or not clip_id.isdigit() or len(text) > 40:
        return None
    if int(clip_id) > MAX_ID:
        return None
    try:
        return EPOCH + timedelta(microseconds=int(micros)), int(clip_id)
    except OverflowError:
        return None


# -- queries ---------------------------------------------------------------------------------------------
def _stored() -> object:
    return col(Clip.state) == ClipState.stored


Analysis = dict[int, tuple[float | None, list[str]]]


def analysis_of(s: Session, ids: Sequence[int]) -> Analysis:
    """The activity score and tag labels of the clips ``ids`` (by primary key and the clip index)."""
    out: Analysis = {}
    if not ids:
        return out
    for clip_id, activity in s.exec(
        select(ClipAnalysis.clip_id, ClipAnalysis.activity).where(col(ClipAnalysis.clip_id).in_(ids))
    ).all():
        out[clip_id] = (activity, [])
    for clip_id, label in s.exec(
        select(ClipTag.clip_id, ClipTag.label).where(col(ClipTag.clip_id).in_(ids)).distinct()
    ).all():
        labels = out.setdefault(clip_id, (None, []))[1]
        if label not in labels:
            labels.append(label)
    for _, labels in out.values():
        labels.sort()
    return out


def tag_labels(s: Session) -> list[str]:
    """Every tag label in the archive (the filter's choices): the label index alone."""
    return sorted(s.exec(select(ClipTag.label).distinct()).all())


def _item(c: Clip, thumbs: set[int], analysis: Analysis | None = None) -> ClipItem:
    assert c.id is not None
    activity, tags = (analysis or {}).get(c.id, (None, []))
    return ClipItem(
        activity=activity,
        tags=tags,
        id=c.id,
        account_id=c.account_id,
        camera_id=c.camera_blink_id,
        camera=c.camera_name or "?",
        network=c.network_name or "?",
        at=local(c.created_at, c.time_zone),
        duration=c.duration,
        source=source_label(c.source),
        has_thumb=c.id in thumbs,
    )


def _with_thumbs(s: Session, ids: Sequence[int]) -> set[int]:
    if not ids:
        return set()
    rows = s.exec(
        select(StoredObject.clip_id).where(
            col(StoredObject.clip_id).in_(ids), col(StoredObject.kind).in_(THUMB_KINDS)
        )
    ).all()
    return set(rows)


def account_names(s: Session) -> dict[int, str]:
    return {a.id: a.name for a in s.exec(select(Account)).all() if a.id is not None}


def cameras(s: Session) -> list[NetworkGroup]:
    """Every camera with stored clips, grouped by network (and account when there are several)."""
    names = account_names(s)
    rows = s.exec(
        select(Clip.account_id, Clip.camera_blink_id, func.count(), func.max(Clip.created_at))
        .where(_stored(), col(Clip.camera_blink_id).is_not(None))
        .group_by(Clip.account_id, Clip.camera_blink_id)
    ).all()
    groups: dict[str, list[CameraCard]] = {}
    for account_id, camera_id, count, _newest in rows:
        cam = (Clip.account_id == account_id, Clip.camera_blink_id == camera_id, _stored())
        latest = s.exec(
            select(Clip).where(*cam).order_by(col(Clip.created_at).desc(), col(Clip.id).desc()).limit(1)
        ).first()
        if latest is None:
            continue
        thumb = s.exec(
            select(Clip.id)
            .join(StoredObject, col(StoredObject.clip_id) == col(Clip.id))
            .where(*cam, col(StoredObject.kind).in_(THUMB_KINDS))
            .order_by(col(Clip.created_at).desc(), col(Clip.id).desc())
            .limit(1)
        ).first()
        card = CameraCard(
            account_id=account_id,
            camera_id=camera_id,
            name=latest.camera_name or f"camera {camera_id}",
            network=latest.network_name or "?",
            account=names.get(account_id, "?"),
            clips=count,
            last_at=local(latest.created_at, latest.time_zone),
            thumb_clip_id=thumb,
        )
        title = card.network if len(names) < 2 else f"{card.network} ({card.account})"
        groups.setdefault(title, []).append(card)
    return [
        NetworkGroup(title=t, cameras=sorted(cams, key=lambda c: c.name.casefold()))
        for t, cams in sorted(groups.items(), key=lambda kv: kv[0].casefold())
    ]


def camera_is(camera_id: int | None) -> object:
    return col(Clip.camera_blink_id).is_(None) if camera_id is None else Clip.camera_blink_id == camera_id


def camera_keys(s: Session, account_id: int | None = None) -> list[tuple[int, int | None]]:
    """Every (account, camera) with clips: a scan of the (account, camera, created_at) index only."""
    q = select(Clip.account_id, Clip.camera_blink_id).distinct()
    if account_id is not None:
        q = q.where(Clip.account_id == account_id)
    return [(a, c) for a, c in s.exec(q).all()]


def latest_clip(s: Session, account_id: int, camera_id: int | None) -> Clip | None:
    return s.exec(
        select(Clip)
        .where(Clip.account_id == account_id, camera_is(camera_id), _stored())  # type: ignore[arg-type]
        .order_by(col(Clip.created_at).desc(), col(Clip.id).desc())
        .limit(1)
    ).first()


def camera_title(s: Session, account_id: int, camera_id: int) -> tuple[str, str, str | None] | None:
    """(camera name, network name, time zone) or None when the camera has no stored clip."""
    latest = latest_clip(s, account_id, camera_id)
    if latest is None:
        return None
    return latest.camera_name or f"camera {camera_id}", latest.network_name or "?", latest.time_zone


Keys = list[tuple[int, int | None]]


def display_zone(s: Session, keys: Keys | None = None) -> str | None:
    """The archive's time zone when every camera's newest clip shares one (date filters are read in it),
    else None (UTC)."""
    zones = set()
    for account_id, camera_id in camera_keys(s) if keys is None else keys:
        latest = latest_clip(s, account_id, camera_id)
        if latest is not None:
            zones.add(latest.time_zone)
    return zones.pop() if len(zones) == 1 else None


def _day_bounds(flt: ClipFilter) -> tuple[datetime | None, datetime | None]:
    """The filter's first and last day as UTC instants [start, end); a bound at the edge of the
    calendar (year 1, year 9999) is dropped instead of overflowing."""
    tz = zone(flt.tz_name)
    start = end = None
    try:
        if flt.start is not None:
            start = datetime.combine(flt.start, time(), tz).astimezone(UTC)
    except OverflowError:
        start = None
    try:
        if flt.end is not None:
            end = datetime.combine(flt.end + timedelta(days=1), time(), tz).astimezone(UTC)
    except OverflowError:
        end = None
    return start, end


def clip_page(
    s: Session,
    flt: ClipFilter,
    cursor: str | None,
    limit: int = PAGE_SIZE,
    all_keys: Keys | None = None,
    key_zones: dict[tuple[int, int | None], str | None] | None = None,
) -> ClipPage:
    """Newest first, keyset paged. Each camera's slice is read through the (account, camera, created_at)
    index and the slices are merged here, so no query sorts the whole table. ``key_zones``: each camera's
    zone, so a date filter means each network's own local days (else ``flt.tz_name`` for all)."""
    conds: list[object] = [_stored(), *flt.analysis_conds()]
    if flt.source is not None:
        conds.append(Clip.source == flt.source)
    after = decode_cursor(cursor)
    if after is not None:
        ts, clip_id = after
        conds.append(col(Clip.created_at) <= ts)  # an index range bound (the OR alone is not one)
        conds.append(or_(col(Clip.created_at) < ts, and_(col(Clip.created_at) == ts, col(Clip.id) < clip_id)))
    if flt.camera_id is not None and flt.account_id is not None:
        keys: list[tuple[int, int | None]] = [(flt.account_id, flt.camera_id)]
    else:
        every = camera_keys(s) if all_keys is None else all_keys
        keys = [
            k
            for k in every
            if (flt.account_id is None or k[0] == flt.account_id)
            and (flt.camera_id is None or k[1] == flt.camera_id)
        ]
    rows: list[Clip] = []
    for account_id, camera_id in keys:
        tz_name = (key_zones or {}).get((account_id, camera_id), flt.tz_name)
        start, end = _day_bounds(flt.model_copy(update={"tz_name": tz_name}))
        bounds: list[object] = []
        if start is not None:
            bounds.append(col(Clip.created_at) >= start)
        if end is not None:
            bounds.append(col(Clip.created_at) < end)
        rows += s.exec(
            select(Clip)
            .where(Clip.account_id == account_id, camera_is(camera_id), *conds, *bounds)  # type: ignore[arg-type]
            .order_by(col(Clip.created_at).desc(), col(Clip.id).desc())
            .limit(limit + 1)
        ).all()
    rows.sort(key=lambda c: (aware(c.created_at), c.id or 0), reverse=True)
    more = len(rows) > limit
    rows = rows[:limit]
    thumbs = _with_thumbs(s, [c.id for c in rows if c.id is not None])
    analysis = analysis_of(s, [c.id for c in rows if c.id is not None])
    days: list[DayGroup] = []
    for c in rows:
        item = _item(c, thumbs, analysis)
        if not days or days[-1].day != item.at.date():
            days.append(DayGroup(day=item.at.date(), clips=[]))
        days[-1].clips.append(item)
    last = rows[-1] if rows else None
    next_cursor = encode_cursor(last.created_at, last.id) if more and last and last.id else None
    return ClipPage(days=days, count=len(rows), next_cursor=next_cursor)


def camera_choices(s: Session, keys: Keys | None = None) -> list[tuple[str, str]]:
    """(value "account:camera", label) for the filter form, sorted by label."""
    return [(v, label) for v, label, _tz in _camera_facts(s, keys)]


def _camera_facts(s: Session, keys: Keys | None = None) -> list[tuple[str, str, str | None]]:
    out = []
    for account_id, camera_id in camera_keys(s) if keys is None else keys:
        latest = latest_clip(s, account_id, camera_id) if camera_id is not None else None
        if latest is not None:
            name = latest.camera_name or f"camera {camera_id}"
            out.append(
                (f"{account_id}:{camera_id}", f"{name} — {latest.network_name or '?'}", latest.time_zone)
            )
    return sorted(out, key=lambda vl: vl[1].casefold())


class FindPage(BaseModel):
    page: ClipPage
    choices: list[tuple[str, str]]
    tz_name: str | None  # the one zone of every camera, or None when they differ
    zones: list[str]  # every camera's zone
    tags: list[str] = []  # every tag label (the tag filter's choices)


def find_page(s: Session, flt: ClipFilter, cursor: str | None, limit: int = PAGE_SIZE) -> FindPage:
    """The filter page: the cameras are listed once (a full index scan on PostgreSQL) for all three parts.
    Dates are each camera's network's local days, as every time on the page is that network's time."""
    keys = camera_keys(s)
    facts = _camera_facts(s, keys)
    key_zones: dict[tuple[int, int | None], str | None] = {}
    for value, _label, tz_name in facts:
        acc, _, cam = value.partition(":")
        key_zones[(int(acc), int(cam))] = tz_name
    zones = sorted({z or "UTC" for z in key_zones.values()})
    page = clip_page(s, flt, cursor, limit, keys, key_zones)
    return FindPage(
        tags=tag_labels(s),
        page=page,
        choices=[(v, label) for v, label, _ in facts],
        tz_name=zones[0] if len(zones) == 1 else None,
        zones=zones,
    )


class FailedRow(BaseModel):
    at: datetime  # local
    source: str
    attempts: int
    reason: str
    next_try: datetime | None  # local; None: at the next sync


def camera_failed(s: Session, account_id: int, camera_id: int, limit: int = 20) -> list[FailedRow]:
    """The camera's failed clips, newest first, from the (state, account, camera, created_at) index."""
    rows = s.exec(
        select(Clip)
        .where(
            Clip.state == ClipState.failed, Clip.account_id == account_id, Clip.camera_blink_id == camera_id
        )
        .order_by(col(Clip.created_at).desc())
        .limit(limit)
    ).all()
    return [
        FailedRow(
            at=local(c.created_at, c.time_zone),
            source=source_label(c.source),
            attempts=c.attempts,
            reason=REDACTOR.scrub(c.last_error or "unknown")[:300],
            next_try=local(c.next_attempt_at, c.time_zone) if c.next_attempt_at else None,
        )
        for c in rows
    ]


def media_objects(s: Session, clip_id: int) -> list[MediaObject]:
    rows = s.exec(select(StoredObject).where(StoredObject.clip_id == clip_id)).all()
    return [
        MediaObject(kind=o.kind, destination=o.destination, key=o.key, size=o.size, sha256=o.sha256)
        for o in rows
    ]


def stored_clip(s: Session, clip_id: int) -> Clip | None:
    clip = s.get(Clip, clip_id)
    return clip if clip is not None and clip.state == ClipState.stored else None


def clip_id_for_key(s: Session, key: str) -> int | None:
    """The stored clip whose archive key, or one of whose stored objects, is ``key``: links that leave
    the archive (Home Assistant's events) name the key, which a reindex keeps, not the row's id."""
    clip_id = s.exec(select(Clip.id).where(Clip.archive_key == key)).first()
    if clip_id is None:
        clip_id = s.exec(select(StoredObject.clip_id).where(StoredObject.key == key).limit(1)).first()
    clip = stored_clip(s, clip_id) if clip_id is not None else None
    return clip.id if clip is not None else None


def clip_detail(s: Session, clip_id: int) -> ClipDetail | None:
    clip = stored_clip(s, clip_id)
    if clip is None or clip.id is None:
        return None
    objects = media_objects(s, clip.id)
    thumbs = {clip.id} if any(o.kind in THUMB_KINDS for o in objects) else set()
    analysis = analysis_of(s, [clip.id])
    same = [Clip.account_id == clip.account_id, Clip.camera_blink_id == clip.camera_blink_id, _stored()]
    ts, cid = clip.created_at, clip.id
    older = s.exec(
        select(Clip.id)
        .where(*same, col(Clip.created_at) <= ts)
        .where(or_(col(Clip.created_at) < ts, and_(col(Clip.created_at) == ts, col(Clip.id) < cid)))
        .order_by(col(Clip.created_at).desc(), col(Clip.id).desc())
        .limit(1)
    ).first()
    newer = s.exec(
        select(Clip.id)
        .where(*same, col(Clip.created_at) >= ts)
        .where(or_(col(Clip.created_at) > ts, and_(col(Clip.created_at) == ts, col(Clip.id) > cid)))
        .order_by(col(Clip.created_at).asc(), col(Clip.id).asc())
        .limit(1)
    ).first()
    return ClipDetail(
        item=_item(clip, thumbs, analysis),
        time_zone=clip.time_zone,
        width=clip.width,
        height=clip.height,
        codec=clip.codec,
        size=clip.size,
        stored_at=local(clip.stored_at, clip.time_zone) if clip.stored_at else None,
        objects=objects,
        prev_id=older,
        next_id=newer,
    )


def status(s: Session, check: LoginCheck, failed_limit: int = 50) -> StatusPage:
    accounts: list[AccountStatus] = []
    names = account_names(s)
    newest_stored: dict[int, datetime] = {}  # from the newest object rows (ids grow): no table scan
    # "the last 500 rows" as ORDER BY id DESC LIMIT: PostgreSQL cannot see how few rows "id > (max - 500)"
    # selects and hash-joins the whole clip table
    newest = (
        select(StoredObject.clip_id, StoredObject.stored_at)
        .order_by(col(StoredObject.id).desc())
        .limit(500)
        .subquery()
    )
    for stored_at, account_id in s.exec(
        select(newest.c.stored_at, Clip.account_id).join(Clip, col(Clip.id) == newest.c.clip_id)
    ).all():
        if stored_at is not None and (
            account_id not in newest_stored or stored_at > newest_stored[account_id]
        ):
            newest_stored[account_id] = stored_at
    for a in s.exec(select(Account).order_by(col(Account.name))).all():
        assert a.id is not None
        listing = s.exec(select(func.max(Cursor.updated_at)).where(Cursor.account_id == a.id)).one()
        stored_at = newest_stored.get(a.id)
        if stored_at is None:
            stored_at = s.exec(select(func.max(Clip.stored_at)).where(Clip.account_id == a.id)).one()
        counts = dict(
            s.exec(select(Clip.state, func.count()).where(Clip.account_id == a.id).group_by(Clip.state)).all()
        )
        pending = sum(counts.get(st, 0) for st in (ClipState.discovered, ClipState.downloaded))
        accounts.append(
            AccountStatus(
                id=a.id,
                name=a.name,
                last_listing=aware(listing) if listing else None,
                last_stored=aware(stored_at) if stored_at else None,
                login_needed=check(a),
                signin_blocked=repo.signin_blocked_of(a, a.name),
                stored=counts.get(ClipState.stored, 0),
                pending=pending,
                failed=counts.get(ClipState.failed, 0),
            )
        )
    failed = [
        FailedClip(
            id=c.id or 0,
            account=names.get(c.account_id, "?"),
            camera=c.camera_name or "?",
            at=local(c.created_at, c.time_zone),
            source=source_label(c.source),
            attempts=c.attempts,
            reason=REDACTOR.scrub(c.last_error or "unknown")[:500],
            next_try=local(c.next_attempt_at, c.time_zone) if c.next_attempt_at else None,
        )
        for c in s.exec(
            select(Clip)
            .where(Clip.state == ClipState.failed)
            .order_by(col(Clip.created_at).desc())
            .limit(failed_limit)
        ).all()
    ]
    sizes = [
        DestinationSize(name=name, objects=n, bytes=int(total or 0))
        for name, n, total in s.exec(
            select(StoredObject.destination, func.count(), func.sum(StoredObject.size))
            .group_by(StoredObject.destination)
            .order_by(StoredObject.destination)
        ).all()
    ]
    what = {
        "camera_silent": "camera silent",
        "sync_module_offline": "Sync Module offline",
        "usb_inactive": "USB storage inactive",
    }
    silence = [
        SilenceRow(
            account=names.get(r.account_id, "?"),
            kind=r.kind,
            what=what.get(r.kind, r.kind),
            name=r.name,
            raised_at=aware(r.raised_at),
            detail=r.detail or "",
        )
        for r in s.exec(select(SilenceAlert).order_by(col(SilenceAlert.raised_at))).all()
    ]
    return StatusPage(accounts=accounts, failed=failed, destinations=sizes, silence=silence)


# -- timeline --------------------------------------------------------------------------------------------
class TimelineMark(BaseModel):
    id: int
    at: datetime  # local
    utc_ms: int  # for ordering across zones in the browser
    offset_s: float  # seconds from the window's start (in the lane's zone)
    duration: float | None
    source: str
    has_thumb: bool
    activity: float | None = None
    tags: list[str] = []

    @property
    def quiet(self) -> bool:
        return self.activity is not None and self.activity < QUIET


class TimelineLane(BaseModel):
    account_id: int
    camera_id: int
    camera: str
    marks: list[TimelineMark]
    summary_clip_id: int | None = None  # the clip the day's summary video is recorded on


class TimelineGroup(BaseModel):
    network: str
    tz_label: str  # "America/Chicago (CST)"
    lanes: list[TimelineLane]


class Timeline(BaseModel):
    day: date
    start_hour: int  # the window: [day + start_hour, + hours) in each network's local time
    hours: int
    groups: list[TimelineGroup]
    count: int
    zones: list[str]
    tags: list[str] = []  # every tag label (the filter's choices)


def timeline(
    s: Session, day: date, start_hour: int = 0, hours: int = 24, flt: ClipFilter | None = None
) -> Timeline:
    """Every stored clip of a local window, one lane per camera grouped by network. The window is read in
    each network's own zone (a day in Chicago and a day in Berlin are each that place's day). Per camera
    one range read of the (state, account, camera, created_at) index; thumbnails by id. ``flt``: its tag
    and minimum activity (archiver.analysis) narrow every lane."""
    extra = flt.analysis_conds() if flt is not None else []
    lanes: dict[str, list[tuple[TimelineLane, str | None]]] = {}
    total = 0
    marks_by_id: dict[int, TimelineMark] = {}
    for account_id, camera_id in camera_keys(s):
        if camera_id is None:
            continue
        latest = latest_clip(s, account_id, camera_id)
        if latest is None:
            continue
        tz = zone(latest.time_zone)
        try:
            begin = datetime.combine(day, time(), tz) + timedelta(hours=start_hour)
            begin = begin.astimezone(UTC)
        except OverflowError:
            continue
        end = begin + timedelta(hours=hours)
        rows = s.exec(
            select(Clip.id, Clip.created_at, Clip.duration, Clip.source)
            .where(
                Clip.state == ClipState.stored,
                Clip.account_id == account_id,
                Clip.camera_blink_id == camera_id,
                col(Clip.created_at) >= begin,
                col(Clip.created_at) < end,
                *extra,  # type: ignore[arg-type]
            )
            .order_by(col(Clip.created_at))
        ).all()
        lane = TimelineLane(
            account_id=account_id,
            camera_id=camera_id,
            camera=latest.camera_name or f"camera {camera_id}",
            marks=[],
        )
        for clip_id, created_at, duration, source in rows:
            at = aware(created_at)
            mark = TimelineMark(
                id=clip_id,
                at=at.astimezone(tz),
                utc_ms=int(at.timestamp() * 1000),
                offset_s=(at - begin).total_seconds(),
                duration=duration,
                source=source_label(source),
                has_thumb=False,
            )
            lane.marks.append(mark)
            marks_by_id[clip_id] = mark
        total += len(lane.marks)
        lanes.setdefault(latest.network_name or "?", []).append((lane, latest.time_zone))
    ids = list(marks_by_id)
    summaries: set[int] = set()
    for i in range(0, len(ids), 900):
        for clip_id in _with_thumbs(s, ids[i : i + 900]):
            marks_by_id[clip_id].has_thumb = True
        for clip_id, (activity, labels) in analysis_of(s, ids[i : i + 900]).items():
            marks_by_id[clip_id].activity, marks_by_id[clip_id].tags = activity, labels
        summaries.update(
            s.exec(
                select(StoredObject.clip_id).where(
                    col(StoredObject.clip_id).in_(ids[i : i + 900]), StoredObject.kind == "daily_summary"
                )
            ).all()
        )
    if (start_hour, hours) == (0, 24):  # a summary is of a whole day
        for pairs in lanes.values():
            for lane, _tz in pairs:
                lane.summary_clip_id = next((m.id for m in lane.marks if m.id in summaries), None)
    groups = []
    zones: set[str] = set()
    for network, pairs in sorted(lanes.items(), key=lambda kv: kv[0].casefold()):
        tz_name = pairs[0][1]
        abbr = datetime.combine(day, time(12), zone(tz_name)).tzname() or "UTC"
        label = f"{tz_name or 'UTC'} ({abbr})" if tz_name and abbr != tz_name else (tz_name or "UTC")
        zones.add(label)
        groups.append(
            TimelineGroup(
                network=network,
                tz_label=label,
                lanes=sorted((p[0] for p in pairs), key=lambda la: la.camera.casefold()),
            )
        )
    return Timeline(
        day=day,
        start_hour=start_hour,
        hours=hours,
        groups=groups,
        count=total,
        zones=sorted(zones),
        tags=tag_labels(s),
    )


def today_in(s: Session) -> date:
    """Today in the archive's zone (the newest clip's network), else UTC."""
    latest = s.exec(
        select(Clip.time_zone).where(Clip.state == ClipState.stored).order_by(col(Clip.id).desc()).limit(1)
    ).first()
    return datetime.now(zone(latest)).date()
