"""Settings models of the destination types (light: no backend library is imported here).

Each model is registered with its factory in :mod:`archiver.destinations.registry`; the config's
``[[destinations]]`` union is built from that registry.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

_REGION = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_BUCKET = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$")


class DestinationSettingsBase(BaseModel):
    """What every destination has: its type (the registry key) and an optional stable name."""

    model_config = ConfigDict(extra="forbid")

    type: str
    name: str | None = None

    @field_validator("name")
    @classmethod
    def _name_is_one_word(cls, v: str | None) -> str | None:
        if v is not None and (not v.strip() or any(ch.isspace() or not ch.isprintable() for ch in v)):
            raise ValueError("must be a non-empty name without spaces or control characters")
        return v


class DiskDestinationSettings(DestinationSettingsBase):
    type: Literal["disk"] = "disk"
    path: Path | None = None  # default: <data_dir>/archive
    permissions: Literal["private", "shared"] = "private"  # private: 0600/0700; shared: 0644/0755
    min_free_mb: int = Field(default=100, ge=0)  # preflight refuses to download below this


class S3DestinationSettings(DestinationSettingsBase):
    type: Literal["s3"] = "s3"
    bucket: str
    prefix: str = ""
    endpoint_url: str | None = None
    region: str | None = None
    storage_class: str | None = None
    sse: str | None = None  # "AES256" or "aws:kms"
    access_key_id: str | None = None
    secret_access_key: SecretStr | None = None
    multipart_threshold_mb: int = Field(default=64, ge=5)
    abort_incomplete_after_h: float = Field(default=24, ge=0)  # stale multipart uploads are aborted

    @field_validator("bucket")
    @classmethod
    def _bucket_name(cls, v: str) -> str:
        if not _BUCKET.match(v):
            raise ValueError("is not a bucket name (letters, digits, '.', '-', '_'; no '/')")
        return v

    @field_validator("endpoint_url")
    @classmethod
    def _endpoint(cls, v: str | None) -> str | None:
        if not v:
            return None
        try:
            parts = urlsplit(v)
            parts.port  # noqa: B018  (raises ValueError for a port out of range)
        except ValueError as exc:
            raise ValueError(f"is not a URL: {exc}") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL with a host")
        return v

    @field_validator("region")
    @classmethod
    def _region(cls, v: str | None) -> str | None:
        if v and not _REGION.match(v):
            raise ValueError("is not a region name like eu-central-1")
        return v or None
