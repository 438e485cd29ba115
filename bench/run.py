"""The blink-archiver benchmark: one command, one table.

    pip install -e '.[bench]'          # blinkpy 0.25.x (the peer) and psutil
    python bench/run.py                # everything, about 5 minutes on a 2-core machine
    python bench/run.py --quick        # smaller sizes, about 1 minute
    python bench/run.py --only 1,3,4   # pick scenarios (3 is derived from 1, 4 runs after 1)

Every scenario starts the built-in simulator in its own process (``bench/simproc.py``, so its request
threads never compete with blinkpy or the in-process archiver for the GIL) with a per-request latency
and a per-connection bandwidth cap, and talks to it over loopback HTTP.

1. Backlog, unthrottled: 100 cloud clips of 512 KiB (+ thumbnails), 50 ms per request, 4 MiB/s per
   connection. ``archiver sync`` (in-process: ``asyncio.run(sync_all(...))``, no interpreter start-up)
   with ``blink.max_requests_per_second = 0`` against blinkpy 0.25 ``download_videos(delay=0)``.
   Both start logged in (tokens from the simulator's OAuth flow, outside the timing); blinkpy's
   ``urls.base_url`` is pointed at the simulator (plain HTTP). blinkpy fetches no thumbnails.
2. Backlog, polite: the archiver's defaults (2 requests/s, 3 transfers) against blinkpy's delay=1.
3. The limit: ideal time of scenario 1 = (requests x latency + bytes / bandwidth) / sync.concurrency.
4. No-op sync: requests, logins and wall time of syncs with nothing new (after the backlog of 1).
5. Memory: peak RSS of an ``archiver sync`` subprocess archiving one 512 MiB clip vs one 16 MiB clip.
6. Scale: 100,000 stored clips inserted straight into a fresh SQLite database: no-op sync, ``archiver
   status`` (subprocess and in-process) and a retention pass (dry run and a real prune of ~10 %).

All figures are from one run on a shared machine: compare the ratios, not the absolute seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import io
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
KIB = 1024
MIB = 1024 * 1024
REDIRECT_URI = "immedia-blink://applinks.blink.com/signin/callback"


# ---------------------------------------------------------------------------------------- simulator
class SimProc:
    """``bench/simproc.py`` in a child process; ``cmd()`` sends one control line, returns its answer."""

    def __init__(self, **opts: Any) -> None:
        argv = [sys.executable, str(HERE / "simproc.py")]
        for k, v in opts.items():
            argv += [f"--{k.replace('_', '-')}", str(v)]
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"simulator did not start: {argv}")
        self.info: dict[str, Any] = json.loads(line)
        self.url: str = self.info["url"]

    def cmd(self, line: str) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def count(self) -> dict[str, Any]:
        return self.cmd("count")

    def close(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(Exception):
                self.cmd("quit")
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> SimProc:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def oauth_tokens(sim: SimProc) -> dict[str, Any]:
    """Log in through the simulator's OAuth flow (authorization code + PKCE) with plain httpx."""
    verifier = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    hardware_id = str(uuid.uuid4()).upper()
    with httpx.Client(base_url=sim.url, follow_redirects=False, timeout=30) as c:
        params = {
            "app_brand": "blink",
            "client_id": "ios",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "hardware_id": hardware_id,
            "redirect_uri": REDIRECT_URI,
            "response_type": "code",
            "scope": "client",
        }
        r = c.get("/oauth/v2/authorize", params=params)
        assert r.status_code == 302, r.text
        page = c.get("/oauth/v2/signin").text
        csrf = json.loads(page.split('type="application/json">', 1)[1].split("</script>", 1)[0])["csrf-token"]
        r = c.post(
            "/oauth/v2/signin",
            data={"username": sim.info["username"], "password": sim.info["password"], "csrf-token": csrf},
        )
        assert r.status_code in (301, 302, 303), (r.status_code, r.text)
        r = c.get("/oauth/v2/authorize")
        code = httpx.URL(r.headers["Location"]).params["code"]
        r = c.post(
            "/oauth/token",
            data={
                "app_brand": "blink",
                "client_id": "ios",
                "code": code,
                "code_verifier": verifier,
                "grant_type": "authorization_code",
                "hardware_id": hardware_id,
                "redirect_uri": REDIRECT_URI,
                "scope": "client",
            },
        )
        r.raise_for_status()
        tokens = r.json()
    tokens["hardware_id"] = hardware_id
    return tokens


# ------------------------------------------------------------------------------------------ archiver
def settings_for(sim: SimProc, data_dir: Path, rps: float | None = None, **sync: Any) -> Any:
    from archiver.config import load_settings

    blink: dict[str, Any] = {
        "server_url": sim.url,
        "username": sim.info["username"],
        "password": sim.info["password"],
    }
    if rps is not None:
        blink["max_requests_per_second"] = rps
    over: dict[str, Any] = {"data_dir": data_dir, "blink": blink}
    if sync:
        over["sync"] = sync
    return load_settings(None, **over)


def archiver_login(settings: Any) -> Any:
    """Log the archiver in (outside every timing) and return its engine."""
    from archiver.pipeline.runner import make_account_sync, open_engine

    engine = open_engine(settings)

    async def go() -> None:
        sync = make_account_sync(settings, engine, settings.account_list()[0])
        try:
            await sync.login(settings.blink.username, settings.blink.password.get_secret_value(), None)
        finally:
            await sync.aclose()

    asyncio.run(go())
    return engine


def archiver_sync(settings: Any, engine: Any) -> tuple[float, Any]:
    """One in-process sync (no interpreter start-up); returns (seconds, report)."""
    from archiver.pipeline.runner import sync_all

    t0 = time.perf_counter()
    reports = asyncio.run(sync_all(settings, engine))
    return time.perf_counter() - t0, reports[0]


def archiver_cmd() -> list[str]:
    exe = shutil.which("archiver")
    return [exe] if exe else [sys.executable, "-c", "from archiver.cli import main; main()"]


def archiver_env(sim: SimProc | None, data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARCHIVER_")}
    env["ARCHIVER_DATA_DIR"] = str(data_dir)
    if sim is not None:
        env["ARCHIVER_BLINK__SERVER_URL"] = sim.url
        env["ARCHIVER_BLINK__USERNAME"] = sim.info["username"]
        env["ARCHIVER_BLINK__PASSWORD"] = sim.info["password"]
    env.update(extra)
    return env


# ------------------------------------------------------------------------------------------- blinkpy
def blinkpy_download(sim: SimProc, tokens: dict[str, Any], path: Path, delay: float, stop: int) -> float:
    """blinkpy 0.25 ``download_videos`` against the simulator; returns seconds."""
    import aiohttp
    from blinkpy.blinkpy import Blink
    from blinkpy.helpers.util import BlinkURLHandler

    async def go() -> float:
        async with aiohttp.ClientSession() as session:
            blink = Blink(session=session)
            auth = blink.auth
            auth.token = tokens["access_token"]
            auth.refresh_token = tokens["refresh_token"]
            auth.expires_in = tokens["expires_in"]
            auth.expiration_date = time.time() + tokens["expires_in"]
            auth.hardware_id = tokens["hardware_id"]
            auth.account_id = sim.info["account_id"]
            auth.region_id = sim.info["tier"]
            auth.host = f"{sim.info['tier']}.immedia-semi.com"
            # monkeypatch the URL building: every REST call goes to the simulator over plain HTTP
            blink.urls = BlinkURLHandler(sim.info["tier"])
            blink.urls.base_url = sim.url
            blink.last_refresh = int(time.time())
            t0 = time.perf_counter()
            await blink.download_videos(str(path), since="1970-01-02T00:00:00+00:00", stop=stop, delay=delay)
            return time.perf_counter() - t0

    return asyncio.run(go())


# ------------------------------------------------------------------------------------------- results
@dataclass
class Row:
    scenario: str
    archiver: str
    peer: str
    ratio: str
    goal: str
    met: str


@dataclass
class Bench:
    args: argparse.Namespace
    tmp: Path
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    s1: dict[str, Any] = field(default_factory=dict)

    def row(self, *cells: str) -> None:
        self.rows.append(Row(*cells))
        print(f"  -> {' | '.join(cells)}", flush=True)

    def note(self, text: str) -> None:
        self.notes.append(text)
        print(f"  note: {text}", flush=True)


def yes(ok: bool) -> str:
    return "yes" if ok else "NO"


def dir_stats(path: Path, suffix: str) -> tuple[int, int]:
    files = [p for p in path.rglob(f"*{suffix}") if p.is_file()]
    return len(files), sum(p.stat().st_size for p in files)


def sim_opts(b: Bench) -> dict[str, Any]:
    return {
        "latency": b.args.latency,
        "bandwidth": b.args.bandwidth,
        "clips": b.args.clips,
        "size": b.args.clip_kib * KIB,
    }


def backlog_pair(b: Bench, label: str, rps: float | None, delay: float, **sync: Any) -> dict[str, Any]:
    """blinkpy then the archiver, each against a fresh simulator holding the same backlog."""
    n = b.args.clips
    stop = n // 25 + 2  # pages 1..n/25+1: enough to see every clip (issue: 100/25 + 1 pages)
    out: dict[str, Any] = {}
    with SimProc(**sim_opts(b)) as sim:
        tokens = oauth_tokens(sim)
        sim.cmd("reset")
        dest = b.tmp / f"blinkpy-{label}"
        dest.mkdir()
        out["bp_s"] = blinkpy_download(sim, tokens, dest, delay=delay, stop=stop)
        c = sim.count()
        out["bp_req"], out["bp_kinds"] = c["requests"], c["by_kind"]
        out["bp_files"], out["bp_bytes"] = dir_stats(dest, ".mp4")
        shutil.rmtree(dest, ignore_errors=True)
    print(
        f"  blinkpy delay={delay}: {out['bp_s']:.2f} s, {out['bp_req']} requests {out['bp_kinds']}, "
        f"{out['bp_files']} files",
        flush=True,
    )
    sim = SimProc(**sim_opts(b))
    data = b.tmp / f"archiver-{label}"
    settings = settings_for(sim, data, rps=rps, **sync)
    engine = archiver_login(settings)
    sim.cmd("reset")
    before = sim.count()
    out["ar_s"], rep = archiver_sync(settings, engine)
    c = sim.count()
    out["ar_req"], out["ar_kinds"] = c["requests"], c["by_kind"]
    out["ar_logins"] = c["logins"] - before["logins"]
    out["ar_stored"], out["ar_failed"] = rep.stored, rep.failed
    out["ar_files"], out["ar_bytes"] = dir_stats(settings.archive_dir, ".mp4")
    out["sim"], out["settings"], out["engine"] = sim, settings, engine
    print(
        f"  archiver ({label}): {out['ar_s']:.2f} s, {out['ar_req']} requests {out['ar_kinds']}, "
        f"stored {rep.stored}, failed {rep.failed}, logins during sync {out['ar_logins']}",
        flush=True,
    )
    if out["bp_files"] != n:
        b.note(f"{label}: blinkpy saved {out['bp_files']} of {n} clips")
    if rep.stored != n or rep.failed:
        b.note(
            f"{label}: archiver stored {rep.stored} of {n} clips, {rep.failed} failed: {rep.clip_errors[:3]}"
        )
    return out


def scenario1(b: Bench) -> None:
    print("\n[1] backlog, unthrottled", flush=True)
    r = backlog_pair(b, "s1", rps=0, delay=0)
    b.s1 = r
    ratio = r["bp_s"] / r["ar_s"]
    b.row(
        f"1 backlog {b.args.clips}x{b.args.clip_kib} KiB, unthrottled "
        f"(rps=0, conc={r['settings'].sync.concurrency})",
        f"{r['ar_s']:.2f} s, {r['ar_req']} req (incl. {r['ar_kinds'].get('thumbnail', 0)} thumbs)",
        f"blinkpy delay=0: {r['bp_s']:.2f} s, {r['bp_req']} req",
        f"{ratio:.2f}x faster",
        ">= 4x faster",
        yes(ratio >= 4),
    )
    if b.args.extra_concurrency:
        conc = b.args.extra_concurrency
        print(f"\n[1b] backlog, unthrottled, sync.concurrency={conc}", flush=True)
        with SimProc(**sim_opts(b)) as sim:
            settings = settings_for(sim, b.tmp / "archiver-s1b", rps=0, concurrency=conc)
            engine = archiver_login(settings)
            sim.cmd("reset")
            secs, rep = archiver_sync(settings, engine)
            c = sim.count()
            engine.dispose()
        ratio = r["bp_s"] / secs
        print(
            f"  archiver conc={conc}: {secs:.2f} s, {c['requests']} requests, stored {rep.stored}", flush=True
        )
        b.row(
            f"1b same, sync.concurrency={conc} (not the default)",
            f"{secs:.2f} s, {c['requests']} req",
            f"blinkpy delay=0: {r['bp_s']:.2f} s",
            f"{ratio:.2f}x faster",
            "(context for 1)",
            "-",
        )


def scenario3(b: Bench) -> None:
    print("\n[3] the limit", flush=True)
    if not b.s1:
        print("  (needs scenario 1)")
        return
    from archiver.simulator.media import thumbnail_bytes

    r = b.s1
    conc = r["settings"].sync.concurrency
    n = b.args.clips
    thumb = len(thumbnail_bytes("cloud:2139143346"))
    nbytes = n * b.args.clip_kib * KIB + n * thumb
    req = r["ar_req"]
    ideal = (req * b.args.latency + nbytes / b.args.bandwidth) / conc
    listing = r["ar_kinds"].get("listing", 0) + r["ar_kinds"].get("homescreen", 0)
    strict = listing * b.args.latency + ((req - listing) * b.args.latency + nbytes / b.args.bandwidth) / conc
    ratio = r["ar_s"] / ideal
    b.row(
        f"3 ideal of 1: ({req} req x {b.args.latency * 1000:.0f} ms + {nbytes / MIB:.1f} MiB / "
        f"{b.args.bandwidth / MIB:.0f} MiB/s) / {conc}",
        f"{r['ar_s']:.2f} s",
        f"ideal {ideal:.2f} s",
        f"{ratio:.2f}x ideal",
        "<= 1.3x",
        yes(ratio <= 1.3),
    )
    b.note(
        f"3: with the {listing} listing/homescreen requests counted as sequential (they are: each page "
        f"needs the previous one) the ideal is {strict:.2f} s and the archiver is at "
        f"{r['ar_s'] / strict:.2f}x"
    )


def scenario2(b: Bench) -> None:
    print("\n[2] backlog, polite (defaults)", flush=True)
    r = backlog_pair(b, "s2", rps=None, delay=1)
    rate = r["settings"].blink.max_requests_per_second
    budget = r["ar_req"] / rate
    mult = r["ar_s"] / budget
    b.row(
        f"2a backlog polite: archiver defaults (rate {rate:g}/s, conc {r['settings'].sync.concurrency})",
        f"{r['ar_s']:.2f} s, {r['ar_req']} req",
        f"req/rate = {budget:.2f} s",
        f"{mult:.3f}x budget",
        "<= 1.1x",
        yes(mult <= 1.1),
    )
    vs = r["bp_s"] / r["ar_s"]
    b.row(
        "2b backlog polite vs blinkpy delay=1",
        f"{r['ar_s']:.2f} s ({r['ar_req']} req)",
        f"blinkpy: {r['bp_s']:.2f} s ({r['bp_req']} req)",
        f"{vs:.2f}x faster",
        "faster (> 1x)",
        yes(vs > 1),
    )
    r["engine"].dispose()
    r["sim"].close()


def scenario4(b: Bench) -> None:
    print("\n[4] no-op sync", flush=True)
    if not b.s1:
        print("  (needs scenario 1)")
        return
    from archiver.config import load_settings

    sim: SimProc = b.s1["sim"]
    s1 = b.s1["settings"]
    # the no-op uses the defaults (rate limit 2/s) on the database scenario 1 filled
    settings = load_settings(
        None,
        data_dir=s1.data_dir,
        blink={"server_url": sim.url, "username": sim.info["username"], "password": sim.info["password"]},
    )
    engine = b.s1["engine"]

    def once(label: str) -> tuple[float, int, int, Any]:
        sim.cmd("reset")
        before = sim.count()
        secs, rep = archiver_sync(settings, engine)
        c = sim.count()
        print(
            f"  {label}: {secs * 1000:.0f} ms, {c['requests']} requests {c['by_kind']}, listed {rep.listed}, "
            f"new {rep.new}, logins {c['logins'] - before['logins']}",
            flush=True,
        )
        return secs, c["requests"], c["logins"] - before["logins"], rep

    _, n_a, _, rep_a = once("sync right after the backlog (re-lists clips marked watched)")
    _, n_b, _, rep_b = once("next sync, right after (still inside sync.overlap_minutes)")
    sim.cmd(f"age {b.args.age_s}")
    s_c, n_c, l_c, _ = once(f"steady state: clip times moved {b.args.age_s} s into the past")
    env = archiver_env(sim, s1.data_dir)
    sim.cmd("reset")
    t0 = time.perf_counter()
    p = subprocess.run([*archiver_cmd(), "sync"], env=env, capture_output=True, text=True)
    s_sub = time.perf_counter() - t0
    n_sub = sim.count()["requests"]
    print(
        f"  steady state, subprocess `archiver sync`: {s_sub * 1000:.0f} ms, {n_sub} requests, "
        f"exit {p.returncode}",
        flush=True,
    )
    b.row(
        "4 no-op sync, steady state (defaults)",
        f"{n_c} req, {l_c} logins, {s_c * 1000:.0f} ms in-process / {s_sub * 1000:.0f} ms subprocess",
        "goal 1 req, 0 logins",
        f"{n_c} req",
        "1 request, no login",
        yes(n_c == 1 and l_c == 0 and n_sub == 1),
    )
    b.row(
        "4' no-ops right after the backlog",
        f"{n_a} req ({rep_a.listed} listed), then {n_b} req ({rep_b.listed} listed)",
        "-",
        "-",
        "(informational)",
        "-",
    )
    b.note(
        f"4: downloading marks clips watched (updated_at bumps), and every listing re-reads "
        f"sync.overlap_minutes={settings.sync.overlap_minutes:g} of the previous window, so syncs within "
        f"{settings.sync.overlap_minutes:g} min of a backlog re-list it ({n_a} and {n_b} requests); the "
        f"steady state is measured after moving the simulator's clip times {b.args.age_s} s back."
    )
    engine.dispose()
    sim.close()


def rss_run(b: Bench, size: int) -> dict[str, Any]:
    import psutil

    with SimProc(clips=1, size=size) as sim:
        data = b.tmp / f"mem-{size}"
        settings = settings_for(sim, data)
        archiver_login(settings).dispose()
        env = archiver_env(sim, data)
        peak = {"self": 0, "tree": 0, "hwm": 0}
        err = (data / "stderr.txt").open("w")
        t0 = time.perf_counter()
        proc = subprocess.Popen([*archiver_cmd(), "sync"], env=env, stdout=subprocess.DEVNULL, stderr=err)
        ps = psutil.Process(proc.pid)
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                try:
                    me = ps.memory_info().rss
                    tree = me + sum(c.memory_info().rss for c in ps.children(recursive=True))
                except psutil.Error:
                    break
                peak["self"] = max(peak["self"], me)
                with contextlib.suppress(OSError, ValueError):  # the kernel's own high-water mark
                    for ln in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
                        if ln.startswith("VmHWM:"):
                            peak["hwm"] = max(peak["hwm"], int(ln.split()[1]) * 1024)
                peak["tree"] = max(peak["tree"], tree)
                time.sleep(0.01)

        th = threading.Thread(target=sample, daemon=True)
        th.start()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        secs = time.perf_counter() - t0
        stop.set()
        th.join()
        err.close()
        files, nbytes = dir_stats(settings.archive_dir, ".mp4")
        # ru_maxrss of this one child (kilobytes on Linux): its own peak, or a waited-for descendant's
        out = {
            "sampled": peak["self"],
            "tree": peak["tree"],
            "maxrss": usage.ru_maxrss * 1024,
            "hwm": max(peak["hwm"], peak["self"]),
            "secs": secs,
            "ok": proc.returncode == 0 and files == 1 and nbytes == size,
            "rc": proc.returncode,
        }
        print(
            f"  {size / MIB:.0f} MiB clip: exit {proc.returncode}, {secs:.1f} s, archive {files} file(s) "
            f"{nbytes / MIB:.1f} MiB, peak RSS sampled {peak['self'] / MIB:.1f} MiB (with children "
            f"{peak['tree'] / MIB:.1f}), VmHWM {out['hwm'] / MIB:.1f} MiB, wait4 ru_maxrss (max over the "
            f"process and its ffmpeg children) {out['maxrss'] / MIB:.1f} MiB",
            flush=True,
        )
        if not out["ok"]:
            b.note(
                f"5: the {size / MIB:.0f} MiB sync did not store the clip: "
                f"{(data / 'stderr.txt').read_text()[-500:]}"
            )
        shutil.rmtree(data, ignore_errors=True)
        return out


def scenario5(b: Bench) -> None:
    print("\n[5] memory", flush=True)
    big, small = b.args.mem_big_mib * MIB, 16 * MIB
    s = rss_run(b, small)
    g = rss_run(b, big)
    peak_big, peak_small = g["hwm"], s["hwm"]
    b.row(
        f"5 peak RSS (VmHWM) of the `archiver sync` process, one {b.args.mem_big_mib} MiB clip",
        f"{peak_big / MIB:.1f} MiB ({g['secs']:.1f} s); ru_maxrss {g['maxrss'] / MIB:.1f}",
        f"16 MiB clip: {peak_small / MIB:.1f} MiB; ru_maxrss {s['maxrss'] / MIB:.1f}",
        f"{peak_big / peak_small:.2f}x",
        "< 100 MiB, flat",
        yes(peak_big < 100 * MIB and g["ok"] and peak_big / peak_small < 1.25),
    )
    b.note(
        "5: VmHWM is the kernel's peak RSS of the archiver process itself; wait4's ru_maxrss is the max over "
        "the process and its waited-for children (the ffmpeg probe), so it can exceed VmHWM."
    )


# ------------------------------------------------------------------------------------------- scale
def build_db(b: Bench, sim: SimProc, data: Path, n: int, tokens: dict[str, Any]) -> dict[str, Any]:
    """Fresh SQLite database (schema by the archiver's migrations) with ``n`` stored clips."""
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
    from archiver.sources.usb_topology import HOMESCREEN_CURSOR

    engine = open_database(f"sqlite:///{data / 'archiver.db'}")
    now = datetime.now(UTC).replace(microsecond=0)
    net_id, cams = sim.info["network_id"], sim.info["camera_ids"]
    cam_names = [f"Camera {i + 1}" for i in range(len(cams))]
    spacing = b.args.scale_days * 86400 / n
    t0 = time.perf_counter()
    with engine.begin() as conn:
        conn.execute(
            Account.__table__.insert(),
            [
                {
                    "id": 1,
                    "name": "default",
                    "username": sim.info["username"],
                    "auth_kind": "oauth",
                    "hardware_id": tokens["hardware_id"],
                    "blink_account_id": sim.info["account_id"],
                    "user_id": 2002,
                    "client_id": None,
                    "tier": sim.info["tier"],
                    "access_token": tokens["access_token"],
                    "refresh_token": tokens["refresh_token"],
                    "token_expires_at": now + timedelta(seconds=tokens["expires_in"]),
                    "created_at": now,
                }
            ],
        )
        conn.execute(
            Network.__table__.insert(),
            [
                {
                    "account_id": 1,
                    "blink_id": net_id,
                    "name": "Home",
                    "time_zone": "America/Chicago",
                    "seen_at": now,
                }
            ],
        )
        conn.execute(
            Camera.__table__.insert(),
            [
                {
                    "account_id": 1,
                    "blink_id": c,
                    "network_id": net_id,
                    "name": name,
                    "type": "catalina",
                    "seen_at": now,
                }
                for c, name in zip(cams, cam_names, strict=True)
            ],
        )
        conn.execute(
            Cursor.__table__.insert(),
            [
                {"account_id": 1, "source": "cloud", "since": now - timedelta(minutes=10), "updated_at": now},
                {"account_id": 1, "source": HOMESCREEN_CURSOR, "since": now, "updated_at": now},
            ],
        )
        clips, objs = [], []
        old: list[tuple[str, ...]] = []
        cutoff = now - timedelta(days=b.args.scale_days * 0.9)
        for i in range(n):
            cid = i + 1
            media = 1_000_000_000 + i
            created = now - timedelta(seconds=(i + 1) * spacing)
            cam = i % len(cams)
            key = f"Home/{cam_names[cam]}/{created:%Y-%m-%d}/{created:%H-%M-%S}_{media}"
            clips.append(
                {
                    "id": cid,
                    "account_id": 1,
                    "source": ClipSource.cloud,
                    "identity": f"cloud:{media}",
                    "blink_id": str(media),
                    "network_blink_id": net_id,
                    "network_name": "Home",
                    "camera_blink_id": cams[cam],
                    "camera_name": cam_names[cam],
                    "sync_module_blink_id": None,
                    "time_zone": "America/Chicago",
                    "created_at": created,
                    "updated_at": created,
                    "media_url": f"/api/v2/accounts/{sim.info['account_id']}/media/clip/{media}.mp4",
                    "thumbnail_url": f"/api/v2/accounts/{sim.info['account_id']}/media/thumb/{media}",
                    "size_hint": None,
                    "deleted_upstream": False,
                    "partial": False,
                    "state": ClipState.stored,
                    "attempts": 0,
                    "last_error": None,
                    "size": 512 * KIB,
                    "sha256": "0" * 64,
                    "duration": 1.0,
                    "width": 160,
                    "height": 90,
                    "codec": "h264",
                    "discovered_at": created,
                    "stored_at": created,
                    "cloud_deleted_at": None,
                }
            )
            for kind, suffix, size in (
                (ObjectKind.clip, ".mp4", 512 * KIB),
                (ObjectKind.thumbnail, ".jpg", 3000),
                (ObjectKind.sidecar, ".json", 900),
            ):
                objs.append(
                    {
                        "clip_id": cid,
                        "destination": "disk",
                        "kind": kind,
                        "key": key + suffix,
                        "size": size,
                        "sha256": "0" * 64,
                        "stored_at": created,
                        "verified_at": None,
                    }
                )
            if created <= cutoff:
                old.append((key + ".mp4", key + ".jpg", key + ".json"))
            if len(clips) >= 10_000:
                conn.execute(Clip.__table__.insert(), clips)
                conn.execute(StoredObject.__table__.insert(), objs)
                clips, objs = [], []
        if clips:
            conn.execute(Clip.__table__.insert(), clips)
            conn.execute(StoredObject.__table__.insert(), objs)
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


def scenario6(b: Bench) -> None:
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
        env = archiver_env(sim, data)
        sim.cmd("reset")
        t0 = time.perf_counter()
        p = subprocess.run([*archiver_cmd(), "sync"], env=env, capture_output=True, text=True)
        sub = time.perf_counter() - t0
        c2 = sim.count()
        print(
            f"  no-op sync subprocess: {sub:.2f} s, {c2['requests']} requests, exit {p.returncode}",
            flush=True,
        )
        b.row(
            f"6a no-op sync, {n:,} clips in the DB",
            f"{secs:.2f} s in-process / {sub:.2f} s subprocess, {c['requests']} req",
            "-",
            "-",
            "< 2 s, 1 req",
            f"in-process {yes(secs < 2 and c['requests'] == 1)} / subprocess {yes(sub < 2)}",
        )

        # status
        t0 = time.perf_counter()
        p = subprocess.run(
            [*archiver_cmd(), "status"], env=archiver_env(None, data), capture_output=True, text=True
        )
        st_sub = time.perf_counter() - t0
        if p.returncode != 0:
            b.note(f"6: archiver status exited {p.returncode}: {p.stderr[-300:]}")
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import archiver.cli"], env=archiver_env(None, data))
        startup = time.perf_counter() - t0
        st_in = status_in_process(data)
        print(
            f"  status: subprocess {st_sub:.2f} s (python + `import archiver.cli` alone: {startup:.2f} s), "
            f"in-process {st_in:.2f} s",
            flush=True,
        )
        b.row(
            f"6b `archiver status`, {n:,} clips",
            f"{st_sub:.2f} s subprocess / {st_in:.2f} s in-process",
            f"python + import alone {startup:.2f} s",
            "-",
            "< 1 s",
            f"in-process {yes(st_in < 1)} / subprocess {yes(st_sub < 1)}",
        )

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

    from archiver.cli import commands

    saved = {k: v for k, v in os.environ.items() if k.startswith("ARCHIVER_")}
    for k in saved:
        del os.environ[k]
    os.environ["ARCHIVER_DATA_DIR"] = str(data)
    level = logging.getLogger().level
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            t0 = time.perf_counter()
            commands.status()
            return time.perf_counter() - t0
    finally:
        del os.environ["ARCHIVER_DATA_DIR"]
        os.environ.update(saved)
        root = logging.getLogger()
        for h in list(root.handlers):
            if getattr(h, "_archiver", False):
                root.removeHandler(h)
        root.setLevel(level)


# -------------------------------------------------------------------------------------------- main
def print_table(b: Bench) -> None:
    heads = ("scenario", "archiver", "peer / ideal", "ratio", "goal", "met?")
    rows = [heads, *[(r.scenario, r.archiver, r.peer, r.ratio, r.goal, r.met) for r in b.rows]]
    widths = [max(len(r[i]) for r in rows) for i in range(len(heads))]
    line = "+-" + "-+-".join("-" * w for w in widths) + "-+"
    print("\n" + line)
    for i, r in enumerate(rows):
        print("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |")
        if i == 0:
            print(line)
    print(line)
    for n in b.notes:
        print(f"* {n}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (about a minute)")
    ap.add_argument("--only", default="1,2,3,4,5,6", help="comma-separated scenarios (default: all)")
    ap.add_argument("--clips", type=int, help="backlog clips (default 100, quick 25)")
    ap.add_argument("--clip-kib", type=int, default=512)
    ap.add_argument("--latency", type=float, default=0.05, help="seconds per request")
    ap.add_argument("--bandwidth", type=float, default=4 * MIB, help="bytes/s per connection")
    ap.add_argument(
        "--extra-concurrency",
        type=int,
        default=None,
        help="also run scenario 1 with this sync.concurrency (default 8; quick 0 = off)",
    )
    ap.add_argument("--mem-big-mib", type=int, help="big clip of scenario 5 (default 512, quick 128)")
    ap.add_argument("--scale", type=int, help="clips in scenario 6 (default 100000, quick 20000)")
    ap.add_argument("--scale-days", type=float, default=100.0, help="the scale clips span this many days")
    ap.add_argument("--age-s", type=int, default=3600, help="scenario 4: how far to move clips into the past")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = ap.parse_args()
    args.clips = args.clips or (25 if args.quick else 100)
    args.mem_big_mib = args.mem_big_mib or (128 if args.quick else 512)
    args.scale = args.scale or (20_000 if args.quick else 100_000)
    if args.extra_concurrency is None:
        args.extra_concurrency = 0 if args.quick else 8
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    if only & {"3", "4"}:
        only.add("1")

    import blinkpy  # noqa: F401  (fail early: pip install -e '.[bench]')
    import psutil  # noqa: F401

    started = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="archiver-bench-"))
    b = Bench(args, tmp)
    print(
        f"blink-archiver bench: {args.clips} clips x {args.clip_kib} KiB, "
        f"{args.latency * 1000:.0f} ms/request, "
        f"{args.bandwidth / MIB:.1f} MiB/s per connection; {os.cpu_count()} CPUs; tmp {tmp}",
        flush=True,
    )
    try:
        for key, fn in (
            ("1", scenario1),
            ("3", scenario3),
            ("4", scenario4),
            ("2", scenario2),
            ("5", scenario5),
            ("6", scenario6),
        ):
            if key in only:
                fn(b)
    finally:
        if b.s1.get("sim"):
            b.s1["sim"].close()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    print_table(b)
    print(
        f"\ntotal bench time {time.perf_counter() - started:.0f} s; archiver syncs in-process unless marked "
        f"subprocess (in-process excludes interpreter start-up); ratios are from this one run."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
