"""`archiver status`'s Core queries (archiver.db.summary), on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlmodel import SQLModel

from archiver.db import repo
from archiver.db.engine import open_database, session_scope
from archiver.db.models import Clip, ClipSource, ClipState, ObjectKind
from archiver.db.summary import ACCOUNT, CLIP, CURSOR, SOURCES, STATES, STORED_OBJECT, account_summaries


def test_the_columns_it_reads_are_the_models_columns() -> None:
    for light in (ACCOUNT, CLIP, CURSOR, STORED_OBJECT):
        model = SQLModel.metadata.tables[light.name]
        assert {c.name for c in light.columns} <= {c.name for c in model.columns}


def test_its_states_and_sources_are_the_models_enums() -> None:
    assert tuple(s.value for s in ClipState) == STATES
    assert tuple(s.value for s in ClipSource) == SOURCES


def test_summaries_count_by_source_and_state_and_list_the_newest_failures(database_url: str) -> None:
    engine = open_database(database_url)
    first = repo.get_or_create_account(engine, "default", "a@example.com", "oauth")
    other = repo.get_or_create_account(engine, "other", "b@example.com", "oauth")
    assert first.id is not None and other.id is not None
    now = datetime(2026, 5, 1, 12, tzinfo=UTC)

    def clip(account: int, n: int, source: ClipSource, state: ClipState, error: str | None = None) -> Clip:
        return Clip(
            account_id=account,
            source=source,
            identity=f"{source.value}:{account}:{n}",
            blink_id=str(n),
            created_at=now,
            state=state,
            attempts=1 if error else 0,
            last_error=error,
        )

    with session_scope(engine) as s:
        rows = [
            clip(first.id, 1, ClipSource.cloud, ClipState.stored),
            clip(first.id, 2, ClipSource.cloud, ClipState.stored),
            clip(first.id, 3, ClipSource.local, ClipState.failed, "one"),
            clip(first.id, 4, ClipSource.cloud, ClipState.failed, "two"),
            clip(other.id, 5, ClipSource.cloud, ClipState.stored),
        ]
        s.add_all(rows)
        s.flush()
        for c, size in ((rows[0], 100), (rows[1], 20), (rows[4], 7)):
            assert c.id is not None
            repo.record_object(s, c.id, "disk", ObjectKind.clip, f"k{c.id}", size, "0" * 64)
        repo.set_cursor(s, first.id, now)

    a, b = account_summaries(engine)
    assert (a.name, a.logged_in, b.name) == ("default", False, "other")
    assert a.counts == {("cloud", "stored"): 2, ("local", "failed"): 1, ("cloud", "failed"): 1}
    assert a.cursor == now and b.cursor is None
    assert (a.archive_bytes, b.archive_bytes) == (120, 7)
    assert [f.last_error for f in a.failed] == ["two", "one"] and b.failed == []
    engine.dispose()
