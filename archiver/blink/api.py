"""Blink REST endpoints as typed calls. Transport policy lives in http.py; auth in auth.py."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TypeVar

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


def format_since(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+0000")


def _parse(model: type[M], resp: httpx.Response, what: str) -> M:
    ctype = resp.headers.get("content-type", "")
    if "json" not in ctype:
        raise BlinkError(
            f"{what}: Blink answered {ctype or 'no content type'} instead of JSON (HTTP {resp.status_code})"
        )
    try:
        return model.model_validate_json(resp.content)
    except ValidationError as exc:
        raise BlinkError(f"{what}: unexpected answer from Blink ({exc.error_count()} field errors)") from None


def server_time(resp: httpx.Response) -> datetime | None:
    value = resp.headers.get("date")
    if not value:
        return None
    try:
        return parsedate_to_datetime(value).astimezone(UTC)
    except (TypeError, ValueError):
        return None


class ListingPage(BaseModel):
    page: MediaPage
    server_time: datetime | None = None


class LocalStoragePending(BlinkError):
    """Not ready yet (manifest 409 / clip not uploaded yet, code 700)."""


class SyncModuleBusy(BlinkError):
    """The Sync Module answered 409 'busy'."""


class SyncModuleOffline(BlinkError):
    """409 code 1007 (or a message saying so): nothing on its USB storage can be reached this run."""


OFFLINE_CODE = 1007


def _offline(resp: httpx.Response) -> bool:
    if "json" not in resp.headers.get("content-type", ""):
        return False
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

    def url(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            return path
        return f"{self.auth.base_url}{path if path.startswith('/') else '/' + path}"

    async def _get_json(self, model: type[M], path: str, what: str, **kw: object) -> M:
        resp = await self.http.request("GET", self.url(path), what=what, **kw)  # type: ignore[arg-type]
        if resp.status_code != 200:
            raise BlinkError(f"{what}: Blink answered HTTP {resp.status_code}")
        return _parse(model, resp, what)

    # -- discovery -------------------------------------------------------------------------------
    async def homescreen(self) -> Homescreen:
        await self.auth.ensure()
        return await self._get_json(
            Homescreen, f"/api/v3/accounts/{self.account_id}/homescreen", "homescreen"
        )

    # -- cloud media -------------------------------------------------------------------------------
    async def media_pages(self, since: datetime) -> AsyncIterator[ListingPage]:
        """media/changed from page 1 until a short or empty page (page size = the server's limit)."""
        await self.auth.ensure()
        page_no = 1
        while True:
            resp = await self.http.request(
                "GET",
                self.url(f"/api/v1/accounts/{self.account_id}/media/changed"),
                params={"since": format_since(since), "page": page_no},
                what=f"media/changed page {page_no}",
            )
            if resp.status_code != 200:
                raise BlinkError(f"media/changed page {page_no}: Blink answered HTTP {resp.status_code}")
            page = _parse(MediaPage, resp, f"media/changed page {page_no}")
            yield ListingPage(page=page, server_time=server_time(resp))
            limit = page.limit or 25
            if not page.media or len(page.media) < limit:
                return
            page_no += 1
            if page_no > 10_000:
                raise BlinkError("media/changed never ended (10,000 pages); giving up this run")

    async def delete_media(self, media_ids: list[int]) -> None:
        """Cloud cleanup; tries both documented body shapes."""
        path = self.url(f"/api/v1/accounts/{self.account_id}/media/delete")
        last = 0
        for body in ({"media_list": media_ids}, {"media_ids": media_ids}):
            resp = await self.http.request("POST", path, json=body, what="media delete")
            last = resp.status_code
            if resp.status_code == 200:
                return
        raise BlinkError(f"media delete: Blink answered HTTP {last}")

    # -- commands ----------------------------------------------------------------------------------
    async def command_status(self, network_id: int, command_id: int) -> CommandStatus:
        return await self._get_json(
            CommandStatus, f"/network/{network_id}/command/{command_id}", "command status"
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
    def local_storage_url(self, network_id: int, sync_id: int) -> str:
        return self.url(
            f"/api/v1/accounts/{self.account_id}/networks/{network_id}/sync_modules/{sync_id}/local_storage"
        )

    async def command_post(self, url: str, what: str) -> CommandRef:
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
            f"{self.local_storage_url(network_id, sync_id)}/manifest/request/{request_id}",
            what="manifest",
        )
        if resp.status_code == 409 and _offline(resp):
            raise SyncModuleOffline("manifest: the Sync Module is offline")
        if resp.status_code in (404, 409) or not resp.content.strip():
            raise LocalStoragePending("manifest not ready yet")
        if resp.status_code != 200:
            raise BlinkError(f"manifest: Blink answered HTTP {resp.status_code}")
        try:
            data = resp.json() if "json" in resp.headers.get("content-type", "") else {}
        except ValueError:
            raise LocalStoragePending("manifest is not JSON yet") from None
        if not isinstance(data, dict) or not data.get("manifest_id"):
            raise LocalStoragePending("manifest has no manifest_id yet")
        return _parse(Manifest, resp, "manifest")

    def local_clip_url(self, network_id: int, sync_id: int, manifest_id: str, clip_id: str) -> str:
        return f"{self.local_storage_url(network_id, sync_id)}/manifest/{manifest_id}/clip/request/{clip_id}"
