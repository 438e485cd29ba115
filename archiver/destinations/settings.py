"""Settings models of the destination types (light: no backend library is imported here).

Each model is registered with its factory in :mod:`archiver.destinations.registry`; the config's
``[[destinations]]`` union is built from that registry.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

_REGION = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_BUCKET = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$")


class DestinationSettingsBase(BaseModel):
    """What every destination has: its type (the registry key) and an optional stable name."""

    model_config = ConfigDict(extra="forbid")

    type: str
    name: str | None = None
    # client-side encryption at rest (archiver.destinations.crypt), the key from [encryption] key_file
    encrypt: bool = False
    encrypt_names: bool = False  # also the names of folders and files (else they stay readable)

    def secrets(self) -> list[str]:
        """The values of this destination's secret settings (kept out of every message)."""
        return [v.get_secret_value() for v in self.__dict__.values() if isinstance(v, SecretStr)]

    @model_validator(mode="after")
    def _names_need_encrypt(self) -> DestinationSettingsBase:
        if self.encrypt_names and not self.encrypt:
            raise ValueError("encrypt_names needs encrypt = true")
        return self

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


def _no_userinfo(v: str) -> str:
    """Validator: a URL with a scheme, a host-or-path, and no ``user:password@`` (secrets go in their
    own settings, so no URL printed anywhere carries one)."""
    try:
        parts = urlsplit(v)
        parts.port  # noqa: B018
    except ValueError as exc:
        raise ValueError(f"is not a URL: {exc}") from None
    if parts.username or parts.password:
        raise ValueError("must not contain user:password@ (use the username/password settings)")
    return v


class RemoteSettingsBase(DestinationSettingsBase):
    """What every remote (fsspec) destination has: bounded timeouts and retries."""

    timeout_s: float = Field(default=30, gt=0, le=600)  # connect/login and each request
    retries: int = Field(default=3, ge=1, le=10)  # attempts of an operation that met a transient error
    verify_writes: bool = True  # read what was written back before it takes its final name


class FsspecDestinationSettings(RemoteSettingsBase):
    """Any fsspec filesystem (Google Drive with gdrivefs, OneDrive with msgraphfs, ...): its package must
    be installed. ``options`` are passed to the filesystem as they are; values of keys that look secret
    (password, token, secret, key) are kept out of messages."""

    type: Literal["fsspec"] = "fsspec"
    url: str  # protocol://bucket-or-host/path
    options: dict[str, Any] = Field(default_factory=dict)
    atomic_rename: bool = True  # write to a temporary name, then move (False: write in place and verify)

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        _no_userinfo(v)
        if "://" not in v:
            raise ValueError("must be protocol://… (e.g. sftp://host/path, gdrive://folder)")
        return v

    def secrets(self) -> list[str]:
        found = super().secrets()
        for k, v in self.options.items():
            if isinstance(v, str) and _SECRET_KEY.search(k):
                found.append(v)
        return found


_SECRET_KEY = re.compile(r"pass|token|secret|key|auth|credential", re.IGNORECASE)


class SftpDestinationSettings(RemoteSettingsBase):
    type: Literal["sftp"] = "sftp"
    host: str
    port: int = Field(default=22, ge=1, le=65535)
    username: str
    password: SecretStr | None = None
    key_file: Path | None = None
    key_passphrase: SecretStr | None = None
    # a known_hosts file the server's key must be in, or "accept-new": trust the key seen first and
    # remember it in <data_dir>/ssh_known_hosts (a changed key is refused afterwards)
    known_hosts: str = "~/.ssh/known_hosts"
    path: str = ""  # folder on the server (relative to the login's home unless it starts with /)

    @field_validator("host")
    @classmethod
    def _host(cls, v: str) -> str:
        if not v or any(ch.isspace() or ch in "/@" for ch in v):
            raise ValueError("must be a host name or address (no user@, no path)")
        return v

    @model_validator(mode="after")
    def _some_login(self) -> SftpDestinationSettings:
        if self.password is None and self.key_file is None:
            raise ValueError("needs a password or a key_file")
        return self


class WebdavDestinationSettings(RemoteSettingsBase):
    type: Literal["webdav"] = "webdav"
    url: str  # http(s)://nas.local:5006/ (the WebDAV root)
    username: str | None = None
    password: SecretStr | None = None
    path: str = ""  # folder under the URL
    ca_file: Path | None = None  # a private CA for an https:// NAS (else the system's)

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        _no_userinfo(v)
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL with a host")
        return v


class SmbDestinationSettings(RemoteSettingsBase):
    type: Literal["smb"] = "smb"
    host: str
    port: int = Field(default=445, ge=1, le=65535)
    share: str
    username: str | None = None
    password: SecretStr | None = None
    path: str = ""  # folder in the share

    @field_validator("share")
    @classmethod
    def _share(cls, v: str) -> str:
        if not v or any(ch in "/\\" for ch in v):
            raise ValueError("is the share's name only (no slashes)")
        return v
