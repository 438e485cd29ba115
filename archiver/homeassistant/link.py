"""The MQTT connection (aiomqtt), kept out of the archiving path.

Callers never wait on the broker: ``retain`` and ``send`` only queue. A background task connects,
announces ``online`` (retained; the last will says ``offline``), re-sends every retained message (the
broker may have restarted without persistence), subscribes, then drains the queue. A broker that is down
or goes away is retried with exponential backoff (tenacity) and logged once per outage; clip events
wait in a bounded queue meanwhile (QoS 1, removed only once the broker acknowledged them).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import uuid
from collections import deque
from collections.abc import Callable
from contextlib import suppress
from urllib.parse import unquote, urlsplit

import aiomqtt
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    retry_if_not_exception_type,
    wait_exponential,
    wait_random,
)

from archiver.config import MqttSettings
from archiver.homeassistant.discovery import OFFLINE, ONLINE, Publication
from archiver.logs import REDACTOR

log = logging.getLogger("archiver.mqtt")

MAX_QUEUED = 10_000  # non-retained messages kept while the broker is away
PUBLISH_TIMEOUT_S = 10.0
BACKOFF_MAX_S = 60.0


class BrokerAddress:
    """Host, port, TLS and credentials from ``[mqtt]`` (credentials in the URL work too)."""

    def __init__(self, settings: MqttSettings) -> None:
        assert settings.url
        parts = urlsplit(settings.url)
        self.tls = parts.scheme == "mqtts"
        self.host = parts.hostname or "localhost"
        self.port = parts.port or (8883 if self.tls else 1883)
        self.username = settings.username or (unquote(parts.username) if parts.username else None)
        secret = settings.password.get_secret_value() if settings.password else None
        self.password = secret or (unquote(parts.password) if parts.password else None)
        self.ca_file = settings.ca_file
        REDACTOR.add(self.password)

    def __str__(self) -> str:  # never the credentials
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"

    def tls_context(self) -> ssl.SSLContext | None:
        if not self.tls:
            return None
        return ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)


class _SessionEnded(Exception):
    """A connection that had been up went away: start a fresh backoff."""


class MqttLink:
    """One client connection for the process's lifetime; ``start`` / ``close`` around its use."""

    def __init__(
        self,
        settings: MqttSettings,
        availability_topic: str,
        *,
        on_message: Callable[[str, bytes, bool], None] | None = None,
        subscriptions: list[str] | None = None,
        client_name: str = "blink-archiver",
    ) -> None:
        self.address = BrokerAddress(settings)
        self.availability_topic = availability_topic
        self.on_message = on_message
        self.subscriptions = list(subscriptions or [])
        self.client_id = f"{client_name[:14]}-{uuid.uuid4().hex[:8]}"
        self._retained: dict[str, Publication] = {}
        self._queue: deque[Publication] = deque()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self._dropped = 0
        self._outage_logged = False
        self.connected = asyncio.Event()
        self.attempt_failed = asyncio.Event()  # a connection attempt failed (the broker is not there now)
        self.connections = 0  # successful connections so far (tests, logs)

    # -- what callers use -------------------------------------------------------------------------
    def retain(self, pub: Publication) -> None:
        """Keep ``pub`` as the topic's current retained value and send it (now, or on reconnect)."""
        pub = pub.model_copy(update={"retain": True})
        if self._retained.get(pub.topic) == pub:
            return
        self._retained[pub.topic] = pub
        if self.connected.is_set():
            self._enqueue(pub)

    def retained(self, topic: str) -> Publication | None:
        """What this process keeps retained on ``topic`` (None: nothing)."""
        return self._retained.get(topic)

    def resend(self, topic: str) -> None:
        """Send the retained value of ``topic`` again (someone else overwrote it)."""
        pub = self._retained.get(topic)
        if pub is not None and self.connected.is_set():
            self._enqueue(pub)

    def republish(self) -> None:
        """Send every retained message again (Home Assistant restarted: its birth message)."""
        if self.connected.is_set():
            for pub in list(self._retained.values()):
                self._enqueue(pub)

    def clear(self, topic: str) -> None:
        """Delete the broker's retained message on ``topic`` (an empty retained payload): for Home
        Assistant, an empty discovery config removes the entity."""
        self._retained.pop(topic, None)
        if self.connected.is_set():
            self._enqueue(Publication(topic=topic, payload=b"", retain=True))

    def send(self, pub: Publication) -> None:
        """Queue a non-retained message; it waits for the broker (bounded) if the broker is away."""
        if len(self._queue) >= MAX_QUEUED:
            self._queue.popleft()
            self._dropped += 1
            if self._dropped == 1:
                log.warning(
                    "mqtt: %d messages queued while %s is away; dropping the oldest", MAX_QUEUED, self
                )
        self._enqueue(pub)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="mqtt")

    async def flush(self, timeout: float) -> bool:
        """Wait (at most ``timeout``) until everything queued reached the broker."""
        with suppress(TimeoutError):
            await asyncio.wait_for(self._drained(), timeout)
            return True
        return False

    async def close(self, *, offline: bool, timeout: float = 5.0) -> None:
        """Deliver what is queued (bounded by ``timeout``), say ``offline`` when asked, disconnect.

        A clean disconnect does not fire the last will, hence the explicit ``offline`` of a stopping
        worker; a one-shot ``archiver sync`` leaves ``online`` standing (its entities stay usable)."""
        if self._task is None:
            return
        if offline:
            self.retain(Publication(topic=self.availability_topic, payload=OFFLINE.encode()))
        if self.connected.is_set():
            delivered = await self.flush(timeout)
        else:
            delivered = not self._queue
        if not delivered and self._queue:
            log.warning("mqtt: %d message(s) not delivered: %s is unreachable", len(self._queue), self)
        self._task.cancel()
        with suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    def __str__(self) -> str:
        return f"broker {self.address}"

    # -- internals --------------------------------------------------------------------------------
    def _enqueue(self, pub: Publication) -> None:
        self._queue.append(pub)
        self._idle.clear()
        self._wake.set()

    async def _drained(self) -> None:
        while True:
            await self._idle.wait()
            if not self._queue:
                return
            self._idle.clear()

    def _client(self) -> aiomqtt.Client:
        a = self.address
        return aiomqtt.Client(
            a.host,
            a.port,
            username=a.username,
            password=a.password,
            identifier=self.client_id,
            will=aiomqtt.Will(self.availability_topic, OFFLINE, qos=1, retain=True),
            tls_context=a.tls_context(),
            keepalive=30,
            timeout=PUBLISH_TIMEOUT_S,
            clean_session=True,
        )

    async def _run(self) -> None:
        while True:
            retrying = AsyncRetrying(
                # never a cancellation (a BaseException): that is close() stopping the link
                retry=retry_if_exception_type(Exception) & retry_if_not_exception_type(_SessionEnded),
                wait=wait_exponential(multiplier=0.5, max=BACKOFF_MAX_S) + wait_random(0, 0.5),
                before_sleep=self._log_retry,
                reraise=True,
            )
            with suppress(_SessionEnded):
                async for attempt in retrying:
                    with attempt:
                        await self._session()
            await asyncio.sleep(1.0)  # a broker that drops us at once must not make this spin

    def _log_retry(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        self.attempt_failed.set()
        reason = REDACTOR.scrub(str(exc) or type(exc).__name__) if exc else "?"
        if not self._outage_logged:
            self._outage_logged = True
            log.warning(
                "mqtt: cannot reach %s (%s); retrying in the background with backoff, archiving goes on",
                self,
                reason,
            )
        else:
            log.debug("mqtt: %s still unreachable (%s)", self, reason)

    async def _session(self) -> None:
        try:
            async with self._client() as client:
                await client.publish(self.availability_topic, ONLINE, qos=1, retain=True)
                for topic in self.subscriptions:
                    await client.subscribe(topic, qos=1)
                # the broker may have lost retained messages (restart without persistence): send them all
                resend = [p for p in self._retained.values() if p.topic != self.availability_topic]
                self._queue = deque(resend + [p for p in self._queue if not p.retain])
                self.connections += 1
                self.connected.set()
                if self._outage_logged or self.connections > 1:
                    log.info("mqtt: connected to %s again", self)
                else:
                    log.info("mqtt: connected to %s", self)
                self._outage_logged = False
                self._wake.set()
                await self._pump(client)
        except aiomqtt.MqttError as exc:
            if not self.connected.is_set():
                raise  # could not connect: tenacity backs off
            self.connected.clear()
            log.warning(
                "mqtt: lost %s (%s); reconnecting with backoff, archiving goes on",
                self,
                REDACTOR.scrub(str(exc)),
            )
            self._outage_logged = True
            raise _SessionEnded from None
        finally:
            self.connected.clear()

    async def _pump(self, client: aiomqtt.Client) -> None:
        receiver = asyncio.create_task(self._receive(client))
        sender = asyncio.create_task(self._send(client))
        try:
            done, _ = await asyncio.wait({receiver, sender}, return_when=asyncio.FIRST_COMPLETED)
            for t in done:
                t.result()
        finally:
            for t in (receiver, sender):
                t.cancel()
            await asyncio.gather(receiver, sender, return_exceptions=True)

    async def _send(self, client: aiomqtt.Client) -> None:
        while True:
            if not self._queue:
                self._idle.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            pub = self._queue[0]  # removed only once the broker has it (unsent ones wait for reconnect)
            await client.publish(pub.topic, pub.payload, qos=pub.qos, retain=pub.retain)
            if self._queue and self._queue[0] is pub:
                self._queue.popleft()

    async def _receive(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            payload = message.payload if isinstance(message.payload, bytes) else str(message.payload).encode()
            if self.on_message is None:
                continue
            try:
                self.on_message(str(message.topic), payload, bool(message.retain))
            except Exception:  # a handler bug must not drop the connection
                log.exception("mqtt: handling a message on %s failed", message.topic)
