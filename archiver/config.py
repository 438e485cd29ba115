"""Settings: a TOML file plus ``ARCHIVER_<SECTION>__<KEY>`` environment variables (env wins).

Every default works with no file at all: SQLite and the archive folder live under the data directory.
"""

from __future__ import annotations

import difflib
import os
import tomllib
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import platformdirs
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    TomlConfigSettingsSource,
)

from archiver.destinations.registry import BACKENDS, DestinationSettings
from archiver.destinations.settings import (
    DestinationSettingsBase,
    DiskDestinationSettings,
    S3DestinationSettings,
)
from archiver.errors import ConfigError

__all__ = ["DiskDestinationSettings", "S3DestinationSettings", "Settings", "load_settings"]

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


def check_duration(value: str | None) -> str | None:
    """Validator: a duration parse_duration understands ('15m', '1h', '90s', '2d', seconds)."""
    if value is None:
        return None
    try:
        seconds = parse_duration(value).total_seconds()
    except (ValueError, OverflowError):
        raise ValueError(f"{value!r} is not a duration like 90s, 15m, 1h or 2d") from None
    if seconds < 0:
        raise ValueError("must not be negative")
    return value


def check_http_url(value: str | None) -> str | None:
    """Validator: an http(s) URL with a host (or unset)."""
    if value is None:
        return None
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018  (raises ValueError for a bad port)
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a URL ({exc})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{value!r} is not an http:// or https:// URL")
    return value


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

    @field_validator("oauth_url", "rest_url", "server_url")
    @classmethod
    def _urls(cls, v: str | None) -> str | None:
        return check_http_url(v)

    @field_validator("rest_url_template")
    @classmethod
    def _template_has_only_tier(cls, v: str) -> str:
        try:
            check_http_url(v.format(tier="prod"))
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"must be a URL with {{tier}} as its only field ({exc})") from None
        return v

    @field_validator("auth")
    @classmethod
    def _no_legacy(cls, v: str) -> str:
        if v == "legacy":  # the seeds' v4/v5 login: removed from the archiver
            raise ValueError(
                "the legacy v4/v5 login answers HTTP 426 for every app version since mid-2026 and was "
                'removed; use auth = "oauth" (the default)'
            )
        return v

    def hosts(self, tier: str | None) -> tuple[str, str, str]:
        """(oauth, rest-prod, regional rest) base URLs."""
        if self.server_url:
            base = self.server_url.rstrip("/")
            return base, base, base
        regional = self.rest_url_template.format(tier=tier) if tier else self.rest_url
        return self.oauth_url.rstrip("/"), self.rest_url.rstrip("/"), regional.rstrip("/")


class DatabaseSettings(Section):
    url: str | None = None  # default: sqlite:///<data_dir>/archiver.db

    @field_validator("url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is None:
            return None
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            u = make_url(v)
        except ArgumentError:
            raise ValueError(
                "is not a database URL like sqlite:///path/archiver.db or postgresql://…"
            ) from None
        if u.get_backend_name() not in ("sqlite", "postgresql"):
            raise ValueError(f"{u.get_backend_name()!r} is not supported: use sqlite or postgresql")
        return v


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
    # media and listing (issue 11/16): clips Blink flags `partial` are fetched once this old
    partial_grace_minutes: float = Field(default=15, ge=0)
    # Blink's `Date` header is trusted for the cursor only up to this far ahead of the local clock
    clock_skew_tolerance_s: float = Field(default=120, ge=0)
    # a failed clip waits before its next try: retry_backoff, doubling per failure, up to retry_backoff_max
    retry_backoff: str = "5m"
    retry_backoff_max: str = "1d"

    @field_validator("retry_backoff", "retry_backoff_max")
    @classmethod
    def _backoff(cls, v: str) -> str:
        return check_duration(v) or v

    @field_validator("filename_template")
    @classmethod
    def _template(cls, v: str) -> str:
        from archiver.pipeline.naming import template_problem

        problem = template_problem(v)
        if problem is not None:
            raise ValueError(problem)
        return v

    @field_validator("since")
    @classmethod
    def _since(cls, v: str) -> str:
        from datetime import datetime

        try:
            datetime.fromisoformat(v)
        except ValueError:
            raise ValueError(f"{v!r} is not a date like 2024-05-01 or 2024-05-01T08:00:00+00:00") from None
        return v


class LocalStorageSettings(Section):
    enabled: bool = True
    discovery_interval: str = "6h"
    command_deadline_s: float = Field(default=120, gt=0)
    manifest_deadline_s: float = Field(default=120, gt=0)
    upload_deadline_s: float = Field(default=240, gt=0)
    poll_interval_s: float = Field(default=1.0, gt=0)
    busy_pause_s: float = Field(default=5.0, ge=0)

    @field_validator("discovery_interval")
    @classmethod
    def _duration(cls, v: str) -> str | None:
        return check_duration(v)


class LimitsSettings(Section):
    """Bounds on what a (possibly hostile or broken) server can make one sync do."""

    max_clip_bytes: int = Field(default=500 * 1024 * 1024, ge=1024)
    max_thumbnail_bytes: int = Field(default=5 * 1024 * 1024, ge=1024)
    max_json_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)  # counted after decompression
    download_grace_s: float = Field(default=30, gt=0)  # every download gets this long, plus ...
    min_download_bytes_per_s: float = Field(default=20_000, gt=0)  # ... its size at this rate
    sync_deadline: str = "4h"  # one account's sync stops here; the rest waits for the next run
    max_listing_pages: int = Field(default=1000, ge=1)

    @field_validator("sync_deadline")
    @classmethod
    def _duration(cls, v: str) -> str:
        try:
            ok = parse_duration(v) > timedelta(0)
        except ValueError:
            ok = False
        if not ok:
            raise ValueError("must be a duration like 90s, 30m or 4h")
        return v


class ProcessingSettings(Section):
    transcode: Literal["off", "remux", "h264", "h265", "av1"] = "off"
    crf: int = Field(default=28, ge=0, le=63)
    preset: str = "medium"
    keep_original: bool = True
    thumbnail: Literal["blink", "generated", "both"] = "generated"  # issue 28: one request per clip
    preview: Literal["off", "webp", "gif"] = "off"
    ffmpeg: str | None = None
    workers: int | None = Field(default=None, ge=1)
    timeout_s: float = Field(default=300, gt=0)
    probe: bool = True
    # the processing steps in order (archiver.media.steps.STEPS); each one's own option above turns it off
    steps: list[str] = Field(default_factory=lambda: ["probe", "thumbnail", "transcode", "preview"])


class SummariesSettings(Section):
    """Daily summary videos: after a sync, one video per camera and local day whose clips changed."""

    daily: bool = False
    speed: float = Field(default=1.0, ge=1, le=1000)  # time-lapse factor (1 = real time)
    burn_in: bool = True  # the camera's name and local time drawn on each clip
    template: str = "summaries/{network}/{camera}/{date}.mp4"


class PersonSettings(Section):
    """``person``: OpenCV's built-in HOG people detector (extra ``analysis-person``)."""

    min_confidence: float = Field(default=0.6, ge=0.0, le=1.0)
    frames: int = Field(default=4, ge=1, le=32)  # evenly spread over the clip
    width: int = Field(default=640, ge=128, le=1920)  # frames are scaled to this width first


class OnnxSettings(Section):
    """``onnx``: a user's YOLO-format ONNX model through onnxruntime (extra ``analysis-onnx``)."""

    model: Path | None = None  # the .onnx file (never downloaded)
    labels: Path | None = None  # one class name a line, in the model's order (default: class0, class1…)
    min_confidence: float = Field(default=0.5, ge=0.0, le=1.0)
    iou: float = Field(default=0.45, gt=0.0, le=1.0)  # non-maximum suppression overlap
    allow: list[str] = Field(default_factory=list)  # labels kept (person, car, dog…); empty: all
    frames: int = Field(default=4, ge=1, le=32)


class AnalysisSettings(Section):
    """What is in each clip (issue 24): detectors registered by name (archiver.analysis.DETECTORS)."""

    enabled: bool = True
    detectors: list[str] = Field(default_factory=lambda: ["motion"])
    queue: int = Field(default=1000, ge=1)  # clips waiting for the worker; more wait for the next pass
    workers: int = Field(default=1, ge=1, le=8)  # clips analysed at once (CPU: one is plenty)
    retry_after: str = "1h"  # a failed analysis is tried again after this, doubling
    max_attempts: int = Field(default=5, ge=1)
    person: PersonSettings = Field(default_factory=PersonSettings)
    onnx: OnnxSettings = Field(default_factory=OnnxSettings)

    @field_validator("retry_after")
    @classmethod
    def _duration(cls, v: str) -> str | None:
        return check_duration(v)


class SilenceSettings(Section):
    """Which camera went quiet: raised once when a camera recorded nothing for
    ``max(min_silence, factor x its usual gap)``; the usual gap is the ``percentile`` of the gaps between
    its clips over ``window_days``."""

    enabled: bool = True
    min_silence: str = "24h"
    factor: float = Field(default=3.0, ge=1.0)
    window_days: float = Field(default=14, gt=0)
    percentile: float = Field(default=95, gt=0, le=100)
    min_gaps: int = Field(default=5, ge=1)  # fewer gaps in the window: the usual gap is the whole window
    sync_modules: bool = True  # also: a Sync Module offline, USB storage no longer active

    @field_validator("min_silence")
    @classmethod
    def _duration(cls, v: str) -> str | None:
        return check_duration(v)


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

    @field_validator("interval", "prune_interval", "verify_interval")
    @classmethod
    def _durations(cls, v: str | None) -> str | None:
        return check_duration(v)

    @field_validator("cron")
    @classmethod
    def _cron(cls, v: str | None) -> str | None:
        if v is None:
            return None
        from apscheduler.triggers.cron import CronTrigger

        try:
            CronTrigger.from_crontab(v)
        except (ValueError, KeyError, IndexError) as exc:
            raise ValueError(f"{v!r} is not a crontab line like '*/15 * * * *' ({exc})") from None
        return v

    @field_validator("interval")
    @classmethod
    def _at_least_a_minute(cls, v: str) -> str:
        if parse_duration(v) < timedelta(minutes=1):
            raise ValueError("must be at least 1 minute (be kind to Blink's servers)")
        return v


class ServerAuthSettings(Section):
    """HTTP basic auth for the web UI (required for any bind but loopback). Probes and /metrics stay open."""

    username: str = "archiver"
    password: SecretStr | None = None
    token: SecretStr | None = None  # "Authorization: Bearer <token>" (or as the basic-auth password)

    @property
    def configured(self) -> bool:
        return any(s is not None and s.get_secret_value() for s in (self.password, self.token))


class ServerSettings(Section):
    enabled: bool = False  # `archiver run` serves the web UI, /healthz, /readyz and /metrics
    host: str = "127.0.0.1"  # anything but loopback needs [server.auth] (or ui = false)
    port: int = Field(default=9090, ge=0, le=65535)
    unhealthy_after: str = "2h"
    ui: bool = True  # false: only /healthz, /readyz and /metrics (no archive content)
    auth: ServerAuthSettings = Field(default_factory=ServerAuthSettings)
    max_connections: int = Field(default=64, ge=4, le=10_000)
    timeout_s: float = Field(default=10.0, gt=0)  # idle keep-alive and request-header deadline
    # where users open the UI (https://archive.example.net): Home Assistant's links to devices and clips
    public_url: str | None = Field(default=None, pattern=r"^https?://[^/\s]+(/\S*)?$")

    @field_validator("unhealthy_after")
    @classmethod
    def _duration(cls, v: str) -> str | None:
        return check_duration(v)


class NotifySettings(Section):
    urls: list[SecretStr] = Field(default_factory=list)
    failing_for: str = "1h"

    @field_validator("failing_for")
    @classmethod
    def _duration(cls, v: str) -> str | None:
        return check_duration(v)

    daily_summary: bool = False


class MqttSettings(Section):
    """Home Assistant over MQTT (discovery, clip events, "sync now"); off while ``url`` is unset."""

    url: str | None = None  # mqtt://host:1883 or mqtts://host:8883
    username: str | None = None
    password: SecretStr | None = None
    discovery_prefix: str = "homeassistant"
    base_topic: str = "blink-archiver"
    ca_file: Path | None = None  # mqtts with a private CA; default: the system's CAs
    # a clip event waits (at most this long after the clip was stored) for the clip's analysis, so it
    # carries ``activity`` and ``tags``; past it the event goes out without them
    analysis_wait: str = "5s"

    @field_validator("analysis_wait")
    @classmethod
    def _analysis_wait(cls, v: str) -> str | None:
        return check_duration(v)

    @field_validator("url")
    @classmethod
    def _mqtt_url(cls, v: str | None) -> str | None:
        if not v:
            return None
        from urllib.parse import urlsplit

        parts = urlsplit(v)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ValueError("must look like mqtt://host:1883 or mqtts://host:8883")
        try:
            parts.port  # noqa: B018 - raises on a bad port
        except ValueError:
            raise ValueError("has an invalid port") from None
        return v

    @field_validator("discovery_prefix", "base_topic")
    @classmethod
    def _topic(cls, v: str) -> str:
        v = v.strip("/")
        if not v or any(c in v for c in "#+\x00"):
            raise ValueError("must be a plain MQTT topic (no wildcards)")
        return v

    @field_validator("ca_file")
    @classmethod
    def _ca_file(cls, v: Path | None) -> Path | None:
        if v is not None and not v.expanduser().is_file():
            raise ValueError(f"{v} is not a readable file")
        return v.expanduser() if v is not None else None

    @property
    def enabled(self) -> bool:
        return bool(self.url)


class LogSettings(Section):
    level: str = "INFO"

    @field_validator("level")
    @classmethod
    def _level(cls, v: str) -> str:
        names = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
        if v.upper() not in names:
            raise ValueError(f"{v!r} is not a log level: use one of {', '.join(names)}")
        return v.upper()

    json_format: bool = Field(default=False, alias="json")

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class EncryptionSettings(Section):
    """The key of every destination with ``encrypt = true`` (``archiver keygen FILE`` makes one)."""

    key_file: Path | None = None


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
    limits: LimitsSettings = Field(default_factory=LimitsSettings)
    processing: ProcessingSettings = Field(default_factory=ProcessingSettings)
    analysis: AnalysisSettings = Field(default_factory=AnalysisSettings)
    silence: SilenceSettings = Field(default_factory=SilenceSettings)
    destinations: list[DestinationSettings] = Field(default_factory=list)
    encryption: EncryptionSettings = Field(default_factory=EncryptionSettings)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)
    summaries: SummariesSettings = Field(default_factory=SummariesSettings)
    cloud_cleanup: CloudCleanupSettings = Field(default_factory=CloudCleanupSettings)
    schedule: ScheduleSettings = Field(default_factory=ScheduleSettings)
    server: ServerSettings = Field(default_factory=ServerSettings)
    notify: NotifySettings = Field(default_factory=NotifySettings)
    mqtt: MqttSettings = Field(default_factory=MqttSettings)
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

    @model_validator(mode="after")
    def _encrypted_destinations_have_a_key(self) -> Settings:
        if self.encryption.key_file is None:
            for i, d in enumerate(self.destinations):
                if d.encrypt:
                    raise ValueError(
                        f"destinations[{i}] has encrypt = true but [encryption] key_file is not set "
                        "(make a key with `archiver keygen FILE`)"
                    )
        return self

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

    def destination_list(self) -> list[DestinationSettingsBase]:
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
        except UnicodeDecodeError as exc:  # TOML is UTF-8: a Latin-1 or UTF-16 file stops here
            raise ConfigError(
                f"config file {p} is not UTF-8 text (byte {exc.start + 1}): save it as UTF-8"
            ) from None
        except OSError as exc:
            raise ConfigError(f"config file {p} cannot be read: {exc.strerror}") from None

        class _FileSettings(Settings):
            model_config = SettingsConfigDict(toml_file=p)

        cls = _FileSettings
    try:
        return cls(**overrides)
    except ValidationError as exc:
        raise ConfigError(validation_message(exc)) from None
    except SettingsError as exc:  # an environment value that must be JSON (a list or a table) is not
        raise ConfigError(_env_json_error(str(exc))) from None
    except OSError as exc:  # the TOML file vanished or turned unreadable between the checks
        raise ConfigError(f"config file {path} cannot be read: {exc.strerror}") from None


def validation_message(exc: ValidationError) -> str:
    """Every problem pydantic found, each naming its key: one line for one problem, else a heading and
    one indented line per key (a misspelt key gets "did you mean …")."""
    problems = [_problem(err["loc"], err["type"], str(err["msg"])) for err in exc.errors()]
    problems = list(dict.fromkeys(problems))  # a union reports the same key once per member
    if len(problems) == 1:
        return f"invalid setting {problems[0]}"
    return f"{len(problems)} invalid settings:\n" + "\n".join(f"  {p}" for p in problems)


def _problem(loc: tuple[int | str, ...], kind: str, msg: str) -> str:
    key = _key(loc)
    if kind != "extra_forbidden" or not loc:
        return f"{key}: {msg.removeprefix('Value error, ')}"
    known = _known_keys(loc[:-1])
    hint = difflib.get_close_matches(str(loc[-1]).lower(), known, n=1, cutoff=0.6)
    where = "this section" if len(loc) > 1 else "the top level"
    return f"{key}: unknown key" + (f" (did you mean `{hint[0]}`?)" if hint else f" in {where}")


def _known_keys(loc: tuple[int | str, ...]) -> list[str]:
    """The keys the model at ``loc`` (a path into Settings) accepts: field names and aliases."""
    model: Any = Settings
    for part in loc:
        if isinstance(part, int):
            continue
        if isinstance(part, str) and part in BACKENDS and model is None:
            model = BACKENDS[part].settings
            continue
        field = getattr(model, "model_fields", {}).get(part) if model is not None else None
        if field is None:
            return []
        model = _model_of(field.annotation)
    fields = getattr(model, "model_fields", {}) if model is not None else {}
    return [k for name, f in fields.items() for k in {name, f.alias or name}]


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model a field holds (itself, or a list's items); None for a union of them."""
    from typing import get_args

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    args = [a for a in get_args(annotation) if isinstance(a, type) and issubclass(a, BaseModel)]
    return args[0] if len(args) == 1 else None


def _key(loc: tuple[int | str, ...]) -> str:
    """('destinations', 0, 's3', 'bucket') -> 'destinations[0].bucket'."""
    out = ""
    prev: int | str | None = None
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not (isinstance(prev, int) and out.startswith("destinations") and part in BACKENDS):
            out += f".{part}" if out else str(part)
        prev = part
    return out


def _env_json_error(text: str) -> str:
    """Name the ARCHIVER_… variable whose value is not the JSON its setting needs."""
    import json
    import re

    m = re.search(r'field "([^"]+)"', text)
    field = m.group(1) if m else "?"
    prefix = f"ARCHIVER_{field.upper()}"
    for name, value in sorted(os.environ.items()):
        if name.upper() == prefix or name.upper().startswith(prefix + "__"):
            try:
                json.loads(value)
            except ValueError:
                key = name[len("ARCHIVER_") :].lower().replace("__", ".")
                return f'invalid setting {key}: {name} must be JSON here (e.g. ["a", "b"] or {{…}})'
    return f"invalid setting {field}: its ARCHIVER_{field.upper()}… environment value is not valid JSON"
