"""Blink REST endpoints as typed calls. Transport policy lives in http.py; auth in auth.py."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TypeVar
from urllib.parse import quote, unquote

import httpx
from pydantic import BaseModel, ValidationError

from archiver.blink.auth import Authenticator
from archiver.blink.http import BlinkHTTP
from archiver.blink.models import (
    ApiMessage,
    CommandRef,
    CommandStatus,
    Homescreen,
    Manifest,
    MediaPage,
)
from archiver.errors import BlinkError

M = TypeVar("M", bound=BaseModel)
log = logging.getLogger("archiver.blink")


def format_since(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+0000")


class UnsafeURL(BlinkError):
    """A server-supplied value that cannot be used in a request URL (path traversal, odd scheme…)."""


def _segment(value: str | int) -> str:
    """One path segment from a value the server gave us: percent-encoded, never '.' or '..'."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise UnsafeURL("not an id")
    text = str(value)
    if text in ("", ".", "..") or any(ord(c) < 0x20 or c == "\x7f" for c in text):
        raise UnsafeURL(f"unusable id in a URL: {text[:40]!r}")
    return quote(text, safe="")


def build_url(base: str, *segments: str | int) -> httpx.URL:
    """``base`` + one percent-encoded segment per value (never string-formatted into a path)."""
    root = httpx.URL(base)
    path = root.raw_path.split(b"?")[0].rstrip(b"/") + b"".join(b"/" + _segment(s).encode() for s in segments)
    return root.copy_with(raw_path=path)


def media_url(base: str, value: str) -> httpx.URL:
    """A media/thumbnail path as listed by Blink: absolute http(s) URLs as given (auth headers only go
    to Blink's hosts, see BlinkHTTP), relative ones under ``base``; no dot segments, no backslashes."""
    text = value.strip()
    if not text or any(ord(c) < 0x20 or c in "\x7f\\" for c in text):
        raise UnsafeURL("unusable media path")
    try:
        url = httpx.URL(text)
    except (httpx.InvalidURL, ValueError):
        raise UnsafeURL("unusable media path") from None
    if url.is_absolute_url:
        if url.scheme not in ("http", "https") or not url.host:
            raise UnsafeURL(f"media URL with scheme {url.scheme!r} refused")
    elif not text.startswith("/") or text.startswith("//"):
        raise UnsafeURL("media path is neither absolute nor rooted")
    raw = url.raw_path.split(b"?")[0].decode("ascii", "replace")
    if any(unquote(seg) in (".", "..") or "/" in unquote(seg) for seg in raw.split("/")):
        raise UnsafeURL("media path with dot segments refused")
    if url.is_absolute_url:
        return url
    root = httpx.URL(base)
    return root.copy_with(raw_path=root.raw_path.split(b"?")[0].rstrip(b"/") + url.raw_path)


def _parse(model: type[M], resp: httpx.Response, what: str) -> M:
    """The body as ``model``, whatever the Content-Type says (Blink's types are not documented)."""
    ctype = resp.headers.get("content-type", "")
    try:
        return model.model_validate_json(resp.content)
    except ValidationError as exc:
        if any(e["type"] == "json_invalid" for e in exc.errors()):
            raise BlinkError(
                f"{what}: Blink answered {ctype or 'no content type'} that is not JSON "
                f"(HTTP {resp.status_code})"
            ) from None
        raise BlinkError(f"{what}: unexpected answer from Blink ({exc.error_count()} field errors)") from None


def server_time(resp: httpx.Response) -> datetime | None:
    value = resp.headers.get("date")
    if not value:
        return None
    try:
        return parsedate_to_datetime(value).astimezone(UTC)
    except (TypeError, ValueError, OverflowError, IndexError):
        return None


MEDIA_NOT_FOUND_CODE = 700


def media_not_found(status: int, body: bytes) -> bool:
    """Blink's "Media not found" (code 700): for a USB clip, "not uploaded yet". 404/410 always count;
    any other 4xx, and a 200, count when the body is that JSON message (whatever its Content-Type)."""
    if status in (404, 410):
        return True
    if not (status == 200 or 400 <= status < 500) or len(body) > 65536:
        return False
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return False
    if not isinstance(data, dict):
        return False
    code, message = data.get("code"), data.get("message")
    return code in (MEDIA_NOT_FOUND_CODE, str(MEDIA_NOT_FOUND_CODE)) or (
        isinstance(message, str) and message.strip().lower() == "media not found"
    )


class ListingPage(BaseModel):
    page: MediaPage
    server_time: datetime | None = None
    new_ids: int = 0  # ids this listing had not seen on an earlier page


class LocalStoragePending(BlinkError):
    """Not ready yet (manifest 409 / clip not uploaded yet, code 700)."""


class SyncModuleBusy(BlinkError):
    """The Sync Module answered 409 'busy'."""


class SyncModuleOffline(BlinkError):
    """409 code 1007 (or a message saying so): nothing on its USB storage can be reached this run."""


OFFLINE_CODE = 1007


def _offline(resp: httpx.Response) -> bool:
    try:
        msg = ApiMessage.model_validate_json(resp.content)
    except ValidationError:
        return False
    return msg.code == OFFLINE_CODE or "offline" in (msg.message or "").lower()


class BlinkAPI:
    def __init__(self, http: BlinkHTTP, auth: Authenticator) -> None:
        self.http = http
        self.auth = auth

    @property
    def account_id(self) -> int:
        if self.auth.creds.account_id is None:
            raise BlinkError("no Blink account id known: run `archiver login`")
        return self.auth.creds.account_id

    def url(self, path: str) -> httpx.URL:
        """A server-supplied media or thumbnail path, checked (see ``media_url``)."""
        return media_url(self.auth.base_url, path)

    def endpoint(self, *segments: str | int) -> httpx.URL:
        """One of our endpoints on the regional host, each segment percent-encoded."""
        return build_url(self.auth.base_url, *segments)

    def account_endpoint(self, version: str, *segments: str | int) -> httpx.URL:
        return self.endpoint("api", version, "accounts", self.account_id, *segments)

    async def _get_json(self, model: type[M], url: httpx.URL, what: str, **kw: object) -> M:
        resp = await self.http.request("GET", url, what=what, **kw)  # type: ignore[arg-type]
        if resp.status_code != 200:
            raise BlinkError(f"{what}: Blink answered HTTP {resp.status_code}")
        return _parse(model, resp, what)

    # -- discovery -------------------------------------------------------------------------------
    async def homescreen(self) -> Homescreen:
        await self.auth.ensure()
        return await self._get_json(Homescreen, self.account_endpoint("v3", "homescreen"), "homescreen")

    # -- cloud media -------------------------------------------------------------------------------
    async def media_pages(self, since: datetime, max_pages: int = 1000) -> AsyncIterator[ListingPage]:
        """media/changed from page 1 until a page brings nothing new: an empty page (a short one is not
        the end: Blink's page size varies), or one whose clips were all on earlier pages (a server
        that repeats itself). More than ``max_pages`` pages is an error."""
        await self.auth.ensure()
        seen: set[int] = set()
        page_no = 1
        while True:
            what = f"media/changed page {page_no}"
            resp = await self.http.request(
                "GET",
                self.account_endpoint("v1", "media", "changed"),
                params={"since": format_since(since), "page": page_no},
                what=what,
            )
            if resp.status_code != 200:
                raise BlinkError(f"{what}: Blink answered HTTP {resp.status_code}")
            page = _parse(MediaPage, resp, what)
            ids = {i.id for i in page.media}
            new = ids - seen
            seen |= ids
            yield ListingPage(page=page, server_time=server_time(resp), new_ids=len(new))
            if not new:
                return
            page_no += 1
            if page_no > max_pages:
                raise BlinkError(f"media/changed did not end within {max_pages} pages; giving up this run")

    async def delete_media(self, media_ids: list[int]) -> int | None:
        """Cloud cleanup; tries both documented body shapes. Returns the count Blink says it deleted
        (None when the answer has none: then only a later listing's tombstones confirm it)."""
        url = self.account_endpoint("v1", "media", "delete")
        last = 0
        for body in ({"media_list": media_ids}, {"media_ids": media_ids}):
            resp = await self.http.request("POST", url, json=body, what="media delete")
            last = resp.status_code
            if resp.status_code == 200:
                try:
                    data = json.loads(resp.content)
                except (ValueError, UnicodeDecodeError):
                    return None
                count = data.get("deleted_count") if isinstance(data, dict) else None
                return count if isinstance(count, int) and not isinstance(count, bool) else None
        raise BlinkError(f"media delete: Blink answered HTTP {last}")

    # -- commands ----------------------------------------------------------------------------------
    async def command_status(self, network_id: int, command_id: int) -> CommandStatus:
        return await self._get_json(
            CommandStatus, self.endpoint("network", network_id, "command", command_id), "command status"
        )

    async def wait_for_command(
        self, network_id: int, command_id: int, deadline_s: float, poll_s: float
    ) -> None:
        end = time.monotonic() + deadline_s
        while True:
            status = await self.command_status(network_id, command_id)
            if status.status_code is not None and status.status_code != 908:
                raise BlinkError(f"command {command_id} failed: {status.status_msg or status.status_code}")
            if status.complete:
                return
            if time.monotonic() + poll_s > end:
                raise BlinkError(f"command {command_id} did not complete within {deadline_s:.0f} s")
            await asyncio.sleep(poll_s)

    # -- Sync Module local storage -----------------------------------------------------------------
    def local_storage_url(self, network_id: int, sync_id: int, *more: str | int) -> httpx.URL:
        return self.account_endpoint(
            "v1", "networks", network_id, "sync_modules", sync_id, "local_storage", *more
        )

    async def command_post(self, url: str | httpx.URL, what: str) -> CommandRef:
        """POST that starts a Sync Module command; 409 is 'offline' (code 1007) or 'busy'."""
        resp = await self.http.request("POST", url, what=what)
        if resp.status_code == 409:
            if _offline(resp):
                raise SyncModuleOffline(f"{what}: the Sync Module is offline")
            raise SyncModuleBusy(f"{what}: the Sync Module is busy (HTTP 409)")
        if resp.status_code != 200:
            raise BlinkError(f"{what}: Blink answered HTTP {resp.status_code}")
        return _parse(CommandRef, resp, what)

    async def get_manifest(self, network_id: int, sync_id: int, request_id: int) -> Manifest:
        resp = await self.http.request(
            "GET",
            self.local_storage_url(network_id, sync_id, "manifest", "request", request_id),
            what="manifest",
        )
        if resp.status_code == 409 and _offline(resp):
            raise SyncModuleOffline("manifest: the Sync Module is offline")
        if resp.status_code in (404, 409) or not resp.content.strip():
            raise LocalStoragePending("manifest not ready yet")
        if resp.status_code != 200:
            raise BlinkError(f"manifest: Blink answered HTTP {resp.status_code}")
        try:
            data = json.loads(resp.content)
        except (ValueError, UnicodeDecodeError):
            raise LocalStoragePending("manifest is not JSON yet") from None
        if not isinstance(data, dict) or not data.get("manifest_id"):
            raise LocalStoragePending("manifest has no manifest_id yet")
        manifest = _parse(Manifest, resp, "manifest")
        for reason in manifest.rejected:
            log.warning("sync module %s: skipped a manifest entry: %s", sync_id, reason)
        return manifest

    def local_clip_url(self, network_id: int, sync_id: int, manifest_id: str, clip_id: str) -> httpx.URL:
        """Manifest and clip ids come from the module: validated, percent-encoded segments."""
        return self.local_storage_url(
            network_id, sync_id, "manifest", manifest_id, "clip", "request", clip_id
        )
