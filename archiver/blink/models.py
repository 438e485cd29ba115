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


class TwoFactorChallenge(Payload):
    """The 202 answer of the sign-in step when a PIN is needed."""

    next_time_in_secs: int | None = None
    tsv_methods: list[str] = Field(default_factory=list)
    tsv_state: str | None = None
    phone: str | None = None

    @property
    def is_challenge(self) -> bool:
        return bool(self.tsv_state or self.tsv_methods or self.next_time_in_secs)


class LegacyAccount(Payload):
    account_id: int
    user_id: int | None = None
    client_id: int | None = None
    tier: str | None = None
    client_verification_required: bool = False


class LegacyAuth(Payload):
    token: str


class LegacyLogin(Payload):
    account: LegacyAccount
    auth: LegacyAuth


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
