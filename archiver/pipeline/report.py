"""What a sync reports: the typed run summary and the progress observer."""

from __future__ import annotations

import logging

from pydantic import BaseModel, Field, SerializeAsAny

from archiver.db.models import Clip
from archiver.errors import ArchiverError
from archiver.sources.base import CursorRepair, SourceReport
from archiver.util import one_line

log = logging.getLogger("archiver.sync")


class SyncReport(BaseModel):
    account: str
    skipped_lease: bool = False  # another run holds this account's lease
    cloud_deleted: int = 0
    pruned: int = 0
    listed: int = 0  # over every source
    new: int = 0
    pages: int = 0
    stored: int = 0
    failed: int = 0
    duplicates: int = 0
    bytes: int = 0
    requests: int = 0
    throttled: int = 0
    duration_s: float = 0.0
    errors: list[str] = Field(default_factory=list)  # run-level problems (auth, listing, a source)
    clip_errors: list[str] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)  # worth saying, not a failure (a repaired cursor…)
    sources: dict[str, SerializeAsAny[SourceReport]] = Field(default_factory=dict)

    @property
    def cursor_repair(self) -> CursorRepair | None:
        """A listing cursor this run found in the future and moved back (the typed fact behind that note)."""
        return next((p.cursor_repair for p in self.sources.values() if p.cursor_repair is not None), None)

    @property
    def ok(self) -> bool:
        return not self.errors and self.failed == 0

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1


class AccountsFailed(ArchiverError):
    """A sync of several accounts where some could not be synced (a login needed, a wrong password…):
    the others were, and their reports are here. One line naming each failed account; the exit code is
    the worst of theirs (2 for a login), whatever the others did."""

    def __init__(self, failures: list[tuple[str, ArchiverError]], reports: list[SyncReport]) -> None:
        super().__init__("; ".join(f"account {name}: {one_line(exc)}" for name, exc in failures))
        self.failures = failures
        self.reports = reports
        self.exit_code = max(exc.exit_code for _, exc in failures)


class Reporter:
    """Progress observer; the CLI subclasses it with a rich progress bar. Default: log lines."""

    def planned(self, total: int) -> None:
        log.info("to fetch: %d clips", total)

    def clip_done(self, clip: Clip, ok: bool, message: str = "") -> None:
        if ok:
            log.info("stored clip=%s camera=%s", clip.identity, clip.camera_name)
        else:
            log.warning("failed clip=%s: %s", clip.identity, message)

    def clip_skipped(self, clip: Clip, reason: str) -> None:
        """Planned but not fetched (a duplicate, or waiting for its twin): the clip is settled."""
        log.info("skipped clip=%s: %s", clip.identity, reason)

    def bytes_fetched(self, n: int) -> None:
        pass

    def analysis_started(self) -> None:
        """Stored clips of this sync are analysed beside it (archiver.analysis): ``clip_analysed`` follows
        for each one the analysis worker took."""

    def clip_analysed(self, clip_id: int) -> None:
        """The clip's analysis finished (its results, or its failure, are in the database)."""

    def close(self) -> None:
        pass


class ForwardingReporter(Reporter):
    """Passes every hook on to ``inner`` (the CLI's progress bar, or log lines); a subclass overrides the
    hooks it also acts on and calls ``super()`` for the forwarding."""

    def __init__(self, inner: Reporter) -> None:
        self.inner = inner

    def planned(self, total: int) -> None:
        self.inner.planned(total)

    def clip_done(self, clip: Clip, ok: bool, message: str = "") -> None:
        self.inner.clip_done(clip, ok, message)

    def clip_skipped(self, clip: Clip, reason: str) -> None:
        self.inner.clip_skipped(clip, reason)

    def bytes_fetched(self, n: int) -> None:
        self.inner.bytes_fetched(n)

    def analysis_started(self) -> None:
        self.inner.analysis_started()

    def clip_analysed(self, clip_id: int) -> None:
        self.inner.clip_analysed(clip_id)

    def close(self) -> None:
        self.inner.close()
