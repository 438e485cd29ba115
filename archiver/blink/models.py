"""Typed shapes of the Blink payloads we use (see ../shared/blink-api.md). Unknown fields are ignored."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field, field_validator


class Payload(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class TokenResponse(Payload):
    access_token: str
    refresh_token: str | None = None
    token_type: str = "Bearer"
    expires_in: int = 3600

    def expires_at(self, now: datetime | None = None) -> datetime:
        return (now or datetime.now(UTC)) + timedelta(seconds=self.expires_in)


class TierInfo(Payload):
    tier: str
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


class HomescreenAccount(Payload):
    id: int | None = None


class NetworkInfo(Payload):
    id: int
    name: str
    time_zone: str | None = None


class SyncModuleInfo(Payload):
    id: int
    network_id: int
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
    id: int
    network_id: int
    name: str
    type: str | None = None


class Homescreen(Payload):
    account: HomescreenAccount = Field(default_factory=HomescreenAccount)
    networks: list[NetworkInfo] = Field(default_factory=list)
    sync_modules: list[SyncModuleInfo] = Field(default_factory=list)
    cameras: list[CameraInfo] = Field(default_factory=list)
    owls: list[CameraInfo] = Field(default_factory=list)
    doorbells: list[CameraInfo] = Field(default_factory=list)

    def all_cameras(self) -> list[CameraInfo]:
        return [*self.cameras, *self.owls, *self.doorbells]


class MediaItem(Payload):
    id: int
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

    @field_validator("created_at", "updated_at")
    @classmethod
    def _aware(cls, v: datetime | None) -> datetime | None:
        if v is not None and v.tzinfo is None:
            return v.replace(tzinfo=UTC)
        return v


class MediaPage(Payload):
    limit: int | None = None
    media: list[MediaItem] = Field(default_factory=list)


class CommandRef(Payload):
    id: int
    network_id: int | None = None


class CommandStatus(Payload):
    complete: bool = False
    status: int | None = None
    status_code: int | None = None
    status_msg: str | None = None


class ManifestClip(Payload):
    id: str
    size: str | None = None
    camera_name: str
    created_at: datetime

    @field_validator("id", "size", mode="before")
    @classmethod
    def _str(cls, v: object) -> object:
        return None if v is None else str(v)

    @field_validator("created_at")
    @classmethod
    def _aware(cls, v: datetime) -> datetime:
        return v if v.tzinfo else v.replace(tzinfo=UTC)


class Manifest(Payload):
    version: str | None = None
    manifest_id: str
    clips: list[ManifestClip] = Field(default_factory=list)

    @field_validator("manifest_id", mode="before")
    @classmethod
    def _str(cls, v: object) -> object:
        return None if v is None else str(v)


class ApiMessage(Payload):
    message: str | None = None
    code: int | None = None
