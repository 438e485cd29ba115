"""Settings: a TOML file plus ``ARCHIVER_<SECTION>__<KEY>`` environment variables (env wins).

Every default works with no file at all: SQLite and the archive folder live under the data directory.
"""

from __future__ import annotations

import os
import tomllib
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import platformdirs
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from archiver.errors import ConfigError

REAL_OAUTH_URL = "https://api.oauth.blink.com"
REAL_REST_URL = "https://rest-prod.immedia-semi.com"
REAL_REST_TEMPLATE = "https://rest-{tier}.immedia-semi.com"


def default_data_dir() -> Path:
    env = os.environ.get("ARCHIVER_DATA_DIR")
    if env:
        return Path(env)
    try:
        return Path(platformdirs.user_data_dir("blink-archiver", appauthor=False))
    except Exception:  # pragma: no cover - exotic platforms
        return Path("archiver-data")


def parse_duration(value: str | int | float | timedelta) -> timedelta:
    """'15m', '1h', '90s', '2d' or a number of seconds."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float):
        return timedelta(seconds=float(value))
    text = value.strip().lower()
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if text and text[-1] in units:
        return timedelta(seconds=float(text[:-1]) * units[text[-1]])
    return timedelta(seconds=float(text))


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BlinkSettings(Section):
    username: str | None = None
    password: SecretStr | None = None
    auth: Literal["oauth", "legacy"] = "oauth"
    oauth_url: str = REAL_OAUTH_URL
    rest_url: str = REAL_REST_URL
    rest_url_template: str = REAL_REST_TEMPLATE
    server_url: str | None = None  # points every host at one server (simulator, proxy, tests)
    max_requests_per_second: float = Field(default=2.0, ge=0)  # 0 turns the limit off
    timeout_s: float = Field(default=30.0, gt=0)
    retries: int = Field(default=5, ge=0)
    backoff_max_s: float = Field(default=60.0, gt=0)
    breaker_threshold: int = Field(default=3, ge=1)

    def hosts(self, tier: str | None) -> tuple[str, str, str]:
        """(oauth, rest-prod, regional rest) base URLs."""
        if self.server_url:
            base = self.server_url.rstrip("/")
            return base, base, base
        regional = self.rest_url_template.format(tier=tier) if tier else self.rest_url
        return self.oauth_url.rstrip("/"), self.rest_url.rstrip("/"), regional.rstrip("/")


class DatabaseSettings(Section):
    url: str | None = None  # default: sqlite:///<data_dir>/archiver.db


class SyncSettings(Section):
    concurrency: int = Field(default=6, ge=1, le=32)  # transfers at the start; then they follow the link
    max_concurrency: int = Field(default=16, ge=1, le=64)  # = concurrency for a fixed count
    cameras: list[str] = Field(default_factory=list)  # names or ids; empty = all
    networks: list[str] = Field(default_factory=list)
    filename_template: str = "{network}/{camera}/{date}/{time}_{id}.mp4"
    overlap_minutes: float = Field(default=10, ge=0)
    since: str = "1970-01-01T00:00:00+00:00"  # first listing starts here (everything the cloud holds)
    thumbnails: bool = True
    sidecar: bool = True
    min_clip_bytes: int = Field(default=1024, ge=1)
    staging_dir: Path | None = None  # default: <data_dir>/staging


class LocalStorageSettings(Section):
    enabled: bool = True
    discovery_interval: str = "6h"
    command_deadline_s: float = Field(default=60, gt=0)
    manifest_deadline_s: float = Field(default=60, gt=0)
    upload_deadline_s: float = Field(default=120, gt=0)
    poll_interval_s: float = Field(default=1.0, gt=0)
    busy_pause_s: float = Field(default=5.0, ge=0)


class ProcessingSettings(Section):
    transcode: Literal["off", "remux", "h264", "h265", "av1"] = "off"
    crf: int = Field(default=28, ge=0, le=63)
    preset: str = "medium"
    keep_original: bool = True
    thumbnail: Literal["blink", "generated", "both"] = "blink"
    preview: Literal["off", "webp", "gif"] = "off"
    ffmpeg: str | None = None
    workers: int | None = Field(default=None, ge=1)
    timeout_s: float = Field(default=300, gt=0)
    probe: bool = True


class DiskDestinationSettings(Section):
    type: Literal["disk"] = "disk"
    name: str | None = None
    path: Path | None = None  # default: <data_dir>/archive


class S3DestinationSettings(Section):
    type: Literal["s3"] = "s3"
    name: str | None = None
    bucket: str
    prefix: str = ""
    endpoint_url: str | None = None
    region: str | None = None
    storage_class: str | None = None
    sse: str | None = None  # "AES256" or "aws:kms"
    access_key_id: str | None = None
    secret_access_key: SecretStr | None = None
    multipart_threshold_mb: int = Field(default=64, ge=5)


DestinationSettings = Annotated[DiskDestinationSettings | S3DestinationSettings, Field(discriminator="type")]


class RetentionSettings(Section):
    max_age_days: float | None = Field(default=None, gt=0)
    keep_last: int | None = Field(default=None, ge=0)  # per camera
    max_total_bytes: int | None = Field(default=None, ge=0)
    keep_daily: int | None = Field(default=None, ge=0)
    keep_weekly: int | None = Field(default=None, ge=0)
    keep_monthly: int | None = Field(default=None, ge=0)
    prune_after_sync: bool = True

    @property
    def configured(self) -> bool:
        return any(
            v is not None
            for v in (
                self.max_age_days,
                self.keep_last,
                self.max_total_bytes,
                self.keep_daily,
                self.keep_weekly,
                self.keep_monthly,
            )
        )


class CloudCleanupSettings(Section):
    enabled: bool = False


class ScheduleSettings(Section):
    interval: str = "15m"
    cron: str | None = None
    prune_interval: str = "24h"
    verify_interval: str | None = None
    verify_sample: int = Field(default=50, ge=0)

    @field_validator("interval")
    @classmethod
    def _at_least_a_minute(cls, v: str) -> str:
        if parse_duration(v) < timedelta(minutes=1):
            raise ValueError("must be at least 1 minute (be kind to Blink's servers)")
        return v


class ServerSettings(Section):
    enabled: bool = False
    host: str = "0.0.0.0"
    port: int = Field(default=9090, ge=0, le=65535)
    unhealthy_after: str = "2h"


class NotifySettings(Section):
    urls: list[SecretStr] = Field(default_factory=list)
    failing_for: str = "1h"
    daily_summary: bool = False


class LogSettings(Section):
    level: str = "INFO"
    json_format: bool = Field(default=False, alias="json")

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class AccountSettings(Section):
    name: str = "default"
    username: str | None = None
    password: SecretStr | None = None
    cameras: list[str] = Field(default_factory=list)
    networks: list[str] = Field(default_factory=list)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="ARCHIVER_",
        env_nested_delimiter="__",
        extra="forbid",
        case_sensitive=False,
    )

    data_dir: Path = Field(default_factory=default_data_dir)
    blink: BlinkSettings = Field(default_factory=BlinkSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    sync: SyncSettings = Field(default_factory=SyncSettings)
    local_storage: LocalStorageSettings = Field(default_factory=LocalStorageSettings)
    processing: ProcessingSettings = Field(default_factory=ProcessingSettings)
    destinations: list[DestinationSettings] = Field(default_factory=list)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)
    cloud_cleanup: CloudCleanupSettings = Field(default_factory=CloudCleanupSettings)
    schedule: ScheduleSettings = Field(default_factory=ScheduleSettings)
    server: ServerSettings = Field(default_factory=ServerSettings)
    notify: NotifySettings = Field(default_factory=NotifySettings)
    log: LogSettings = Field(default_factory=LogSettings)
    accounts: list[AccountSettings] = Field(default_factory=list)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if settings_cls.model_config.get("toml_file"):
            sources.append(TomlConfigSettingsSource(settings_cls))
        return tuple(sources)

    # -- derived values -------------------------------------------------------------------------
    @property
    def database_url(self) -> str:
        return self.database.url or f"sqlite:///{self.data_dir / 'archiver.db'}"

    @property
    def staging_dir(self) -> Path:
        return self.sync.staging_dir or self.data_dir / "staging"

    @property
    def archive_dir(self) -> Path:
        return self.data_dir / "archive"

    def destination_list(self) -> list[DiskDestinationSettings | S3DestinationSettings]:
        return list(self.destinations) or [DiskDestinationSettings(path=self.archive_dir)]

    def account_list(self) -> list[AccountSettings]:
        if self.accounts:
            return list(self.accounts)
        return [
            AccountSettings(
                name="default",
                username=self.blink.username,
                password=self.blink.password,
                cameras=self.sync.cameras,
                networks=self.sync.networks,
            )
        ]


def load_settings(path: Path | str | None = None, **overrides: Any) -> Settings:
    """Read the TOML file (``path`` or ``ARCHIVER_CONFIG``) and the environment; raise ConfigError."""
    path = path or os.environ.get("ARCHIVER_CONFIG") or None
    cls: type[Settings] = Settings
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file not found: {p}")
        try:
            with p.open("rb") as fh:
                tomllib.load(fh)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {p} is not valid TOML: {exc}") from None
        except OSError as exc:
            raise ConfigError(f"config file {p} cannot be read: {exc.strerror}") from None

        class _FileSettings(Settings):
            model_config = SettingsConfigDict(toml_file=p)

        cls = _FileSettings
    try:
        return cls(**overrides)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"])
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise ConfigError(f"invalid setting {key}: {err['msg']}{more}") from None
