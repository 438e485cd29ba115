"""Web UI response times on a large archive: the camera page (first page, a deep keyset page, filtered),
the timeline, and the cameras page, with 100,000 stored clips of one camera in SQLite.

    python bench/bench_web.py [--clips 100000] [--runs 20] [--database-url URL]

The rows are inserted directly (the pages only read the database); requests go through the real ASGI
app with httpx's ASGI transport, so the figure is the server's own time: query, templating and all.
Target (issue #13): the camera page under 200 ms at 100,000 clips.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from sqlalchemy import insert, text

from archiver.config import load_settings
from archiver.db.engine import open_database, session_scope
from archiver.db.models import Account, Clip, ClipSource, ClipState, ObjectKind, StoredObject
from archiver.web.app import create_app


def fill(url: str, clips: int) -> None:
    engine = open_database(url)
    with session_scope(engine) as s:
        acct = Account(name="default", hardware_id="bench")
        s.add(acct)
        s.flush()
        account_id = acct.id
    assert account_id is not None
    start = datetime(2024, 1, 1, tzinfo=UTC)
    batch = 5000
    with engine.begin() as conn:
        for base in range(0, clips, batch):
            rows = []
            for i in range(base, min(base + batch, clips)):
                at = start + timedelta(minutes=7 * i)
                rows.append(
                    {
                        "account_id": account_id,
                        "source": ClipSource.local if i % 5 == 0 else ClipSource.cloud,
                        "identity": f"cloud:{i}",
                        "blink_id": str(i),
                        "network_blink_id": 1,
                        "network_name": "Home",
                        "camera_blink_id": 2 if i % 10 else 3,
                        "camera_name": "Front Door" if i % 10 else "Back Yard",
                        "time_zone": "America/Chicago",
                        "created_at": at,
                        "state": ClipState.stored,
                        "attempts": 1,
                        "size": 2_000_000,
                        "sha256": f"{i:064x}",
                        "duration": 30.0,
                        "discovered_at": at,
                        "stored_at": at,
                        "partial": False,
                        "deleted_upstream": False,
                    }
                )
            conn.execute(insert(Clip), rows)
        first_id = conn.execute(Clip.__table__.select().limit(1)).first()[0]  # type: ignore[attr-defined]
        for base in range(0, clips, batch):
            objs = []
            for i in range(base, min(base + batch, clips)):
                for kind, ext in ((ObjectKind.clip, "mp4"), (ObjectKind.thumbnail, "jpg")):
                    objs.append(
                        {
                            "clip_id": first_id + i,
                            "destination": "disk",
                            "kind": kind,
                            "key": f"Home/Front Door/{i}.{ext}",
                            "size": 1000,
                            "sha256": f"{i:064x}",
                            "stored_at": start,
                        }
                    )
            conn.execute(insert(StoredObject), objs)
    with engine.connect() as conn:  # fresh statistics, as autovacuum (PostgreSQL) would have them
        conn.execute(text("ANALYZE"))
        conn.commit()
    engine.dispose()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        t0 = time.perf_counter()
        fill(url, args.clips)
        print(f"filled {args.clips} clips in {time.perf_counter() - t0:.1f} s ({url.split(':')[0]})")
        settings = load_settings(None, data_dir=Path(tmp), database={"url": url})
        engine = open_database(url)
        app = create_app(settings, engine, destinations=[])

        async def run() -> None:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://bench") as c:
                first = await c.get("/camera/1/2")
                assert first.status_code == 200 and "/clip/" in first.text, first.status_code
                cursor = re.search(r"before=([\d-]+)", first.text)
                assert cursor
                first_us = int(datetime(2024, 1, 1, tzinfo=UTC).timestamp()) * 1_000_000
                middle_us = (first_us + int(cursor[1].split("-")[0])) // 2
                deep_cursor = f"{middle_us}-{2**31 - 1}"  # a page in the middle of the archive
                cases = {
                    "camera page, newest": "/camera/1/2",
                    "camera page, next": f"/camera/1/2?before={cursor[1]}",
                    "camera page, deep": f"/camera/1/2?before={deep_cursor}",
                    "camera page, USB only": "/camera/1/2?source=usb",
                    "camera page, one day": "/camera/1/2?from=2024-06-01&to=2024-06-01",
                    "timeline, one day": "/timeline?day=2024-06-01",
                    "timeline, last night": "/timeline?day=2024-06-01&from=-6&hours=14",
                    "cameras page": "/",
                    "find page, all": "/clips",
                    "status page": "/status",
                }
                print(f"{'page':28} {'median ms':>10} {'p95 ms':>8}")
                for name, path in cases.items():
                    times = []
                    for _ in range(args.runs):
                        t = time.perf_counter()
                        r = await c.get(path)
                        times.append((time.perf_counter() - t) * 1000)
                        assert r.status_code == 200, (path, r.status_code)
                        assert "camera page" not in name or "/clip/" in r.text, f"{name}: no clips listed"
                        assert "timeline" not in name or 'class="mark' in r.text, f"{name}: no marks"
                    times.sort()
                    p95 = times[max(0, int(len(times) * 0.95) - 1)]
                    print(f"{name:28} {statistics.median(times):10.1f} {p95:8.1f}")

        asyncio.run(run())
        engine.dispose()


if __name__ == "__main__":
    main()
