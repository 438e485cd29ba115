"""Scale (6): 100,000 stored clips in a fresh SQLite database (built through the models): no-op sync,
``archiver status`` and a retention pass."""

from __future__ import annotations

import contextlib
import io
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from harness import KIB, Bench, SimProc, archiver_sync, dir_stats, oauth_tokens, yes

from scenarios import startup


def build_db(b: Bench, sim: SimProc, data: Path, n: int, tokens: dict[str, Any]) -> dict[str, Any]:
    """Fresh SQLite database (schema by the archiver's migrations) with ``n`` stored clips, each with its
    clip, thumbnail and sidecar objects. Rows are the archiver's own models; they go in by bulk insert."""
    from sqlalchemy import insert
    from sqlmodel import Session

    from archiver.db.engine import open_database
    from archiver.db.models import (
        Account,
        Camera,
        Clip,
        ClipSource,
        ClipState,
        Cursor,
        Network,
        ObjectKind,
        StoredObject,
    )

    try:
        from archiver.sources.usb_topology import HOMESCREEN_CURSOR
    except ImportError:  # the bench run against an older archiver (before/after tables)
        from archiver.sources.local_storage import HOMESCREEN_CURSOR  # type: ignore[no-redef]

    engine = open_database(f"sqlite:///{data / 'archiver.db'}")
    now = datetime.now(UTC).replace(microsecond=0)
    net_id, cams = sim.info["network_id"], sim.info["camera_ids"]
    cam_names = [f"Camera {i + 1}" for i in range(len(cams))]
    spacing = b.args.scale_days * 86400 / n
    account_id = sim.info["account_id"]
    t0 = time.perf_counter()
    with Session(engine) as s:
        s.add(
            Account(
                id=1,
                name="default",
                username=sim.info["username"],
                auth_kind="oauth",
                hardware_id=tokens["hardware_id"],
                blink_account_id=account_id,
                user_id=2002,
                tier=sim.info["tier"],
                access_token=tokens["access_token"],
                refresh_token=tokens["refresh_token"],
                token_expires_at=now + timedelta(seconds=tokens["expires_in"]),
                created_at=now,
            )
        )
        s.flush()
        s.add(Network(account_id=1, blink_id=net_id, name="Home", time_zone="America/Chicago", seen_at=now))
        for c, name in zip(cams, cam_names, strict=True):
            s.add(
                Camera(account_id=1, blink_id=c, network_id=net_id, name=name, type="catalina", seen_at=now)
            )
        s.add(Cursor(account_id=1, source="cloud", since=now - timedelta(minutes=10), updated_at=now))
        s.add(Cursor(account_id=1, source=HOMESCREEN_CURSOR, since=now, updated_at=now))
        s.commit()
    old: list[tuple[str, ...]] = []
    cutoff = now - timedelta(days=b.args.scale_days * 0.9)
    clips: list[Clip] = []
    objs: list[StoredObject] = []

    def flush() -> None:
        with engine.begin() as conn:
            conn.execute(insert(Clip), [c.model_dump() for c in clips])
            conn.execute(insert(StoredObject), [o.model_dump(exclude={"id"}) for o in objs])
        clips.clear()
        objs.clear()

    for i in range(n):
        cid = i + 1
        media = 1_000_000_000 + i
        created = now - timedelta(seconds=(i + 1) * spacing)
        cam = i % len(cams)
        key = f"Home/{cam_names[cam]}/{created:%Y-%m-%d}/{created:%H-%M-%S}_{media}"
        clips.append(
            Clip(
                id=cid,
                account_id=1,
                source=ClipSource.cloud,
                identity=f"cloud:{media}",
                blink_id=str(media),
                network_blink_id=net_id,
                network_name="Home",
                camera_blink_id=cams[cam],
                camera_name=cam_names[cam],
                time_zone="America/Chicago",
                created_at=created,
                updated_at=created,
                media_url=f"/api/v2/accounts/{account_id}/media/clip/{media}.mp4",
                thumbnail_url=f"/api/v2/accounts/{account_id}/media/thumb/{media}",
                state=ClipState.stored,
                size=512 * KIB,
                sha256="0" * 64,
                duration=1.0,
                width=160,
                height=90,
                codec="h264",
                discovered_at=created,
                stored_at=created,
            )
        )
        for kind, suffix, size in (
            (ObjectKind.clip, ".mp4", 512 * KIB),
            (ObjectKind.thumbnail, ".jpg", 3000),
            (ObjectKind.sidecar, ".json", 900),
        ):
            objs.append(
                StoredObject(
                    clip_id=cid,
                    destination="disk",
                    kind=kind,
                    key=key + suffix,
                    size=size,
                    sha256="0" * 64,
                    stored_at=created,
                )
            )
        if created <= cutoff:
            old.append((key + ".mp4", key + ".jpg", key + ".json"))
        if len(clips) >= 10_000:
            flush()
    if clips:
        flush()
    insert_s = time.perf_counter() - t0
    # the files a real prune will delete (~10 %): tiny placeholders, so unlink + fsync really happen
    archive = data / "archive"
    for keys in old:
        for k in keys:
            p = archive / k
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(b"x")
    engine.dispose()
    return {"insert_s": insert_s, "old": len(old)}


def scale(b: Bench) -> None:
    n = b.args.scale
    print(f"\n[6] scale: {n:,} stored clips", flush=True)
    from archiver.config import RetentionSettings
    from archiver.db.engine import session_scope
    from archiver.destinations import build_destinations
    from archiver.pipeline.runner import open_engine
    from archiver.retention import prune

    with SimProc(cameras=4) as sim:
        tokens = oauth_tokens(sim)
        data = b.tmp / "scale"
        data.mkdir()
        b.scale_dir = data
        info = build_db(b, sim, data, n, tokens)
        print(
            f"  inserted {n:,} clips + {3 * n:,} objects in {info['insert_s']:.1f} s; "
            f"{info['old']:,} clips older than the retention cut-off got files",
            flush=True,
        )
        from archiver.config import load_settings

        settings = load_settings(
            None,
            data_dir=data,
            blink={"server_url": sim.url, "username": sim.info["username"], "password": sim.info["password"]},
        )
        # no-op sync, in-process (engine opened outside the timing) and as a subprocess
        engine = open_engine(settings)
        sim.cmd("reset")
        before = sim.count()
        secs, rep = archiver_sync(settings, engine)
        c = sim.count()
        logins = c["logins"] - before["logins"]
        print(
            f"  no-op sync in-process: {secs:.2f} s, {c['requests']} requests {c['by_kind']}, "
            f"logins {logins}, "
            f"errors {rep.errors}",
            flush=True,
        )
        b.row(
            f"6a no-op sync, {n:,} clips in the DB, in-process",
            f"{secs:.2f} s, {c['requests']} req",
            "-",
            "-",
            "< 2 s, 1 req",
            yes(secs < 2 and c["requests"] == 1),
        )
        st_in = status_in_process(data)
        print(f"  status in-process: {st_in:.2f} s", flush=True)
        b.row(
            f"6b `archiver status`, {n:,} clips, in-process",
            f"{st_in:.2f} s",
            "-",
            "-",
            "< 1 s",
            yes(st_in < 1),
        )
        startup.at_scale(b, sim, data)

        # retention
        policy = RetentionSettings(max_age_days=b.args.scale_days * 0.9)
        dests = {d.name: d for d in build_destinations(settings)}
        t0 = time.perf_counter()
        with session_scope(engine) as s:
            dry = prune(s, dests, policy, datetime.now(UTC), dry_run=True)
        dry_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        with session_scope(engine) as s:
            real = prune(s, dests, policy, datetime.now(UTC))
        real_s = time.perf_counter() - t0
        left, _ = dir_stats(data / "archive", "")
        print(
            f"  prune dry-run: {dry_s:.2f} s ({dry.candidates:,} candidates, forget {dry.clips:,}); real: "
            f"{real_s:.2f} s (pruned {real.pruned:,}, errors {len(real.errors)}, files left {left})",
            flush=True,
        )
        b.row(
            f"6c retention pass over {n:,} clips (forget {dry.clips / max(1, dry.candidates):.0%})",
            f"dry run {dry_s:.2f} s / real prune {real_s:.2f} s ({real.pruned:,} clips, "
            f"{3 * real.pruned:,} files)",
            "-",
            "-",
            "< 10 s",
            yes(max(dry_s, real_s) < 10),
        )
        engine.dispose()


def status_in_process(data: Path) -> float:
    import logging

    from archiver.cli import status as status_command

    saved = {k: v for k, v in os.environ.items() if k.startswith("ARCHIVER_")}
    for k in saved:
        del os.environ[k]
    os.environ["ARCHIVER_DATA_DIR"] = str(data)
    level = logging.getLogger().level
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            t0 = time.perf_counter()
            status_command.status(as_json=False)
            return time.perf_counter() - t0
    finally:
        del os.environ["ARCHIVER_DATA_DIR"]
        os.environ.update(saved)
        root = logging.getLogger()
        for h in list(root.handlers):
            if getattr(h, "_archiver", False):
                root.removeHandler(h)
        root.setLevel(level)
