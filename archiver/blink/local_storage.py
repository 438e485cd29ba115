"""The Sync Module 2 USB storage protocol (Blink API §4, §5): manifest, upload request, command polling.
No database here: ``archiver.sources.usb`` records what this client lists.

Flow per module::

    POST manifest/request → wait for the command → GET manifest/request/{id} (poll until ready)
    POST manifest/{mid}/clip/request/{cid} (409 busy → pause, retry) → wait for the command
    → GET the same URL until it stops answering "Media not found" (code 700)
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from archiver.blink.api import BlinkAPI, LocalStoragePending, SyncModuleBusy, SyncModuleOffline
from archiver.blink.models import CommandRef, Manifest
from archiver.config import LocalStorageSettings
from archiver.errors import BlinkError, MediaError
from archiver.pipeline.fetch import Fetched, NotFoundUpstream, download

T = TypeVar("T")


def alnum(name: str | None) -> str:
    """The manifest's spelling of a camera name: non-alphanumerics removed (``Back Door`` → ``BackDoor``)."""
    return re.sub(r"[^0-9A-Za-z]", "", name or "")


def size_matches(size_hint: int | None, nbytes: int) -> str | None:
    """Which unit the manifest ``size`` was in ("bytes"/"KiB"), or None when it matches neither."""
    if size_hint is None:
        return None
    if size_hint > 0 and abs(nbytes - size_hint) <= size_hint * 0.01:
        return "bytes"
    if math.ceil(nbytes / 1024) == size_hint or abs(nbytes / 1024 - size_hint) <= 1:
        return "KiB"
    return None


@dataclass(frozen=True)
class ModuleRef:
    """A Sync Module with USB storage, as the homescreen (or its cached copy) lists it."""

    blink_id: int
    network_id: int
    name: str
    status: str | None
    local_storage_status: str | None
    offline: bool = False  # USB enabled but the module is offline (homescreen only)

    @property
    def label(self) -> str:
        return f"sync module {self.name!r} (id {self.blink_id})"


class Pacer:
    """Learns how long a module takes for one kind of step and waits the shortest time seen before the first
    status request, so a step costs about one poll instead of one per ``poll_interval_s``."""

    def __init__(self) -> None:
        self._seen: deque[float] = deque(maxlen=5)

    def first_wait(self, deadline: float) -> float:
        wait = min(self._seen) if self._seen else 0.0
        return max(0.0, min(wait, deadline - time.monotonic()))

    def record(self, elapsed: float) -> None:
        self._seen.append(elapsed)


class LocalStorageClient:
    """One module's USB calls, telling 'offline' (409 code 1007) apart from 'busy' (409 code 307)."""

    def __init__(
        self, api: BlinkAPI, settings: LocalStorageSettings, module: ModuleRef, *, min_clip_bytes: int
    ) -> None:
        self.api = api
        self.settings = settings
        self.module = module
        self.min_clip_bytes = min_clip_bytes
        self.pace = {"command": Pacer(), "manifest": Pacer(), "upload": Pacer()}

    async def post_until_accepted(self, url: str, what: str, deadline: float) -> CommandRef:
        """POST a command; 'busy' → pause ``busy_pause_s`` and retry until ``deadline`` (monotonic)."""
        while True:
            try:
                return await self.api.command_post(url, what)
            except SyncModuleBusy:
                pause = max(self.settings.busy_pause_s, 0.01)
                if time.monotonic() + pause > deadline:
                    raise SyncModuleBusy(f"{what}: the Sync Module stayed busy until the deadline") from None
                await asyncio.sleep(pause)

    async def wait(self, cmd: CommandRef, deadline: float) -> None:
        started, pacer = time.monotonic(), self.pace["command"]
        await asyncio.sleep(pacer.first_wait(deadline))
        budget = min(self.settings.command_deadline_s, max(deadline - time.monotonic(), 0.0))
        try:
            await self.api.wait_for_command(
                cmd.network_id or self.module.network_id, cmd.id, budget, self.settings.poll_interval_s
            )
        except BlinkError as exc:
            if "offline" in str(exc).lower():
                raise SyncModuleOffline(str(exc)) from None
            raise
        pacer.record(time.monotonic() - started)

    async def manifest(self) -> Manifest:
        """Request a fresh manifest, wait for its command, poll it until ready (with backoff)."""
        net, sm = self.module.network_id, self.module.blink_id
        end = time.monotonic() + self.settings.manifest_deadline_s
        base = self.api.local_storage_url(net, sm)
        cmd = await self.post_until_accepted(f"{base}/manifest/request", "manifest request", end)
        await self.wait(cmd, end)
        return await self._poll(
            "manifest",
            end,
            lambda: self.api.get_manifest(net, sm, cmd.id),
            LocalStoragePending,
            growth=2,
            cap=max(self.settings.poll_interval_s * 8, 1.0),
            late=BlinkError(f"manifest not ready within {self.settings.manifest_deadline_s:g} s"),
        )

    def clip_url(self, manifest_id: str, clip_id: str) -> str:
        return self.api.local_clip_url(self.module.network_id, self.module.blink_id, manifest_id, clip_id)

    async def request_upload(self, url: str, deadline: float) -> None:
        """Ask the module to upload one clip and wait until it took the command."""
        cmd = await self.post_until_accepted(url, "clip upload request", deadline)
        await self.wait(cmd, deadline)

    async def fetch(self, url: str, dest: Path, deadline: float) -> Fetched:
        """GET the uploaded clip, polling while Blink still says 'Media not found' (not uploaded yet)."""
        return await self._poll(
            "upload",
            deadline,
            lambda: download(self.api.http, url, dest, kind="clip", min_bytes=self.min_clip_bytes),
            NotFoundUpstream,
            growth=1.5,
            cap=self.settings.poll_interval_s * 4,
            late=MediaError(f"the USB clip was not uploaded within {self.settings.upload_deadline_s:g} s"),
        )

    async def _poll(
        self,
        step: str,
        deadline: float,
        attempt: Callable[[], Awaitable[T]],
        pending: type[Exception],
        *,
        growth: float,
        cap: float,
        late: Exception,
    ) -> T:
        """``attempt()`` until it stops raising ``pending``: first after the shortest time this step took
        before, then every ``poll_interval_s`` growing by ``growth`` up to ``cap``; ``late`` once the next
        try would pass ``deadline`` (monotonic)."""
        delay = self.settings.poll_interval_s
        started, pacer = time.monotonic(), self.pace[step]
        await asyncio.sleep(pacer.first_wait(deadline))
        while True:
            try:
                result = await attempt()
            except pending:
                if time.monotonic() + delay > deadline:
                    raise late from None
                await asyncio.sleep(delay)
                delay = min(delay * growth, cap)
            else:
                pacer.record(time.monotonic() - started)
                return result
