"""The bridge between a sync and Home Assistant: discovery, states, clip events, "sync now".

Hooks into the pipeline only through its observer (``Reporter``): ``clip_done`` queues the clip id, and
a background task reads the clip's stored objects back from the database, publishes the camera's
thumbnail (when it is the camera's newest clip) and states, then the events (the account's clip message
and the camera's ``event`` entity). Account states follow each sync. Nothing here can slow down or fail a
sync: MQTT work is queued, and errors are logged.

Discovery stays tidy the way zigbee2mqtt keeps it: the bridge reads back the retained discovery configs
on the broker (its own, from earlier runs), and once it has announced everything an account has now it
clears the rest with empty retained configs (a camera removed from the account, an account removed from
the settings, the button a worker had announced before a CronJob took over). Home Assistant's birth
message (``homeassistant/status`` = ``online``) makes it send every config and state again. ``archiver
run`` (the one listening to "sync now") keeps its configs: another process that overwrites them (a
manual ``archiver sync``) gets them sent back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import suppress
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine

from archiver.config import AccountSettings, Settings, parse_duration
from archiver.db import repo
from archiver.db.engine import session_scope
from archiver.db.lease import account_lease_name
from archiver.db.models import Clip, ClipState, Lease
from archiver.db.models import utcnow as db_now
from archiver.destinations import build_destinations
from archiver.destinations.base import Destination
from archiver.homeassistant import discovery as d
from archiver.homeassistant.link import MqttLink
from archiver.homeassistant.state import (
    AccountState,
    CameraClipEvent,
    CameraState,
    ClipEvent,
    SyncOutcome,
    account_row,
    account_state,
    camera_state,
    camera_state_after,
    cameras_of,
    clip_event,
    login_needed_reason,
    read_thumbnail,
    with_tags,
)
from archiver.logs import REDACTOR
from archiver.pipeline.report import AccountsFailed, ForwardingReporter, Reporter, SyncReport
from archiver.util import as_utc, one_line

log = logging.getLogger("archiver.mqtt")

SYNC_NOW_DEBOUNCE_S = 2.0  # presses within this window start one sync
LEASE_POLL_S = 2.0
LEASE_WAIT_MAX_S = 1800.0  # a "sync now" waits this long at most for another run of the account to end
MIN_EXPIRE_AFTER_S = 3600  # one-shot mode: states expire after 3 sync intervals, at least an hour
# a one-shot process that is about to exit waits for a broker still connecting: never past this long after
# its start, and at most this share of its own run time (an unreachable broker costs the sync nothing)
CONNECT_GRACE_S = 1.0
CONNECT_GRACE_SHARE = 0.1


def one_shot_expiry(settings: Settings) -> int:
    """``expire_after`` of the states a one-shot sync (a CronJob) publishes: when no run has updated them
    for three ``[schedule] interval``s (an hour at least), Home Assistant shows them unavailable."""
    interval = parse_duration(settings.schedule.interval).total_seconds()
    return max(MIN_EXPIRE_AFTER_S, int(3 * interval))


class ClipObserver(ForwardingReporter):
    """Forwards every hook to the reporter it wraps (the CLI's progress bar, or log lines) and tells the
    bridge about each stored clip."""

    def __init__(
        self,
        inner: Reporter,
        on_stored: Callable[[int], None],
        on_analysis: Callable[[int | None], None] | None = None,
    ) -> None:
        super().__init__(inner)
        self.on_stored = on_stored
        self.on_analysis = on_analysis  # None: the analysis runs beside the sync; an id: that clip is done

    def clip_done(self, clip: Clip, ok: bool, message: str = "") -> None:
        super().clip_done(clip, ok, message)
        if ok and clip.id is not None:
            self.on_stored(clip.id)

    def analysis_started(self) -> None:
        super().analysis_started()
        if self.on_analysis is not None:
            self.on_analysis(None)

    def clip_analysed(self, clip_id: int) -> None:
        super().clip_analysed(clip_id)
        if self.on_analysis is not None:
            self.on_analysis(clip_id)


class HomeAssistant:
    """Owns the MQTT link for one process (``archiver run`` or a one-shot ``archiver sync``)."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        *,
        sync_now: Callable[[str], Awaitable[None]] | None = None,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.topics = d.Topics.from_settings(settings.mqtt)
        self.accounts: dict[str, AccountSettings] = {a.name: a for a in settings.account_list()}
        self.sync_now_run = sync_now
        listening = sync_now is not None
        self.mode = d.Mode(
            listening=listening,
            expire_after=None if listening else one_shot_expiry(settings),
            links=d.Links(public_url=settings.server.public_url),
            last_person=d.tags_person(settings),
            silence=settings.silence.enabled,
            sync_module_alerts=settings.silence.enabled and settings.silence.sync_modules,
        )
        subscriptions = [self.topics.sync_now(a) for a in self.accounts] if listening else []
        subscriptions += [self.topics.ha_status, self.topics.own_configs]
        self.link = MqttLink(
            settings.mqtt,
            self.topics.availability,
            on_message=self._on_message,
            subscriptions=subscriptions,
        )
        self.outcomes: dict[str, SyncOutcome] = {}
        self._announced: dict[str, dict[int, d.CameraInfo]] = {}
        self._clips: asyncio.Queue[tuple[str, int, float]] = asyncio.Queue()  # (account, clip, stored at)
        self._analysis_wait = parse_duration(settings.mqtt.analysis_wait).total_seconds()
        self._analysing = False  # this run's stored clips are analysed: their events wait for it (bounded)
        self._analysed: dict[int, asyncio.Event] = {}  # clips whose event is still to go out
        self._tasks: set[asyncio.Task[Any]] = set()
        self._pressed: set[str] = set()
        self._destinations: list[Destination] | None = None
        self._current_account: str | None = None
        self._state_lock = asyncio.Lock()  # reads and publications of states happen in order
        self._thumb_clip: dict[tuple[str, int], int] = {}  # (account, camera) -> clip whose thumbnail is out
        self._camera_states: dict[tuple[str, int], CameraState] = {}  # the last ones published
        self._configs: dict[str, set[str]] = {}  # account -> discovery config topics announced now
        self._complete: set[str] = set()  # accounts whose every entity has been announced
        self._on_broker: set[str] = set()  # our retained configs the broker holds (read back)
        self._started = time.monotonic()
        self._grace_spent = False

    # -- lifecycle ----------------------------------------------------------------------------------
    async def start(self) -> None:
        """Connect in the background and (``archiver run``) announce every account; returns at once
        (never waits on the broker)."""
        log.info(
            "mqtt: Home Assistant discovery under %s/, states and clip events under %s/ (%s)",
            self.topics.discovery_prefix,
            self.topics.base,
            self.link,
        )
        self._started = time.monotonic()
        self.link.start()
        self._spawn(self._process_clips(), "mqtt-clips")
        if self.mode.listening:  # a one-shot sync announces after the sync: no reads beside it
            self._spawn(self._after(list(self.accounts)), "mqtt-announce")  # reads S3 thumbnails: not inline

    async def drain(self, timeout: float) -> bool:
        """Wait (bounded) until every clip event was built and handed to the broker."""
        deadline = time.monotonic() + timeout
        try:
            await asyncio.wait_for(self._clips.join(), timeout)
        except TimeoutError:
            return False
        return await self.link.flush(max(0.1, deadline - time.monotonic()))

    async def close(self, *, offline: bool, timeout: float = 5.0, connect_grace: float = 0.0) -> None:
        """Hand over what is queued (bounded), then disconnect. ``connect_grace``: how long after
        ``start`` a process that is about to exit may wait for a connection still being made (see
        ``_connection``)."""
        if connect_grace > 0:
            await self._connection(connect_grace)
        if self.link.connected.is_set():
            await self.drain(timeout)
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.link.close(offline=offline, timeout=timeout)

    async def _connection(self, grace: float) -> bool:
        """Once per process: wait for a connection still being made, never past ``grace`` after
        ``start`` and at most a tenth of the time since (the connect ran beside the sync; a broker that
        already refused costs nothing). True when connected."""
        ran = time.monotonic() - self._started
        left = min(grace - ran, CONNECT_GRACE_SHARE * ran)
        if (
            not self._grace_spent
            and not self.link.connected.is_set()
            and not self.link.attempt_failed.is_set()
        ):
            self._grace_spent = True
            if left > 0:
                connected = asyncio.ensure_future(self.link.connected.wait())
                failed = asyncio.ensure_future(self.link.attempt_failed.wait())
                await asyncio.wait({connected, failed}, timeout=left, return_when=asyncio.FIRST_COMPLETED)
                for t in (connected, failed):
                    t.cancel()
        return self.link.connected.is_set()

    def _spawn(self, coro: Awaitable[Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- the sync hook ------------------------------------------------------------------------------
    def reporter_factory(self, inner: Callable[[str], Reporter] | None = None) -> Callable[[str], Reporter]:
        def make(account: str) -> Reporter:
            self._current_account = account
            base = inner(account) if inner is not None else Reporter()
            return ClipObserver(base, lambda clip_id: self._clip_stored(account, clip_id), self._analysis)

        return make

    def _clip_stored(self, account: str, clip_id: int) -> None:
        self._analysed.setdefault(clip_id, asyncio.Event())
        self._clips.put_nowait((account, clip_id, time.monotonic()))

    def _analysis(self, clip_id: int | None) -> None:
        """The analysis worker's word: it runs beside this sync (None), or the clip's results are in."""
        if clip_id is None:
            self._analysing = True
            return
        done = self._analysed.get(clip_id)
        if done is not None:
            done.set()

    async def _await_analysis(self, clip_id: int, stored_at: float) -> None:
        """Until the clip's analysis finished, at most ``[mqtt] analysis_wait`` after it was stored."""
        done = self._analysed.get(clip_id)
        if not self._analysing or done is None or done.is_set():
            return
        left = stored_at + self._analysis_wait - time.monotonic()
        if left > 0:
            with suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), left)

    async def observe_sync(
        self,
        accounts: Sequence[str],
        run: Callable[[Callable[[str], Reporter]], Awaitable[list[SyncReport]]],
        inner: Callable[[str], Reporter] | None = None,
    ) -> list[SyncReport]:
        """Run ``run(reporter_factory)`` (a ``sync_all``), then publish the states of ``accounts``.
        Its result or exception passes through unchanged."""
        self._current_account = None
        self._analysing = False  # until the analysis worker says it runs beside this sync
        try:
            reports = await run(self.reporter_factory(inner))
        except asyncio.CancelledError:
            raise
        except AccountsFailed as exc:  # several accounts: some synced, some not
            for name, error in exc.failures:
                self.record_failure(name, error)
            for r in exc.reports:
                if not r.skipped_lease:
                    self.record_report(r)
            await self._after(accounts)
            raise
        except Exception as exc:
            failed = accounts[0] if len(accounts) == 1 else self._current_account
            if failed is not None:
                self.record_failure(failed, exc)
            await self._after(accounts)
            raise
        for r in reports:
            if not r.skipped_lease:
                self.record_report(r)
        await self._after(accounts)
        return reports

    async def _after(self, accounts: Sequence[str]) -> None:
        with suppress(TimeoutError):  # the clips' own updates first (bounded): then the states win
            await asyncio.wait_for(self._clips.join(), 30)
        if not self.mode.listening and not await self._connection(CONNECT_GRACE_S):
            # a one-shot sync about to exit with no broker: reading the states would only slow it down
            log.debug("mqtt: %s not reached: states not published this run", self.link)
            return
        try:
            await self.publish_states(accounts)
        except Exception:  # never let the HA side fail a sync
            log.exception("mqtt: publishing states failed")

    def record_report(self, r: SyncReport) -> None:
        problems = [*r.errors, *r.clip_errors]
        acct = self.accounts.get(r.account)
        self.outcomes[r.account] = SyncOutcome(
            finished_at=datetime.now(UTC),
            ok=r.ok,
            message=REDACTOR.scrub(one_line(problems[0], 300)) if problems else "",
            login_needed=None if acct is None else self._login_reason(acct, None),
            listed=r.listed,
            stored=r.stored,
            failed=r.failed,
        )

    def record_failure(self, account: str, error: BaseException) -> None:
        acct = self.accounts.get(account)
        self.outcomes[account] = SyncOutcome(
            finished_at=datetime.now(UTC),
            ok=False,
            message=REDACTOR.scrub(one_line(error, 300)),
            login_needed=None if acct is None else self._login_reason(acct, error),
        )

    def _login_reason(self, account: AccountSettings, error: BaseException | None) -> str | None:
        with session_scope(self.engine) as s:
            return login_needed_reason(account, account_row(s, account.name), error)

    # -- states -------------------------------------------------------------------------------------
    async def publish_states(self, accounts: Sequence[str] | None = None) -> None:
        names = [a for a in (accounts or list(self.accounts)) if a in self.accounts]
        async with self._state_lock:
            snapshot = await asyncio.to_thread(self._read_states, names)
            self._publish_states(snapshot)

    def _publish_states(
        self, snapshot: dict[str, tuple[AccountState, list[tuple[d.CameraInfo, CameraState, bytes | None]]]]
    ) -> None:
        for name, (acct, cameras) in snapshot.items():
            before = set(self._configs.get(name, set()))
            now = self._announce_account(name)
            known = self._announced.setdefault(name, {})
            for cam_id in [c for c in known if c not in {cam.id for cam, _, _ in cameras}]:
                del known[cam_id]  # gone from the account: its configs are cleared below
            for cam, cstate, thumb in cameras:
                now |= self._announce_camera(name, cam)
                self._publish_camera(name, cam, cstate, thumb)
            self.link.retain(self._json(self.topics.account_state(name), acct))
            for topic in before - now:
                self.link.clear(topic)
            self._configs[name] = now
            self._complete.add(name)
        self._sweep()

    def _sweep(self) -> None:
        """Clear our configs on the broker that no announced entity has (once an account is complete;
        a node of an account no longer in the settings as soon as anything is complete)."""
        if not self._complete:
            return
        nodes = {self.topics.node(a): a for a in self.accounts}
        for topic in sorted(self._on_broker):
            account = nodes.get(self.topics.node_of_config(topic) or "")
            if account is not None and (
                account not in self._complete or topic in self._configs.get(account, set())
            ):
                continue
            log.info("mqtt: clearing the stale Home Assistant entity %s", topic)
            self.link.clear(topic)
            self._on_broker.discard(topic)

    def _read_states(
        self, names: Sequence[str]
    ) -> dict[str, tuple[AccountState, list[tuple[d.CameraInfo, CameraState, bytes | None]]]]:
        out: dict[str, tuple[AccountState, list[tuple[d.CameraInfo, CameraState, bytes | None]]]] = {}
        with session_scope(self.engine) as s:
            for name in names:
                acct = account_state(s, self.accounts[name], self.outcomes.get(name))
                cams: list[tuple[d.CameraInfo, CameraState, bytes | None]] = []
                row = account_row(s, name)
                if row is not None and row.id is not None:
                    for cam in cameras_of(s, row.id):
                        cstate, last = camera_state(s, row.id, cam, last_person=self.mode.last_person)
                        self._camera_states[(name, cam.id)] = cstate
                        cams.append((cam, cstate, self._new_thumbnail(s, name, cam.id, last)))
                out[name] = (acct, cams)
        return out

    def _new_thumbnail(self, s: Any, account: str, camera_id: int, clip: Clip | None) -> bytes | None:
        """The thumbnail of the camera's newest clip, unless it is already out (no re-read each sync)."""
        if clip is None or clip.id is None or self._thumb_clip.get((account, camera_id)) == clip.id:
            return None
        if self._destinations is None:
            self._destinations = build_destinations(self.settings)
        data = read_thumbnail(repo.objects_of(s, clip.id), self._destinations)
        if data:
            self._thumb_clip[(account, camera_id)] = clip.id
        return data

    def _announce_account(self, account: str) -> set[str]:
        """Announce the account's device and entities (no database read); returns their config topics."""
        pubs = d.publications(self.topics, account, d.account_entities(self.topics, account, self.mode))
        for pub in pubs:
            self.link.retain(pub)  # sent once: the link skips a retained message it already has
        topics = {p.topic for p in pubs}
        self._configs.setdefault(account, set()).update(topics)
        return topics

    def _announce_camera(self, account: str, cam: d.CameraInfo) -> set[str]:
        """Announce the camera's entities (again only when it changed; the account's device, its
        ``via_device``, first); returns their config topics."""
        self._announce_account(account)
        known = self._announced.setdefault(account, {})
        pubs = d.publications(self.topics, account, d.camera_entities(self.topics, account, cam, self.mode))
        topics = {p.topic for p in pubs}
        self._configs.setdefault(account, set()).update(topics)
        if known.get(cam.id) != cam:
            known[cam.id] = cam
            for pub in pubs:
                self.link.retain(pub)
        return topics

    def _publish_camera(
        self, account: str, cam: d.CameraInfo, state: CameraState, thumb: bytes | None
    ) -> None:
        if thumb:
            self.link.retain(
                d.Publication(topic=self.topics.camera_thumbnail(account, cam.id), payload=thumb)
            )
        self.link.retain(self._json(self.topics.camera_state(account, cam.id), state))

    @staticmethod
    def _json(topic: str, model: AccountState | CameraState | ClipEvent) -> d.Publication:
        return d.Publication(topic=topic, payload=model.model_dump_json().encode())

    # -- clip events --------------------------------------------------------------------------------
    async def _process_clips(self) -> None:
        while True:
            account, clip_id, stored_at = await self._clips.get()
            try:
                await self._await_analysis(clip_id, stored_at)
                async with self._state_lock:
                    built = await asyncio.to_thread(self._read_clip, account, clip_id)
                    if built is not None:
                        event, cam, cstate, thumb = built
                        if cam is not None and cstate is not None:
                            self._announce_camera(account, cam)
                            self._publish_camera(account, cam, cstate, thumb)
                        self.link.send(self._json(self.topics.clip_event(account), event))
                        if cam is not None:  # the camera's event entity: the same, plus the clip's page
                            fired = CameraClipEvent(**event.model_dump(), url=self.mode.links.clip(event.key))
                            self.link.send(self._json(self.topics.camera_event(account, cam.id), fired))
            except Exception:  # one clip's event must never stop the others (nor the sync)
                log.exception("mqtt: building the event of clip id=%s failed", clip_id)
            finally:
                self._analysed.pop(clip_id, None)
                self._clips.task_done()

    def _read_clip(
        self, account: str, clip_id: int
    ) -> tuple[ClipEvent, d.CameraInfo | None, CameraState | None, bytes | None] | None:
        with session_scope(self.engine) as s:
            clip = s.get(Clip, clip_id)
            if clip is None or clip.state != ClipState.stored:
                return None
            if self._destinations is None:
                self._destinations = build_destinations(self.settings)
            cam: d.CameraInfo | None = None
            cstate: CameraState | None = None
            thumb: bytes | None = None
            if clip.camera_blink_id is not None:
                cid = clip.camera_blink_id
                cam = self._announced.get(account, {}).get(cid) or d.CameraInfo(
                    id=cid,
                    name=clip.camera_name or f"camera {cid}",
                    network=clip.network_name,
                    account_id=clip.account_id,
                )
                before = self._camera_states.get((account, cid))
                if before is None:  # a camera not seen yet: count once
                    cstate, last = camera_state(s, clip.account_id, cam, last_person=self.mode.last_person)
                    newest = last is not None and last.id == clip.id
                else:
                    cstate, newest = camera_state_after(cam, before, clip)
                self._camera_states[(account, cid)] = cstate
                if newest:  # the camera's newest clip: its thumbnail becomes the image
                    thumb = self._new_thumbnail(s, account, cid, clip)
            image = d.image_entity_id(self.topics, account, cam) if cam is not None else None
            event = clip_event(s, account, clip, self._destinations, image)
            if cam is not None and cstate is not None and self.mode.last_person:
                cstate = with_tags(cstate, clip, event)
                self._camera_states[(account, cam.id)] = cstate
            return event, cam, cstate, thumb

    # -- "sync now" ---------------------------------------------------------------------------------
    def _on_message(self, topic: str, payload: bytes, retained: bool) -> None:
        if topic == self.topics.ha_status:
            if payload.decode(errors="replace").strip() == d.ONLINE and not retained:
                log.info("mqtt: Home Assistant is online: announcing every entity again")
                self.link.republish()
            return
        if self.topics.node_of_config(topic) is not None:
            self._config_seen(topic, payload)
            return
        account = self.topics.account_from_command(topic, list(self.accounts))
        if account is None or self.sync_now_run is None:
            return
        if retained:  # a press someone left retained on the broker is not a press now
            log.info("mqtt: ignored a retained message on %s", topic)
            return
        if payload.decode(errors="replace").strip() != d.PRESS:
            log.info("mqtt: ignored %r on %s (expected %s)", payload[:20], topic, d.PRESS)
            return
        if account in self._pressed:
            log.info("sync now account=%s: already queued (debounced)", account)
            return
        self._pressed.add(account)
        log.info("sync now account=%s: pressed in Home Assistant", account)
        self._spawn(self._sync_now(account), f"sync-now-{account}")

    def _config_seen(self, topic: str, payload: bytes) -> None:
        """A discovery config under one of our nodes, retained from an earlier run or just published."""
        if d.is_our_config(self.topics, topic, payload):
            self._on_broker.add(topic)
        else:  # cleared (an empty config), or not ours
            self._on_broker.discard(topic)
        mine = self.link.retained(topic)
        if self.mode.listening and mine is not None and mine.payload != payload:
            self.link.resend(topic)  # e.g. a manual `archiver sync` announced its one-shot version
            return
        self._sweep()

    async def _sync_now(self, account: str) -> None:
        assert self.sync_now_run is not None
        try:
            await asyncio.sleep(SYNC_NOW_DEBOUNCE_S)
            waited = 0.0
            while await asyncio.to_thread(self._lease_held, account) and waited < LEASE_WAIT_MAX_S:
                if waited == 0:
                    log.info("sync now account=%s: waiting for the sync in progress to end", account)
                await asyncio.sleep(LEASE_POLL_S)
                waited += LEASE_POLL_S
        finally:
            self._pressed.discard(account)
        await self.sync_now_run(account)

    def _lease_held(self, account: str) -> bool:
        with session_scope(self.engine) as s:
            row = s.execute(select(Lease).where(Lease.name == account_lease_name(account))).scalars().first()
            if row is None:
                return False
            return as_utc(row.expires_at) > db_now()
