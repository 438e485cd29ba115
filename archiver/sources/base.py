"""The source interface: where clips come from. A source records clip rows (discover) and delivers one
clip's bytes into a work folder (fetch); the sync job does everything else (filters, duplicates, processing
steps, store) the same way for every source.

Adding a source: one class implementing ``Source`` (``SourceBase`` gives the defaults; set ``needs_blink``
when it talks to Blink: only then does a run sign in) plus one line in ``archiver.sources.SOURCES``. Its
clips are filtered, deduplicated, processed, stored, verified and pruned like the others'; `archiver
status` and the web UI show it by its name (``archiver.db.summary.source_label``), Home Assistant's clip
event carries the name. Not yet: the web UI's source filter offers only cloud and USB
(``web.queries.ClipFilter.source``).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import ClassVar, Literal, Protocol

from pydantic import BaseModel, Field
from sqlalchemy.engine import Engine

from archiver.blink.api import BlinkAPI
from archiver.config import AccountSettings, Settings
from archiver.db.models import Clip
from archiver.errors import ArchiverError
from archiver.pipeline.select import Selection
from archiver.pipeline.task import Staged

Emit = Callable[[Sequence[Clip]], None]  # committed rows to the job's queue, on the event loop
Transfer = Callable[[], AbstractAsyncContextManager[None]]  # the shared slot held while bytes move
Outcome = Literal["stored", "failed", "duplicate", "waiting", "filtered", "deferred"]


class SourceUnavailable(ArchiverError):
    """The source (one lane, e.g. a Sync Module) cannot deliver any more this run: the clip and the rest
    of its lane stay pending for the next run; the source reports why."""


@dataclass
class SourceContext:
    """Everything a source may use, explicitly."""

    account_id: int
    account: AccountSettings
    settings: Settings
    engine: Engine
    api: BlinkAPI
    selection: Selection
    rescan_from: datetime | None = None  # `archiver sync --since`


class Tally(BaseModel):
    """Clips settled in one run, by the job's verdict."""

    stored: int = 0
    failed: int = 0
    duplicates: int = 0  # stored from another source (or waiting for the preferred one)
    filtered: int = 0
    pending: int = 0  # deferred to the next run (the source became unavailable)

    def count(self, outcome: Outcome) -> None:
        if outcome == "stored":
            self.stored += 1
        elif outcome == "failed":
            self.failed += 1
        elif outcome == "filtered":
            self.filtered += 1
        elif outcome in ("duplicate", "waiting"):
            self.duplicates += 1
        else:
            self.pending += 1


class CursorRepair(BaseModel):
    """The listing cursor was found in the future (Blink's or a proxy's clock was wrong, or an older
    version left it there) and moved back: clips of that window would otherwise be skipped silently, so
    a person hears of it (notification, metric)."""

    found: datetime  # the cursor as it was found
    listing_from: datetime  # where the listing starts again

    def note(self) -> str:
        return (
            f"the listing cursor was in the future ({self.found.isoformat()}); "
            f"repaired: listing again from {self.listing_from.isoformat()}"
        )


class SourceReport(Tally):
    """What one source did in one run (a source may extend it, e.g. per Sync Module)."""

    name: str
    listed: int = 0
    new: int = 0
    pages: int = 0
    errors: list[str] = Field(default_factory=list)  # source-level problems (make the sync exit 1)
    notes: list[str] = Field(default_factory=list)  # worth saying, not a failure (a repaired cursor…)
    cursor_repair: CursorRepair | None = None  # this run moved the source's cursor back from the future


class Source(Protocol):
    name: ClassVar[str]  # stored in Clip.source; also the registry key
    needs_blink: ClassVar[bool]  # talks to Blink: the job signs in before a run (else no login at all)

    def pending(self) -> Sequence[Clip]:
        """Rows left pending by earlier runs that this source can fetch now."""
        ...

    async def discover(self, emit: Emit) -> None:
        """Record new clips as committed rows and ``emit`` the ones to fetch, batch by batch."""
        ...

    def lane(self, clip: Clip) -> Hashable | None:
        """Clips of one lane are fetched one at a time, in order (a Sync Module); None: no limit."""
        ...

    async def fetch(self, clip: Clip, work: Path, transfer: Transfer) -> Staged:
        """Deliver the clip (and Blink's thumbnail if any) into ``work``; hold ``transfer()`` while bytes
        move. Raise for a clip failure, ``SourceUnavailable`` when the lane is gone for this run."""
        ...

    def settled(self, clip: Clip, outcome: Outcome) -> None:
        """The job's verdict on one clip (for the source's report)."""
        ...

    def report(self) -> SourceReport: ...


SourceFactory = Callable[[SourceContext], "Source | None"]  # None: disabled by the configuration


class SourceBase:
    """Defaults for a source: no leftovers, no lanes, counts in a plain ``SourceReport``."""

    name: ClassVar[str] = ""
    needs_blink: ClassVar[bool] = False  # a source that talks to Blink says so

    def __init__(self, ctx: SourceContext) -> None:
        self.ctx = ctx
        self._report = SourceReport(name=self.name)

    def pending(self) -> Sequence[Clip]:
        return []

    def lane(self, clip: Clip) -> Hashable | None:
        return None

    def settled(self, clip: Clip, outcome: Outcome) -> None:
        self._report.count(outcome)

    def report(self) -> SourceReport:
        return self._report
