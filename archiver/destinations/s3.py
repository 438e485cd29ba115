"""An S3 bucket (AWS or any S3-compatible endpoint: MinIO, Ceph, Garage, R2, moto).

``put`` uploads with ``upload_file`` (multipart above ``multipart_threshold_mb``, parts checksummed with
SHA-256 so the server rejects a corrupted part), then ``head_object`` confirms the size and the sha256 we
stored in the object's metadata before it returns. Every botocore failure becomes one DestinationError line
naming the endpoint and bucket, never a credential.
"""

from __future__ import annotations

import base64
import hashlib
import mimetypes
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote, urlsplit, urlunsplit

import boto3
from boto3.exceptions import Boto3Error
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    NoCredentialsError,
    PartialCredentialsError,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
)

from archiver.destinations.base import (
    READ_CHUNK,
    Capability,
    DestinationBase,
    DestinationError,
    ObjectInfo,
    check_key,
)
from archiver.destinations.settings import S3DestinationSettings
from archiver.util import as_utc

MIB = 1024 * 1024
CHUNK = MIB

_MISSING_CODES = {"404", "NoSuchKey", "NotFound"}
_DENIED_CODES = {
    "AccessDenied": "access denied",
    "InvalidAccessKeyId": "credentials rejected (unknown access key)",
    "SignatureDoesNotMatch": "credentials rejected (signature does not match)",
    "ExpiredToken": "credentials expired",
    "InvalidToken": "credentials rejected (invalid token)",
    "403": "access denied",
}


def _public_url(url: str | None) -> str:
    """The endpoint as shown in messages: no userinfo, no query string."""
    if not url:
        return "AWS S3"
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def _meta_value(value: str) -> str:
    """S3 user metadata travels in HTTP headers: keep ASCII as is, percent-encode anything else."""
    if value.isascii() and value.isprintable():
        return value
    return quote(value, safe=" !#$&'()*+,-./:;=?@[]^_`{|}~")


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


class S3Destination(DestinationBase):
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {
            Capability.health_check,
            Capability.bulk_delete,
            Capability.stored_sha256,
            Capability.incomplete_uploads,
        }
    )

    def __init__(
        self,
        settings: S3DestinationSettings,
        name: str = "s3",
        *,
        connect_timeout: float = 10.0,
        read_timeout: float = 60.0,
        max_attempts: int = 3,
        max_concurrency: int = 4,
        client: Any = None,
    ) -> None:
        self.settings = settings
        self.name = name
        self.bucket = settings.bucket
        prefix = settings.prefix.strip("/")
        self.prefix = f"{prefix}/" if prefix else ""
        self.endpoint = _public_url(settings.endpoint_url)
        self.multipart_bytes = settings.multipart_threshold_mb * MIB
        self.transfer_config = TransferConfig(
            multipart_threshold=self.multipart_bytes,
            multipart_chunksize=self.multipart_bytes,
            max_concurrency=max_concurrency,
        )
        if client is None:
            config = Config(
                connect_timeout=connect_timeout,
                read_timeout=read_timeout,
                retries={"max_attempts": max_attempts, "mode": "standard"},
                user_agent_extra="blink-archiver",
            )
            secret = settings.secret_access_key.get_secret_value() if settings.secret_access_key else None
            session = boto3.session.Session()
            client = session.client(
                "s3",
                endpoint_url=settings.endpoint_url or None,
                region_name=settings.region or None,
                aws_access_key_id=settings.access_key_id or None,
                aws_secret_access_key=secret,
                config=config,
            )
        self.client = client

    def __repr__(self) -> str:
        return f"S3Destination(name={self.name!r}, endpoint={self.endpoint!r}, bucket={self.bucket!r})"

    # -- helpers ------------------------------------------------------------------------------------
    def _key(self, key: str) -> str:
        return self.prefix + check_key(key, self.name)

    def _fail(self, what: str, *, config: bool = False) -> DestinationError:
        return DestinationError(
            f"s3 destination {self.name!r} ({self.endpoint}, bucket {self.bucket!r}): {_one_line(what)}",
            config=config,
        )

    def _describe(self, exc: BaseException) -> str:
        if isinstance(exc, NoCredentialsError | PartialCredentialsError):
            return "no usable AWS credentials (set access_key_id/secret_access_key or the AWS chain)"
        if isinstance(exc, BotoConnectionError):
            return f"cannot reach the endpoint ({exc.__class__.__name__})"
        if isinstance(exc, ClientError):
            err = exc.response.get("Error", {})
            code = str(err.get("Code", ""))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code == "NoSuchBucket":
                return "bucket does not exist"
            if code in _DENIED_CODES:
                return _DENIED_CODES[code]
            message = err.get("Message") or ""
            return f"{code or status}: {message}".rstrip(": ")
        if isinstance(exc, Boto3Error):  # S3UploadFailedError wraps a ClientError only as text
            text = str(exc)
            if "NoSuchBucket" in text:
                return "bucket does not exist"
            for code, desc in _DENIED_CODES.items():
                if f"({code})" in text:
                    return desc
            return text.split(": ", 1)[-1]
        if isinstance(exc, BotoCoreError):
            return f"{exc.__class__.__name__}: {exc}"
        return f"{exc.__class__.__name__}: {exc}"

    @contextmanager
    def _errors(self, action: str, key: str | None = None) -> Iterator[None]:
        try:
            yield
        except DestinationError:
            raise
        except (BotoCoreError, ClientError, Boto3Error, OSError) as exc:
            target = f" {key}" if key else ""
            raise self._fail(f"{action}{target} failed: {self._describe(exc)}") from None

    def _head(self, full_key: str, *, checksum: bool = False) -> dict[str, Any] | None:
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": full_key}
        if checksum:
            kwargs["ChecksumMode"] = "ENABLED"
        try:
            return self.client.head_object(**kwargs)
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code")) in _MISSING_CODES:
                return None
            raise

    def check(self) -> None:
        """Raise DestinationError unless the bucket exists and answers (one HeadBucket)."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code"))
            if code in {"404", "NoSuchBucket", "NotFound"}:
                raise self._fail("bucket does not exist", config=True) from None
            raise self._fail(self._describe(exc), config=code in _DENIED_CODES) from None
        except (NoCredentialsError, PartialCredentialsError) as exc:
            raise self._fail(self._describe(exc), config=True) from None
        except (BotoCoreError, Boto3Error, OSError) as exc:
            raise self._fail(self._describe(exc)) from None

    def preflight(self) -> list[str]:
        """The bucket answers; multipart uploads interrupted long ago (a killed run) are aborted, since
        S3 bills their parts until someone does."""
        self.check()
        older = timedelta(hours=self.settings.abort_incomplete_after_h)
        uploads, size = self.abort_incomplete_uploads(older)
        if uploads:
            return [
                f"s3 destination {self.name!r}: aborted {uploads} interrupted upload(s), {size / 1e6:.1f} MB"
            ]
        return []

    def abort_incomplete_uploads(self, older_than: timedelta) -> tuple[int, int]:
        cutoff = datetime.now(UTC) - older_than
        aborted = freed = 0
        with self._errors("listing interrupted uploads"):
            paginator = self.client.get_paginator("list_multipart_uploads")
            stale: list[tuple[str, str]] = []
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
                for up in page.get("Uploads", []):
                    started = up.get("Initiated")
                    if isinstance(started, datetime) and as_utc(started) <= cutoff:
                        stale.append((up["Key"], up["UploadId"]))
        for full_key, upload_id in stale:
            with self._errors("aborting an interrupted upload of", full_key[len(self.prefix) :]):
                parts = self.client.list_parts(Bucket=self.bucket, Key=full_key, UploadId=upload_id)
                freed += sum(int(p.get("Size", 0)) for p in parts.get("Parts", []))
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=full_key, UploadId=upload_id)
                aborted += 1
        return aborted, freed

    def read_to(self, key: str, path: Path) -> None:
        with self._errors("reading", key):
            try:
                self.client.download_file(self.bucket, self._key(key), str(path))
            except ClientError as exc:
                if str(exc.response.get("Error", {}).get("Code")) in _MISSING_CODES:
                    raise self._fail(f"{key} does not exist") from None
                raise

    def open(self, key: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": self._key(key)}
        if start or end is not None:
            if end is not None and end <= start:
                return iter(())
            kwargs["Range"] = f"bytes={start}-{'' if end is None else end - 1}"
        with self._errors("reading", key):
            try:
                resp = self.client.get_object(**kwargs)
            except ClientError as exc:
                code = str(exc.response.get("Error", {}).get("Code"))
                if code in _MISSING_CODES:
                    raise self._fail(f"{key} does not exist") from None
                if code == "InvalidRange":  # start at or past the end: nothing to read
                    return iter(())
                raise
        return self._body_chunks(resp["Body"], key)

    def location(self, key: str) -> str | None:
        """The object's ``s3://bucket/key`` URI (for a consumer holding its own credentials)."""
        return f"s3://{self.bucket}/{self._key(key)}"

    def _body_chunks(self, body: Any, key: str) -> Iterator[bytes]:
        try:
            with self._errors("reading", key):
                yield from body.iter_chunks(READ_CHUNK)
        finally:
            body.close()

    # -- Destination --------------------------------------------------------------------------------
    def put(self, src: Path, key: str, *, sha256: str, metadata: Mapping[str, str]) -> ObjectInfo:
        full = self._key(key)
        try:
            size = Path(src).stat().st_size
        except OSError as exc:
            raise self._fail(f"cannot read source {src}: {exc.strerror}") from None
        with self._errors("checking", key):
            head = self._head(full)
        if head is not None and self._matches(head, size, sha256):
            return ObjectInfo(key=key, size=size, sha256=sha256)

        meta = {str(k).lower(): _meta_value(str(v)) for k, v in metadata.items()}
        meta["sha256"] = sha256
        extra: dict[str, Any] = {"Metadata": meta, "ChecksumAlgorithm": "SHA256"}
        content_type = mimetypes.guess_type(key)[0]
        if content_type:
            extra["ContentType"] = content_type
        if self.settings.storage_class:
            extra["StorageClass"] = self.settings.storage_class
        if self.settings.sse:
            extra["ServerSideEncryption"] = self.settings.sse
        with self._errors("uploading", key):
            self.client.upload_file(str(src), self.bucket, full, ExtraArgs=extra, Config=self.transfer_config)
            head = self._head(full, checksum=True)
        if head is None:
            raise self._fail(f"{key} is missing right after its upload")
        if not self._matches(head, size, sha256):
            raise self._fail(
                f"{key} does not match after upload (size {head.get('ContentLength')} vs {size} or sha256)"
            )
        # A single-part upload carries a full-object SHA-256 computed by the server: compare it too.
        server_sum = head.get("ChecksumSHA256")
        single_part = server_sum and "-" not in server_sum and size < self.multipart_bytes
        if single_part and base64.b64decode(server_sum).hex() != sha256:
            raise self._fail(f"{key}: the server's SHA-256 differs from the clip's (source changed?)")
        return ObjectInfo(key=key, size=size, sha256=sha256)

    @staticmethod
    def _matches(head: Mapping[str, Any], size: int, sha256: str) -> bool:
        return head.get("ContentLength") == size and head.get("Metadata", {}).get("sha256") == sha256

    def stat(self, key: str) -> ObjectInfo | None:
        with self._errors("checking", key):
            head = self._head(self._key(key))
        if head is None:
            return None
        return ObjectInfo(key=key, size=head["ContentLength"], sha256=head.get("Metadata", {}).get("sha256"))

    def hash(self, key: str) -> str:
        digest = hashlib.sha256()
        with self._errors("reading", key):
            try:
                resp = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
            except ClientError as exc:
                if str(exc.response.get("Error", {}).get("Code")) in _MISSING_CODES:
                    raise self._fail(f"{key} does not exist") from None
                raise
            body = resp["Body"]
            try:
                for chunk in body.iter_chunks(CHUNK):
                    digest.update(chunk)
            finally:
                body.close()
        return digest.hexdigest()

    def delete(self, key: str) -> None:
        with self._errors("deleting", key):
            self.client.delete_object(Bucket=self.bucket, Key=self._key(key))

    def delete_many(self, keys: Sequence[str]) -> dict[str, Exception]:
        """DeleteObjects, 1,000 keys a request; returns the keys S3 refused (a missing key is fine)."""
        failures: dict[str, Exception] = {}
        for i in range(0, len(keys), 1000):
            chunk = list(keys[i : i + 1000])
            try:
                with self._errors("deleting", f"{len(chunk)} objects"):
                    resp = self.client.delete_objects(
                        Bucket=self.bucket,
                        Delete={"Objects": [{"Key": self._key(k)} for k in chunk], "Quiet": True},
                    )
            except DestinationError as exc:
                failures.update(dict.fromkeys(chunk, exc))
                continue
            for err in resp.get("Errors", []):
                key = err.get("Key", "")[len(self.prefix) :]
                reason = f"{err.get('Code')} {err.get('Message', '')}".strip()
                failures[key] = DestinationError(f"s3 destination {self.name!r}: deleting {key}: {reason}")
        return failures

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        paginator = self.client.get_paginator("list_objects_v2")
        with self._errors("listing", self.prefix + prefix or "/"):
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix):
                for obj in page.get("Contents", []):
                    full: str = obj["Key"]
                    if full.endswith("/") or not full.startswith(self.prefix):
                        continue
                    yield ObjectInfo(key=full[len(self.prefix) :], size=obj["Size"])
