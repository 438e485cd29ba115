"""Tables. The database is the durable work queue: a clip row exists from the moment it is listed."""

from __future__ import annotations

import enum
from datetime import UTC, datetime

from sqlalchemy import BigInteger, Column, DateTime, ForeignKey, Index, Integer, UniqueConstraint
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


# 64-bit sizes on PostgreSQL (a derived file can pass 2 GiB); SQLite's INTEGER is 64-bit already
_BIGINT = BigInteger().with_variant(Integer, "sqlite")


def _ts(**kw: object) -> Column:  # timezone-aware timestamps on every backend
    return Column(DateTime(timezone=True), **kw)  # type: ignore[arg-type]


class ClipState(enum.StrEnum):
    discovered = "discovered"
    downloaded = "downloaded"
    stored = "stored"
    failed = "failed"
    pruned = "pruned"  # removed from every destination by retention; the row stays so it is never refetched
    duplicate = "duplicate"  # the same recording is stored from another source: see ``Clip.duplicate_of``


class ClipSource(enum.StrEnum):
    """The built-in sources' names (``Clip.source`` is a plain string: a new source needs no migration)."""

    cloud = "cloud"
    local = "local"  # Sync Module USB storage


class ObjectKind(enum.StrEnum):
    """The built-in kinds (``StoredObject.kind`` is a plain string: a processing step names its own)."""

    clip = "clip"
    thumbnail = "thumbnail"
    generated_thumbnail = "generated_thumbnail"  # ffmpeg-made, kept beside Blink's own ("both")
    sidecar = "sidecar"
    transcode = "transcode"
    preview = "preview"


class Account(SQLModel, table=True):
    """One Blink login. Credentials live here (the database file is created 0600 for SQLite)."""

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(index=True, unique=True)
    username: str | None = None
    auth_kind: str = "oauth"
    hardware_id: str
    blink_account_id: int | None = None
    user_id: int | None = None
    client_id: int | None = None
    tier: str | None = None
    access_token: str | None = None
    refresh_token: str | None = None
    token_expires_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts(nullable=False))
    # a sign-in waiting for its PIN (JSON of blink.credentials.PendingSignIn: cookies, CSRF token, PKCE
    # verifier, hardware id, expiry), stored like the tokens above
    pending_signin: str | None = None
    # set when an automatic sign-in stopped at a PIN (or a refused password): syncs do not sign in again
    # until a person runs `archiver login`
    login_needed_reason: str | None = None
    login_needed_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    # Blink's edge (Cloudflare) refused an automatic sign-in: none is tried before this instant
    # (exponential back-off per account, see archiver.blink.auth); signin_blocks counts the refusals
    signin_blocked_until: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    signin_blocks: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    signin_block_reason: str | None = None


class Network(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("account_id", "blink_id"),)
    id: int | None = Field(default=None, primary_key=True)
    account_id: int = Field(foreign_key="account.id", index=True)
    blink_id: int
    name: str
    time_zone: str | None = None
    seen_at: datetime = Field(default_factory=utcnow, sa_column=_ts(nullable=False))


class Camera(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("account_id", "blink_id"),)
    id: int | None = Field(default=None, primary_key=True)
    account_id: int = Field(foreign_key="account.id", index=True)
    blink_id: int
    network_id: int
    name: str
    type: str | None = None
    seen_at: datetime = Field(default_factory=utcnow, sa_column=_ts(nullable=False))


class SyncModule(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("account_id", "blink_id"),)
    id: int | None = Field(default=None, primary_key=True)
    account_id: int = Field(foreign_key="account.id", index=True)
    blink_id: int
    network_id: int
    name: str
    status: str | None = None
    local_storage_status: str | None = None
    seen_at: datetime = Field(default_factory=utcnow, sa_column=_ts(nullable=False))


class Cursor(SQLModel, table=True):
    """Where the next media/changed listing starts, per account and source."""

    __table_args__ = (UniqueConstraint("account_id", "source"),)
    id: int | None = Field(default=None, primary_key=True)
    account_id: int = Field(foreign_key="account.id", index=True)
    source: str = "cloud"
    since: datetime = Field(sa_column=_ts(nullable=False))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=_ts(nullable=False))


class Clip(SQLModel, table=True):
    """One recording. ``identity`` is what makes it unique across syncs and sources."""

    __table_args__ = (
        UniqueConstraint("account_id", "identity"),
        Index("ix_clip_account_source_state", "account_id", "source", "state"),
        Index("ix_clip_camera_time", "account_id", "camera_blink_id", "created_at"),
        # the web UI's overviews without reading the table: clips per camera (stored, newest) and the
        # newest failed clips are answered from this index alone
        Index("ix_clip_state_camera", "state", "account_id", "camera_blink_id", "created_at"),
        # what was stored lately (the analysis catch-up after every sync) without reading every clip
        Index("ix_clip_state_stored_at", "state", "stored_at"),
    )
    id: int | None = Field(default=None, primary_key=True)
    account_id: int = Field(foreign_key="account.id")
    source: str = ClipSource.cloud.value  # the name a source is registered under (archiver.sources)
    identity: str  # cloud:<media id> | local:<sync module>:<camera>:<utc instant>
    blink_id: str  # media id (cloud) or the latest manifest clip id (local)
    network_blink_id: int | None = None
    network_name: str | None = None
    camera_blink_id: int | None = None
    camera_name: str | None = None
    sync_module_blink_id: int | None = None
    time_zone: str | None = None
    created_at: datetime = Field(sa_column=_ts(nullable=False))
    updated_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    media_url: str | None = None
    thumbnail_url: str | None = None
    size_hint: int | None = None  # the manifest's size field, unit unknown (bytes or KiB)
    deleted_upstream: bool = False
    partial: bool = False  # Blink says the recording is not complete yet: fetch once it is
    state: ClipState = Field(default=ClipState.discovered)
    attempts: int = 0
    last_error: str | None = None
    # a failed clip is not fetched before this (back-off); None: at the next run
    next_attempt_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    size: int | None = Field(default=None, sa_column=Column(_BIGINT, nullable=True))
    sha256: str | None = None
    duration: float | None = None
    width: int | None = None
    height: int | None = None
    codec: str | None = None
    discovered_at: datetime = Field(default_factory=utcnow, sa_column=_ts(nullable=False))
    stored_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    cloud_deleted_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    duplicate_of: int | None = Field(  # the stored twin (state duplicate); the key named as 0003 names it
        default=None,
        sa_column=Column(Integer, ForeignKey("clip.id", name="fk_clip_duplicate_of_clip"), index=True),
    )
    # The key this clip owns in every destination (unique across modules and accounts): the template's
    # key, or that key with a "-2", "-3"... suffix when another clip owned it first.
    archive_key: str | None = Field(default=None, unique=True, index=True)


class StoredObject(SQLModel, table=True):
    """A file a destination holds for a clip. A row exists only once the object is durable."""

    __table_args__ = (
        UniqueConstraint("clip_id", "destination", "kind"),
        # objects and bytes per destination (status page, archive size) from this index alone
        Index("ix_storedobject_destination_size", "destination", "size"),
    )
    id: int | None = Field(default=None, primary_key=True)
    clip_id: int = Field(foreign_key="clip.id", index=True)
    destination: str
    kind: str  # an ObjectKind value or the name a processing step gives its output
    key: str = Field(index=True)
    size: int = Field(sa_column=Column(_BIGINT, nullable=False))
    sha256: str
    stored_at: datetime = Field(default_factory=utcnow, sa_column=_ts(nullable=False))
    verified_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))


class Lease(SQLModel, table=True):
    """A time-limited lock per account so two runs never sync the same account at once."""

    name: str = Field(primary_key=True)
    holder: str
    expires_at: datetime = Field(sa_column=_ts(nullable=False))


class RateMemory(SQLModel, table=True):
    """The request rate an account's runs learned from Blink's 429s (see archiver.blink.ratelimit)."""

    __tablename__ = "rate_memory"
    account_id: int = Field(foreign_key="account.id", primary_key=True)
    rate: float  # requests/s the next run starts with
    ceiling: float  # requests/s at which Blink last answered 429
    updated_at: datetime = Field(default_factory=utcnow, sa_column=_ts(nullable=False))


# -- what is in each clip (issue 24, archiver.analysis) and which camera went quiet (archiver.silence) --


class ClipAnalysis(SQLModel, table=True):
    """A clip's analysis: the activity score (indexed for "minimum activity" filters), which detector
    versions ran, and a failure with when to try again. An index of the sidecar's ``"analysis"``."""

    __tablename__ = "clip_analysis"

    clip_id: int = Field(foreign_key="clip.id", primary_key=True)
    activity: float | None = Field(default=None, index=True)
    detectors: str = "{}"  # JSON {name: version} of the detectors whose results are recorded
    analyzed_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    attempts: int = 0  # failed attempts since the last success
    error: str | None = None
    next_attempt_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))


class ClipTag(SQLModel, table=True):
    """One detection of a clip (``person`` at 3.2 s, 0.81); indexed by label, then clip."""

    __tablename__ = "clip_tag"
    __table_args__ = (Index("ix_clip_tag_label_clip", "label", "clip_id"),)

    id: int | None = Field(default=None, primary_key=True)
    clip_id: int = Field(foreign_key="clip.id", index=True)
    detector: str
    label: str
    confidence: float
    at_s: float


class SilenceAlert(SQLModel, table=True):
    """An open "camera silent" / "Sync Module offline" / "USB storage inactive" alert: raised once,
    removed when it clears."""

    __tablename__ = "silence_alert"
    __table_args__ = (UniqueConstraint("account_id", "kind", "subject"),)

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = Field(foreign_key="account.id", index=True)
    kind: str  # camera_silent | sync_module_offline | usb_inactive
    subject: str  # the camera's or Sync Module's Blink id
    name: str
    raised_at: datetime = Field(sa_column=_ts(nullable=False))
    detail: str | None = None
