"""Reindex: rebuild the database from the archive itself (restic's ``repair index``).

The sidecars are the truth (``archiver.pipeline.sidecar``); the database is an index of them. ``reindex``
lists one destination, reads every sidecar there, checks that each file it names exists with its size
(``verify``: and its sha256), and records what the database lacks: the account, the clip (state
``stored``, its ``archive_key``) and a ``StoredObject`` row per file, also for every other configured
destination that holds the same object. It merges: a clip the database knows (its identity, or its
archive key) is never added twice; a disagreement is reported as a conflict and left as it is. The cloud
listing cursor of each account is moved forward to the newest clip found (less ``sync.overlap_minutes``).

Everything goes through the Destination interface: ``list``, ``stat``, ``read_all`` and ``hash``.

``reindex_before_sync`` is the sync's guard against a silent re-download into an existing archive: when
the database knows no clip of an account yet, the first destination's unknown sidecars are indexed first.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field, ValidationError, computed_field
from sqlalchemy import exists, insert
from sqlalchemy import select as core_select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from archiver.db import repo
from archiver.db.engine import session_scope
from archiver.db.models import (
    Account,
    Clip,
    ClipAnalysis,
    ClipSource,
    ClipState,
    ObjectKind,
    StoredObject,
    utcnow,
)
from archiver.destinations.base import (
    Destination,
    DestinationError,
    ObjectInfo,
    check_key,
    is_temporary_key,
    read_all,
)
from archiver.errors import ConfigError, Unavailable
from archiver.pipeline.sidecar import Sidecar, archive_key_of, is_sidecar_key
from archiver.util import as_utc, one_line

if TYPE_CHECKING:
    from archiver.config import Settings

log = logging.getLogger("archiver.reindex")

BATCH = 200  # sidecars per database transaction
READERS = 8  # sidecars read at once (S3: one GET each)
LIST_FROM = 200  # another destination is listed once when more sidecars than this are checked, else stat
MEDIA_KINDS = (ObjectKind.clip.value, ObjectKind.transcode.value)  # what makes a clip archived

Progress = Callable[[int, int], None]  # (sidecars done, sidecars in all)


class ReindexReport(BaseModel):
    destination: str
    dry_run: bool = False
    found: int = 0  # sidecars read
    added: int = 0  # clips the database did not know
    completed: int = 0  # clips the database had as not yet archived, now stored
    known: int = 0  # clips already recorded as stored under the same key
    objects: int = 0  # object rows added (every destination)
    analyses: int = 0  # clips whose analysis (activity, tags) came back from the sidecar's "analysis"
    elsewhere: dict[str, int] = Field(default_factory=dict)  # of which in another destination
    accounts: list[str] = Field(default_factory=list)  # accounts created
    cursors: dict[str, datetime] = Field(default_factory=dict)  # account -> its cloud cursor
    conflicts: list[str] = Field(default_factory=list)  # the database and the archive disagree
    problems: list[str] = Field(default_factory=list)  # unreadable sidecars, missing or damaged files

    @computed_field  # type: ignore[prop-decorator]
    @property
    def ok(self) -> bool:
        return not (self.conflicts or self.problems)


@dataclass
class _Row:
    destination: str
    kind: str
    key: str
    size: int
    sha256: str


@dataclass
class _Found:
    """One sidecar, judged: the rows to record (when ``archived``) and what is wrong."""

    key: str
    doc: Sidecar
    archive_key: str
    rows: list[_Row] = field(default_factory=list)
    archived: bool = True  # its clip file (or transcode) is there


@dataclass
class _New:
    """A clip this run adds (its row is inserted at the end of the batch, or never in a dry run)."""

    identity: str
    archive_key: str
    state: ClipState = ClipState.stored
    id: int | None = None


class _Holdings:
    """What a destination holds: a listing taken once (many keys to check), else one stat per key."""

    def __init__(self, dest: Destination, listed: Mapping[str, ObjectInfo] | None = None) -> None:
        self.dest = dest
        self.listed = listed
        self.broken: str | None = None  # the destination failed: its objects are not judged

    def get(self, key: str) -> ObjectInfo | None:
        if self.listed is not None:
            return self.listed.get(key)
        return self.dest.stat(key)


def _analysis_of(doc: Sidecar) -> dict[str, Any] | None:
    """The sidecar's ``"analysis"`` block (written once a clip's analysis is done), if any."""
    value = (doc.model_extra or {}).get("analysis")
    return value if isinstance(value, dict) else None


def _listing(dest: Destination) -> dict[str, ObjectInfo]:
    return {o.key: o for o in dest.list("") if not is_temporary_key(o.key)}


def _check(
    holdings: _Holdings, key: str, size: int, sha256: str, verify: bool, problems: list[str]
) -> str | None:
    """None when ``holdings`` has the object intact, else why not ("missing" first)."""
    info = holdings.get(key)
    if info is None:
        return "missing"
    if info.size != size:
        return f"size {info.size}, the sidecar says {size}"
    if info.sha256 is not None and info.sha256 != sha256:
        return f"sha256 {info.sha256[:12]}…, the sidecar says {sha256[:12]}…"
    if verify:
        try:
            actual = holdings.dest.hash(key)
        except DestinationError as exc:
            problems.append(f"{holdings.dest.name}:{key}: cannot be read: {one_line(exc)}")
            return "unreadable"
        if actual != sha256:
            return f"sha256 {actual[:12]}…, the sidecar says {sha256[:12]}…"
    return None


def _judge(
    key: str, data: bytes, doc: Sidecar, main: _Holdings, others: Sequence[_Holdings], verify: bool
) -> tuple[_Found, list[str]]:
    """Which objects of this sidecar each destination holds; what is missing or damaged."""
    problems: list[str] = []
    found = _Found(key, doc, archive_key_of(key))
    media = next((k for k in MEDIA_KINDS if k in doc.files), None)
    if media is None:
        problems.append(f"{main.dest.name}:{key}: the sidecar names no clip file")
        found.archived = False
        return found, problems
    files = [(kind, f.key, f.size, f.sha256) for kind, f in doc.files.items()]
    for _, fkey, _, _ in files:
        try:
            check_key(fkey, main.dest.name)
        except DestinationError as exc:  # a hand-edited sidecar: nothing of it is trusted
            problems.append(f"{main.dest.name}:{key}: {exc}; the clip is not recorded")
            found.archived = False
            return found, problems
    sidecar = (ObjectKind.sidecar.value, key, len(data), hashlib.sha256(data).hexdigest())
    for i, holdings in enumerate([main, *others]):
        if holdings.broken:
            continue
        try:
            for kind, fkey, size, sha in files:
                why = _check(holdings, fkey, size, sha, verify, problems)
                where = f"{holdings.dest.name}:{fkey}"
                if i == 0 and why == "missing" and kind == media:
                    problems.append(f"{where}: missing; the clip is not recorded (sidecar {key})")
                    found.archived = False
                    return found, problems
                if why == "missing":
                    problems.append(f"{where}: missing (sidecar {key})")
                    continue
                if why == "unreadable":  # already said
                    continue
                if why is not None:
                    # recorded as the sidecar describes it: `archiver verify` reports it, --repair fixes it
                    problems.append(f"{where}: damaged: {why}")
                found.rows.append(_Row(holdings.dest.name, kind, fkey, size, sha))
            why = None if i == 0 else _check(holdings, key, sidecar[2], sidecar[3], verify, problems)
            if why is None:
                found.rows.append(_Row(holdings.dest.name, *sidecar))
            else:  # a sidecar that differs from the one read is not this clip's: not recorded
                problems.append(f"{holdings.dest.name}:{key}: {why}")
        except DestinationError as exc:
            if i == 0:
                raise
            holdings.broken = one_line(exc)
            problems.append(
                f"destination {holdings.dest.name!r}: {holdings.broken}; its objects are not recorded"
            )
    return found, problems


def _read(dest: Destination, key: str) -> tuple[str, bytes | None, str | None]:
    try:
        return key, read_all(dest, key), None
    except DestinationError as exc:
        return key, None, f"{dest.name}:{key}: cannot be read: {one_line(exc)}"
    except Exception as exc:  # a backend bug: this sidecar is a problem, never the end of the run
        return key, None, f"{dest.name}:{key}: cannot be read: {type(exc).__name__}: {one_line(exc)}"


_NUMBERED = re.compile(r"^(?P<stem>.*?)(?:-(?P<n>\d+))?\.json$")


def _order(key: str) -> tuple[str, int, str]:
    """Sidecars in key order, a clip's own key before its numbered variants ("x.json" before "x-2.json"),
    so that of two copies of one clip the un-numbered one is recorded."""
    m = _NUMBERED.match(key)
    if m is None:  # pragma: no cover - every sidecar key ends with .json
        return key, 0, key
    return m["stem"], int(m["n"] or 1), key


def _known_sidecars(engine: Engine, destination: str, keys: Sequence[str]) -> set[str]:
    out: set[str] = set()
    objects = StoredObject.__table__
    with engine.connect() as conn:
        for i in range(0, len(keys), 500):
            chunk = keys[i : i + 500]
            q = core_select(objects.c.key).where(
                objects.c.destination == destination,
                objects.c.kind == ObjectKind.sidecar.value,
                objects.c.key.in_(chunk),
            )
            out.update(conn.execute(q).scalars())
    return out


class _Merge:
    """Records judged sidecars in the database, batch by batch (or, dry, only counts what it would)."""

    def __init__(
        self,
        engine: Engine,
        report: ReindexReport,
        usernames: Mapping[str, str | None],
        auth_kind: str,
        dry_run: bool,
    ) -> None:
        self.engine, self.report, self.usernames, self.auth_kind = engine, report, usernames, auth_kind
        self.dry_run = dry_run
        self.account_ids: dict[str, int | None] = {}
        self.newest: dict[str, datetime] = {}  # account -> newest cloud clip found
        self.pretend: dict[tuple[str, str], _New] = {}  # dry run: the clips it would have added

    def account_id(self, name: str) -> int | None:
        if name not in self.account_ids:
            with session_scope(self.engine) as s:
                found = s.exec(select(Account).where(Account.name == name)).first()
            if found is None and not self.dry_run:
                found = repo.get_or_create_account(
                    self.engine, name, self.usernames.get(name), self.auth_kind
                )
                self.report.accounts.append(name)
            elif found is None:
                self.report.accounts.append(name)
            self.account_ids[name] = found.id if found is not None else None
        return self.account_ids[name]

    def batch(self, items: Sequence[_Found]) -> None:
        for attempt in (1, 2):
            try:
                counts = _Counts()
                with session_scope(self.engine) as s:
                    self._merge(s, items, counts)
                    if self.dry_run:
                        s.rollback()
                counts.apply(self.report)
                return
            except IntegrityError:  # another process recorded some of them meanwhile: judge them again
                if attempt == 2:
                    raise

    def _merge(self, s: Session, items: Sequence[_Found], counts: _Counts) -> None:
        by_account: dict[str, list[_Found]] = {}
        for item in items:
            by_account.setdefault(item.doc.account, []).append(item)
        akeys = [i.archive_key for i in items]
        owners: dict[str | None, Clip | _New] = {
            c.archive_key: c for c in s.exec(select(Clip).where(col(Clip.archive_key).in_(akeys)))
        }
        added: list[tuple[dict[str, object], _Found]] = []  # new clips' columns
        rows: list[tuple[int, _Row]] = []  # object rows of clips the database knew
        analysed: list[tuple[int, _Found]] = []  # clips the database knew whose sidecar has an analysis
        for name, found in by_account.items():
            account_id = self.account_id(name)
            known: dict[str, Clip | _New] = {}
            if account_id is not None:
                known.update(repo.clips_by_identity(s, account_id, (f.doc.identity for f in found)))
            existing = self._objects(s, [c.id for c in known.values() if c.id is not None])
            for item in found:
                doc = item.doc
                clip = known.get(doc.identity) or self.pretend.get((name, doc.identity))
                owner = owners.get(item.archive_key)
                if doc.source == ClipSource.cloud.value:
                    at = as_utc(doc.created_at_utc)
                    self.newest[name] = max(self.newest.get(name, at), at)
                if clip is None:
                    if owner is not None:
                        counts.conflicts.append(
                            f"{item.key}: the database gives key {item.archive_key} to {owner.identity}, "
                            f"the sidecar to {doc.identity}; left as it is"
                        )
                        continue
                    marker = _New(doc.identity, item.archive_key)
                    if self.dry_run:
                        self.pretend[(name, doc.identity)] = marker
                    owners[item.archive_key] = known[doc.identity] = marker
                    added.append((self._columns(account_id, item), item))
                    counts.added += 1
                    counts.count_rows(item.rows)
                    continue
                mine = clip.archive_key in (None, item.archive_key) and (owner is None or owner is clip)
                if clip.state == ClipState.stored and mine:
                    counts.known += 1
                elif clip.state in repo.PENDING_STATES and mine and isinstance(clip, Clip):
                    self._complete(s, clip, item)
                    counts.completed += 1
                else:
                    where = f" under {clip.archive_key}" if clip.archive_key else ""
                    counts.conflicts.append(
                        f"{item.key}: {doc.identity} is {ClipState(clip.state).value}{where} in the "
                        "database; left as it is"
                    )
                    continue
                owners[item.archive_key] = clip
                if clip.id is not None and _analysis_of(doc) is not None:
                    analysed.append((clip.id, item))
                if isinstance(clip, Clip) and clip.archive_key is None and not self.dry_run:
                    clip.archive_key = item.archive_key
                    s.add(clip)
                have = existing.get(clip.id or -1, {})
                for row in item.rows:
                    old = have.get((row.destination, row.kind))
                    if old is None:
                        counts.count_rows([row])
                        if clip.id is not None:
                            rows.append((clip.id, row))
                    elif old != row.key:
                        counts.conflicts.append(
                            f"{row.destination}:{row.key}: the database has the {row.kind} of "
                            f"{doc.identity} at {old}; left as it is"
                        )
        if self.dry_run:
            return
        s.flush()  # the changes to known clips (and their archive keys) before the new clips
        if added:
            table = Clip.__table__
            ids = s.execute(
                insert(table).returning(table.c.id, sort_by_parameter_order=True),  # type: ignore[arg-type]
                [columns for columns, _ in added],
            ).scalars()
            for clip_id, (_, item) in zip(ids, added, strict=True):
                rows.extend((clip_id, row) for row in item.rows)
                if _analysis_of(item.doc) is not None:
                    analysed.append((clip_id, item))
        self._insert(s, rows)
        counts.analyses += self._analyses(s, analysed)

    @staticmethod
    def _analyses(s: Session, items: Sequence[tuple[int, _Found]]) -> int:
        """The sidecars' ``"analysis"`` (activity, tags) for the clips the database has none of (the
        archive is the truth; a clip analysed here since is left as it is)."""
        if not items:
            return 0
        from archiver.analysis.store import import_sidecar

        have = set(
            s.exec(
                select(ClipAnalysis.clip_id).where(
                    col(ClipAnalysis.clip_id).in_([i for i, _ in items]),
                    col(ClipAnalysis.analyzed_at).is_not(None),
                )
            )
        )
        done = 0
        for clip_id, item in items:
            if clip_id in have:
                continue
            try:
                done += import_sidecar(s, clip_id, {"analysis": _analysis_of(item.doc)})
            except ValueError as exc:  # a damaged "analysis": the clip is analysed again later
                log.warning("%s: its analysis is unreadable (analysed again later): %s", item.key, exc)
        return done

    @staticmethod
    def _objects(s: Session, clip_ids: Sequence[int]) -> dict[int, dict[tuple[str, str], str]]:
        out: dict[int, dict[tuple[str, str], str]] = {}
        if clip_ids:
            q = select(StoredObject).where(col(StoredObject.clip_id).in_(clip_ids))
            for obj in s.exec(q):
                out.setdefault(obj.clip_id, {})[(obj.destination, str(obj.kind))] = obj.key
        return out

    @staticmethod
    def _facts(doc: Sidecar) -> dict[str, object]:
        media = doc.files.get(ObjectKind.clip.value)
        return {
            "duration": doc.duration_s,
            "width": doc.width,
            "height": doc.height,
            "codec": doc.codec,
            "size": doc.size if doc.size is not None else (media.size if media else None),
            "sha256": doc.sha256 if doc.sha256 is not None else (media.sha256 if media else None),
            "stored_at": doc.stored_at or utcnow(),
            "last_error": doc.notes,
        }

    def _columns(self, account_id: int | None, item: _Found) -> dict[str, object]:
        """A new clip's row (Core: no ORM object per clip)."""
        doc = item.doc
        return {
            "account_id": account_id,
            "source": doc.source,
            "identity": doc.identity,
            "blink_id": doc.id,
            "network_blink_id": doc.network.id,
            "network_name": doc.network.name,
            "camera_blink_id": doc.camera.id,
            "camera_name": doc.camera.name,
            "sync_module_blink_id": doc.sync_module_id,
            "time_zone": doc.time_zone,
            "created_at": as_utc(doc.created_at_utc),
            "size_hint": doc.manifest_size,
            "state": ClipState.stored,
            "archive_key": item.archive_key,
            "discovered_at": utcnow(),
            **self._facts(doc),
        }

    def _complete(self, s: Session, clip: Clip, item: _Found) -> None:
        """A clip the database still had to fetch is in the archive: it is stored."""
        if self.dry_run:
            return
        for name, value in self._facts(item.doc).items():
            setattr(clip, name, value)
        clip.state, clip.next_attempt_at, clip.archive_key = ClipState.stored, None, item.archive_key
        s.add(clip)

    @staticmethod
    def _insert(s: Session, rows: Sequence[tuple[int, _Row]]) -> None:
        if rows:
            now = utcnow()
            s.execute(
                insert(StoredObject.__table__),  # type: ignore[arg-type]
                [
                    {
                        "clip_id": clip_id,
                        "destination": r.destination,
                        "kind": r.kind,
                        "key": r.key,
                        "size": r.size,
                        "sha256": r.sha256,
                        "stored_at": now,
                    }
                    for clip_id, r in rows
                ],
            )

    def set_cursors(self, overlap: timedelta) -> None:
        """Each account's cloud listing starts at its newest archived clip (never moved backwards)."""
        for name, newest in self.newest.items():
            since = newest - overlap
            self.report.cursors[name] = since
            account_id = self.account_ids.get(name)
            if self.dry_run or account_id is None:
                continue
            with session_scope(self.engine) as s:
                repo.set_cursor(s, account_id, since, ClipSource.cloud.value)


@dataclass
class _Counts:
    """One batch's outcome, applied to the report only once the batch is committed."""

    added: int = 0
    completed: int = 0
    known: int = 0
    objects: int = 0
    analyses: int = 0
    elsewhere: dict[str, int] = field(default_factory=dict)
    conflicts: list[str] = field(default_factory=list)

    def count_rows(self, rows: Iterable[_Row]) -> None:
        for r in rows:
            self.objects += 1
            self.elsewhere[r.destination] = self.elsewhere.get(r.destination, 0) + 1

    def apply(self, report: ReindexReport) -> None:
        report.added += self.added
        report.completed += self.completed
        report.known += self.known
        report.objects += self.objects
        report.analyses += self.analyses
        for name, n in self.elsewhere.items():
            if name != report.destination:
                report.elsewhere[name] = report.elsewhere.get(name, 0) + n
        report.conflicts.extend(self.conflicts)


def reindex(
    engine: Engine,
    destination: Destination,
    others: Sequence[Destination] = (),
    *,
    verify: bool = False,
    dry_run: bool = False,
    overlap: timedelta = timedelta(minutes=10),
    usernames: Mapping[str, str | None] | None = None,
    auth_kind: str = "oauth",
    only_unknown: bool = False,
    progress: Progress | None = None,
) -> ReindexReport:
    """Record in the database every clip whose sidecar ``destination`` holds (see the module doc).

    ``others``: the other configured destinations, whose copies are recorded too. ``only_unknown``: skip
    sidecars the database already records for ``destination`` (the sync's guard). Raises
    DestinationError when ``destination`` cannot be listed."""
    report = ReindexReport(destination=destination.name, dry_run=dry_run)
    listed = _listing(destination)
    keys = sorted((k for k in listed if is_sidecar_key(k)), key=_order)
    if only_unknown and keys:
        known = _known_sidecars(engine, destination.name, keys)
        keys = [k for k in keys if k not in known]
    main = _Holdings(destination, listed)
    holdings = []
    for dest in others:
        h = _Holdings(dest)
        if len(keys) > LIST_FROM:
            try:
                h.listed = _listing(dest)
            except DestinationError as exc:
                h.broken = one_line(exc)
                report.problems.append(f"destination {dest.name!r}: {h.broken}; its objects are not recorded")
        holdings.append(h)
    merge = _Merge(engine, report, usernames or {}, auth_kind, dry_run)
    total, done = len(keys), 0
    if progress is not None:
        progress(0, total)
    with ThreadPoolExecutor(max_workers=READERS, thread_name_prefix="reindex") as pool:
        for start in range(0, total, BATCH):
            judged: list[_Found] = []
            for key, data, error in pool.map(lambda k: _read(destination, k), keys[start : start + BATCH]):
                report.found += 1
                if data is None:
                    report.problems.append(error or key)
                    continue
                try:
                    doc = Sidecar.loads(data)
                except ValidationError as exc:
                    first = exc.errors()[0]
                    where = ".".join(str(p) for p in first["loc"])
                    report.found -= 1
                    report.problems.append(
                        f"{destination.name}:{key}: not a sidecar ({where}: {first['msg']})"
                    )
                    continue
                found, problems = _judge(key, data, doc, main, holdings, verify)
                report.problems.extend(problems)
                if found.archived:
                    judged.append(found)
            merge.batch(judged)
            done = min(total, start + BATCH)
            if progress is not None:
                progress(done, total)
    merge.set_cursors(overlap)
    return report


# -- the CLI's and the sync's entry points ----------------------------------------------------------------


def _configured(
    settings: Settings,
    engine: Engine,
    dests: Sequence[Destination],
    *,
    verify: bool = False,
    dry_run: bool = False,
    only_unknown: bool = False,
    progress: Progress | None = None,
) -> ReindexReport:
    """:func:`reindex` of ``dests[0]`` (the others checked for copies) with the configuration's accounts."""
    return reindex(
        engine,
        dests[0],
        dests[1:],
        verify=verify,
        dry_run=dry_run,
        only_unknown=only_unknown,
        progress=progress,
        overlap=timedelta(minutes=settings.sync.overlap_minutes),
        usernames={a.name: a.username for a in settings.account_list()},
        auth_kind=settings.blink.auth,
    )


def run_reindex(
    settings: Settings,
    engine: Engine,
    *,
    destination: str | None = None,
    verify: bool = False,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> ReindexReport:
    """``archiver reindex``: the named destination (default: the first configured one) is read; the others
    are checked for copies. An unknown name is a ConfigError; a destination that cannot be listed is
    Unavailable (or a ConfigError when its configuration is wrong)."""
    from archiver.destinations import build_destinations

    dests = build_destinations(settings)
    names = [d.name for d in dests]
    if destination is not None and destination not in names:
        raise ConfigError(
            f"--destination {destination!r}: no such destination (configured: {', '.join(names)})"
        )
    main = next(d for d in dests if destination is None or d.name == destination)
    try:
        ordered = [main, *(d for d in dests if d is not main)]
        return _configured(settings, engine, ordered, verify=verify, dry_run=dry_run, progress=progress)
    except DestinationError as exc:
        if exc.config:
            raise ConfigError(f"destination {main.name!r}: {exc}") from None
        raise Unavailable(f"destination {main.name!r} cannot be read: {exc}") from None


def accounts_without_clips(engine: Engine, names: Sequence[str]) -> list[str]:
    """The named accounts the database knows no clip of (one query on the clip table's index)."""
    if not names:
        return []
    accounts, clips = Account.__table__, Clip.__table__
    q = core_select(accounts.c.name).where(
        accounts.c.name.in_(list(names)), exists().where(clips.c.account_id == accounts.c.id)
    )
    with engine.connect() as conn:
        with_clips = set(conn.execute(q).scalars())
    return [n for n in names if n not in with_clips]


def reindex_before_sync(
    settings: Settings, engine: Engine, accounts: Sequence[str] | None = None
) -> ReindexReport | None:
    """Never a silent re-download into an existing archive: when the database knows no clip of a synced
    account, the sidecars the first destination holds and the database does not know are indexed first
    (said in one log line). Costs one query when every account has clips."""
    names = [a.name for a in settings.account_list() if not accounts or a.name in accounts]
    empty = accounts_without_clips(engine, names)
    if not empty:
        return None
    from archiver.destinations import build_destinations

    dests = build_destinations(settings)
    try:
        report = _configured(settings, engine, dests, only_unknown=True)
    except DestinationError as exc:
        raise Unavailable(
            f"destination {dests[0].name!r}: cannot look for an archive the database does not know: {exc}; "
            "nothing was downloaded"
        ) from None
    if report.found:
        log.warning(
            "the database knew no clip of %s but destination %r holds %d sidecar(s) it did not know: "
            "reindexed first (%d clips added, %d already known, %d problems; see `archiver reindex`)",
            ", ".join(empty),
            report.destination,
            report.found,
            report.added + report.completed,
            report.known,
            len(report.problems) + len(report.conflicts),
        )
    return report


__all__ = [
    "ReindexReport",
    "accounts_without_clips",
    "reindex",
    "reindex_before_sync",
    "run_reindex",
]
