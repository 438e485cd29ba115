"""Typed shapes of the Blink payloads we use (see ../shared/blink-api.md). Unknown fields are ignored."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from archiver.util import as_utc


class Payload(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class TokenResponse(Payload):
    access_token: str
    refresh_token: str | None = None
    token_type: str = "Bearer"
    expires_in: int = 3600

    def expires_at(self, now: datetime | None = None) -> datetime:
        return (now or datetime.now(UTC)) + timedelta(seconds=self.expires_in)


TIER = re.compile(r"[a-z0-9-]{1,32}")  # Blink's tiers ("u011", "e006", "prod"): part of a host name


def _tier(v: object) -> object:
    if isinstance(v, str) and not TIER.fullmatch(v.strip().lower()):
        raise ValueError("the tier is not a short token of letters, digits and '-'")
    return v.strip().lower() if isinstance(v, str) else v


class TierInfo(Payload):
    # the tier names the regional host (rest-<tier>.immedia-semi.com): a short token, checked where it enters
    tier: Annotated[str, BeforeValidator(_tier)]
    account_id: int


def _text(v: object) -> object:
    """Blink's auth answers are loosely typed: a number where a string is expected, null anywhere."""
    return str(v) if isinstance(v, int | float) and not isinstance(v, bool) else v


class TwoFactorChallenge(Payload):
    """The sign-in answer when a PIN is needed (HTTP 202 or 412). Every field may be missing or null."""

    next_time_in_secs: int | None = None
    tsv_methods: list[str] = Field(default_factory=list)
    tsv_state: str | None = None
    phone: str | None = None
    email: str | None = None

    @field_validator("tsv_methods", mode="before")
    @classmethod
    def _methods(cls, v: object) -> object:
        if v is None:
            return []
        if isinstance(v, str):
            return [v]
        if isinstance(v, list):
            return [str(x) for x in v if x is not None]
        return []

    @field_validator("tsv_state", "phone", "email", mode="before")
    @classmethod
    def _strings(cls, v: object) -> object:
        v = _text(v)
        return v if isinstance(v, str) else None

    @field_validator("next_time_in_secs", mode="before")
    @classmethod
    def _seconds(cls, v: object) -> object:
        try:
            return int(v) if v is not None and not isinstance(v, bool) else None  # type: ignore[call-overload]
        except (TypeError, ValueError):
            return None

    @property
    def is_challenge(self) -> bool:
        return bool(self.tsv_state or self.tsv_methods or self.next_time_in_secs or self.phone)

    @property
    def sent_to(self) -> str:
        """Where Blink says it sent the PIN, as it reports it (e.g. "by sms to +1xxxxxxx89")."""
        how = ", ".join(self.tsv_methods) or self.tsv_state or ""
        dest = self.phone or self.email or ""
        if how and dest:
            return f"by {how} to {dest}"
        if how or dest:
            return f"by {how}" if how else f"to {dest}"
        return "to the phone or e-mail of the account"


class TwoFactorVerify(Payload):
    """The answer to the PIN POST; only ``{"status": "auth-completed"}`` means the PIN was taken."""

    status: str | None = None

    @field_validator("status", mode="before")
    @classmethod
    def _status(cls, v: object) -> object:
        v = _text(v)
        return v if isinstance(v, str) else None

    @property
    def completed(self) -> bool:
        return self.status == "auth-completed"


class OAuthError(Payload):
    """An OAuth error answer (``{"error": "invalid_grant", ...}``), when it has one."""

    error: str | None = None
    error_description: str | None = None

    @field_validator("error", "error_description", mode="before")
    @classmethod
    def _strings(cls, v: object) -> object:
        v = _text(v)
        return v if isinstance(v, str) else None


# -- ids: every id we keep goes into a BIGINT column -------------------------------------------------
MAX_ID = 2**63 - 1  # what a BIGINT column holds


def _not_bool(v: object) -> object:
    if isinstance(v, bool):
        raise ValueError("an id is a number, not a boolean")
    return v


def _in_range(v: int) -> int:
    if not 0 < v <= MAX_ID:
        raise ValueError("id out of range (1 to 2**63-1)")
    return v


# A Blink id we store: a positive integer that fits a signed 64-bit column (also when sent as a string).
BlinkId = Annotated[int, BeforeValidator(_not_bool), AfterValidator(_in_range)]


def _label(n: int, entry: object) -> str:
    """``#n``, with the entry's name and id when it has them (as sent, quoted, shortened)."""
    if not isinstance(entry, dict):
        return f"#{n}"
    named = ", ".join(f"{k} {repr(entry[k])[:60]}" for k in ("name", "id") if k in entry)
    return f"#{n} ({named})" if named else f"#{n}"


def _split_valid(model: type[BaseModel], raw: object, what: str) -> tuple[list[Any], list[str]]:
    """Validate the entries of a JSON list one at a time: (the valid ones, one reason per bad one, naming
    the entry by its place, name and id)."""
    if raw is None:
        return [], []
    if not isinstance(raw, list):
        return [], [f"{what}: not a list"]
    good: list[Any] = []
    bad: list[str] = []
    for n, entry in enumerate(raw):
        try:
            good.append(model.model_validate(entry))
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"]) or "item"
            bad.append(f"{what} {_label(n, entry)}: {where}: {err['msg']}"[:200])
    return good, bad


class HomescreenAccount(Payload):
    id: int | None = None

    @field_validator("id", mode="wrap")
    @classmethod
    def _id(cls, v: object, handler: Any) -> int | None:
        try:
            return handler(v)  # type: ignore[no-any-return]
        except ValidationError:
            return None  # not used for anything we keep: never a reason to drop the homescreen


class NetworkInfo(Payload):
    id: BlinkId
    name: str
    time_zone: str | None = None


class SyncModuleInfo(Payload):
    id: BlinkId
    network_id: BlinkId
    name: str = ""
    status: str | None = None
    type: str | None = None
    local_storage_enabled: bool | None = None
    local_storage_compatible: bool | None = None
    local_storage_status: str | None = None

    @property
    def usable_local_storage(self) -> bool:
        return self.local_storage_status == "active"


class CameraInfo(Payload):
    id: BlinkId
    network_id: BlinkId
    name: str
    type: str | None = None


# the homescreen's lists, the model of their items and how a skipped one is called
_HOMESCREEN_LISTS: dict[str, tuple[type[Payload], str]] = {
    "networks": (NetworkInfo, "network"),
    "sync_modules": (SyncModuleInfo, "sync module"),
    "cameras": (CameraInfo, "camera"),
    "owls": (CameraInfo, "camera (owl)"),
    "doorbells": (CameraInfo, "doorbell"),
}


class Homescreen(Payload):
    """The account's networks, Sync Modules and cameras. Items are validated one at a time: an odd one
    (an id that is missing, not a number, not positive or past 2**63; an id already listed) is skipped
    and described in ``rejected``; the others are read."""

    account: HomescreenAccount = Field(default_factory=HomescreenAccount)
    networks: list[NetworkInfo] = Field(default_factory=list)
    sync_modules: list[SyncModuleInfo] = Field(default_factory=list)
    cameras: list[CameraInfo] = Field(default_factory=list)
    owls: list[CameraInfo] = Field(default_factory=list)
    doorbells: list[CameraInfo] = Field(default_factory=list)
    rejected: list[str] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _items_one_by_one(cls, data: object) -> object:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        rejected: list[str] = []
        cameras: set[int] = set()  # cameras, owls and doorbells share one table: one id each
        for key, (model, what) in _HOMESCREEN_LISTS.items():
            good, bad = _split_valid(model, data.get(key), what)
            seen: set[int] = cameras if model is CameraInfo else set()
            data[key] = []
            for item in good:
                if item.id in seen:
                    bad.append(f"{what} {item.id} ({item.name!r:.60}): the same id twice (the first is kept)")
                    continue
                seen.add(item.id)
                data[key].append(item)
            rejected.extend(bad)
        data["rejected"] = rejected
        if not isinstance(data.get("account"), dict):
            data.pop("account", None)
        return data

    def all_cameras(self) -> list[CameraInfo]:
        return [*self.cameras, *self.owls, *self.doorbells]


# -- listing and media (issue 11/16: every server value checked, one bad item never blocks the rest) ---
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)  # Blink did not exist before; older dates are garbage
LATEST = datetime(2200, 1, 1, tzinfo=UTC)  # far enough for any clock, far from datetime.max


def _sane_time(v: datetime) -> datetime:
    v = as_utc(v)
    if not EARLIEST <= v < LATEST:
        raise ValueError(f"date in year {v.year} is outside {EARLIEST.year} to {LATEST.year}")
    return v


class MediaItem(Payload):
    id: BlinkId
    created_at: datetime
    updated_at: datetime | None = None
    deleted: bool = False
    device: str | None = None
    device_id: int | None = None
    device_name: str | None = None
    network_id: int | None = None
    network_name: str | None = None
    type: str | None = None
    source: str | None = None
    watched: bool | None = None
    partial: bool = False
    thumbnail: str | None = None
    media: str | None = None
    time_zone: str | None = None

    @field_validator("deleted", "partial", mode="before")
    @classmethod
    def _null_is_false(cls, v: object) -> object:
        return False if v is None else v

    @field_validator("device_id", "network_id", mode="wrap")
    @classmethod
    def _optional_id(cls, v: object, handler: Any) -> int | None:
        try:
            parsed = handler(_not_bool(v))
            return None if parsed is None else _in_range(parsed)
        except (ValueError, ValidationError):
            return None  # an unusable reference is dropped, the clip is kept

    @field_validator("created_at")
    @classmethod
    def _created(cls, v: datetime) -> datetime:
        return _sane_time(v)

    @field_validator("updated_at", mode="wrap")
    @classmethod
    def _updated(cls, v: object, handler: Any) -> datetime | None:
        try:
            parsed = handler(v)
            return None if parsed is None else _sane_time(parsed)
        except (ValueError, ValidationError):
            return None  # only the cursor uses it; a bad one is ignored


class MediaPage(Payload):
    """One media/changed page. Items are validated one at a time: a bad one is skipped and described
    in ``rejected``; the same id twice in the page is merged (the newest ``updated_at`` wins)."""

    limit: int | None = None
    media: list[MediaItem] = Field(default_factory=list)
    rejected: list[str] = Field(default_factory=list)
    merged: int = 0

    @field_validator("limit", mode="before")
    @classmethod
    def _limit(cls, v: object) -> object:
        return v if isinstance(v, int) and not isinstance(v, bool) and 0 < v < 1_000_000 else None

    @model_validator(mode="before")
    @classmethod
    def _items_one_by_one(cls, data: object) -> object:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        good, bad = _split_valid(MediaItem, data.get("media"), "media item")
        merged: dict[int, MediaItem] = {}
        for item in good:
            prev = merged.get(item.id)
            if prev is None or _newer(item, prev):
                merged[item.id] = item
        data["media"] = list(merged.values())
        data["rejected"] = bad
        data["merged"] = len(good) - len(merged)
        return data


def _newer(a: MediaItem, b: MediaItem) -> bool:
    ua, ub = a.updated_at or a.created_at, b.updated_at or b.created_at
    return ua >= ub


class CommandRef(Payload):
    id: int
    network_id: int | None = None


class CommandStatus(Payload):
    complete: bool = False
    status: int | None = None
    status_code: int | None = None
    status_msg: str | None = None


# A manifest clip id goes into a URL path: only plain tokens are accepted (never "..", "/", "%", "?").
MANIFEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


def _token(v: object) -> object:
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int | str):
        raise ValueError("must be a number or a string")
    text = str(v)
    if not MANIFEST_ID.fullmatch(text):
        raise ValueError("not a plain id (letters, digits, - and _ only)")
    return text


class ManifestClip(Payload):
    id: str
    size: str | None = None
    camera_name: str
    created_at: datetime

    @field_validator("id", mode="before")
    @classmethod
    def _id(cls, v: object) -> object:
        return _token(v)

    @field_validator("size", mode="before")
    @classmethod
    def _str(cls, v: object) -> object:
        return None if v is None else str(v)

    @field_validator("camera_name", mode="before")
    @classmethod
    def _name(cls, v: object) -> object:
        return "" if v is None else v

    @field_validator("created_at")
    @classmethod
    def _aware(cls, v: datetime) -> datetime:
        return _sane_time(v)


class Manifest(Payload):
    """A USB manifest. Entries are validated one at a time: a bad one is skipped, described in
    ``rejected``, and never blocks the others."""

    version: str | None = None
    manifest_id: str
    clips: list[ManifestClip] = Field(default_factory=list)
    rejected: list[str] = Field(default_factory=list)

    @field_validator("manifest_id", mode="before")
    @classmethod
    def _str(cls, v: object) -> object:
        return _token(v)

    @model_validator(mode="before")
    @classmethod
    def _entries_one_by_one(cls, data: object) -> object:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        good, bad = _split_valid(ManifestClip, data.get("clips"), "manifest entry")
        data["clips"], data["rejected"] = good, bad
        return data


class ApiMessage(Payload):
    message: str | None = None
    code: int | None = None
