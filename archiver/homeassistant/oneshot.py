"""The one-shot ``archiver sync`` with Home Assistant: the same clip events and states as the worker."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.engine import Engine

from archiver.config import Settings
from archiver.pipeline.report import Reporter, SyncReport
from archiver.pipeline.runner import sync_and_prune


async def sync_and_prune_with_mqtt(
    settings: Settings,
    engine: Engine,
    *,
    accounts: list[str] | None = None,
    reporter_factory: Callable[[str], Reporter] | None = None,
    sync: Callable[..., Awaitable[list[SyncReport]]] = sync_and_prune,  # e.g. with the analysis beside it
    after: Callable[[], bool] | None = None,
    **kwargs: Any,
) -> list[SyncReport]:
    """``sync_and_prune`` (what ``archiver sync`` runs), publishing clip events and states when ``[mqtt]``
    is set; plain ``sync_and_prune`` otherwise. The broker connection is made beside the sync; at the
    end a broker still connecting gets what is left of a short deadline, one that refused gets none: an
    unreachable broker costs the sync nothing. Availability is left ``online`` at a clean exit, so a
    CronJob's entities stay usable (its states expire: ``expire_after``); a run that dies leaves its
    last will (``offline``). ``after`` (the silence watch) runs in a thread once the sync returned, before
    the broker is let go; True when it changed what Home Assistant shows: the states go out again."""
    if not settings.mqtt.enabled:
        reports = await sync(settings, engine, accounts=accounts, reporter_factory=reporter_factory, **kwargs)
        if after is not None:
            await asyncio.to_thread(after)
        return reports
    from archiver.homeassistant.bridge import CONNECT_GRACE_S, HomeAssistant  # loads MQTT only when used

    ha = HomeAssistant(settings, engine)
    names = [a.name for a in settings.account_list() if not accounts or a.name in accounts]
    await ha.start()
    try:
        reports = await ha.observe_sync(
            names,
            lambda factory: sync(settings, engine, accounts=accounts, reporter_factory=factory, **kwargs),
            reporter_factory,
        )
        if after is not None and await asyncio.to_thread(after):
            await ha.publish_states(names)
        return reports
    finally:
        await ha.close(offline=False, timeout=10.0, connect_grace=CONNECT_GRACE_S)


async def publish_states_with_mqtt(settings: Settings, engine: Engine) -> None:
    """After a change made outside a sync (``archiver prune`` deleted clips): every account's states once,
    so Home Assistant shows the new archive size. Nothing when ``[mqtt]`` is not set; a broker that is
    down costs at most the connect grace, never an error."""
    if not settings.mqtt.enabled:
        return
    from archiver.homeassistant.bridge import CONNECT_GRACE_S, HomeAssistant

    ha = HomeAssistant(settings, engine)
    await ha.start()
    try:
        await ha.publish_states()
    finally:
        await ha.close(offline=False, timeout=10.0, connect_grace=CONNECT_GRACE_S)
