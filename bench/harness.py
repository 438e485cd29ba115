"""What every scenario shares: the simulator in its own process, settings and log-in for the archiver,
child processes measured with wait4 (wall time and CPU, children included), and the result table."""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
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
def settings_for(
    sim: SimProc,
    data_dir: Path,
    rps: float | None = None,
    processing: dict[str, Any] | None = None,
    **sync: Any,
) -> Any:
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
    if processing:
        over["processing"] = processing
    return load_settings(None, **over)


def archiver_login(settings: Any) -> Any:
    """Log the archiver in (outside every timing) and return its engine."""
    from archiver.pipeline.runner import open_blink, open_engine

    engine = open_engine(settings)

    async def go() -> None:
        sync = open_blink(settings, engine, settings.account_list()[0])
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
    if exe is None:
        candidate = Path(sys.executable).with_name("archiver")
        exe = str(candidate) if candidate.exists() else None
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


# ------------------------------------------------------------------------------------ child processes
@dataclass
class Child:
    rc: int
    wall: float  # seconds
    cpu: float  # user + system seconds of the process and its waited-for children (ffmpeg)
    maxrss: int  # bytes
    stdout: str
    stderr: str


def run_blinkpy_process(sim: Any, dest: Path, stop: int, tokens: Any = None) -> Child:
    """blinkpy (``peers.py``) as a whole process against ``sim``, downloading into ``dest``."""
    argv = [sys.executable, str(HERE / "peers.py"), "--sim", json.dumps(sim.info | {"url": sim.url})]
    argv += ["--dest", str(dest), "--stop", str(stop)]
    if tokens is not None:
        argv += ["--tokens", json.dumps(tokens)]
    return run_child(argv)


def run_child(argv: list[str], env: dict[str, str] | None = None, stdin: str | None = None) -> Child:
    """Run a whole process; wall time, CPU (wait4: the child and every descendant it waited for)."""
    out = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-child-{os.getpid()}-{time.monotonic_ns()}"
    with open(f"{out}.out", "w+") as so, open(f"{out}.err", "w+") as se:
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            argv,
            env=env,
            stdout=so,
            stderr=se,
            stdin=subprocess.PIPE if stdin is not None else None,
            text=True,
        )
        if stdin is not None:
            assert proc.stdin is not None
            proc.stdin.write(stdin)
            proc.stdin.close()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        so.seek(0)
        se.seek(0)
        res = Child(
            proc.returncode,
            wall,
            usage.ru_utime + usage.ru_stime,
            usage.ru_maxrss * 1024,
            so.read(),
            se.read(),
        )
    for suffix in (".out", ".err"):
        Path(f"{out}{suffix}").unlink(missing_ok=True)
    return res


def best_of(n: int, fn: Any) -> Any:
    """The run with the smallest wall time of ``n`` (start-up figures are noisy on a shared machine)."""
    runs = [fn() for _ in range(n)]
    return min(runs, key=lambda c: c.wall)


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
    s1: dict[str, Any] = field(default_factory=dict)  # scenario 1's simulator/settings, for 3 and 4
    s10: dict[str, Any] = field(default_factory=dict)  # scenario 10: requests per clip by thumbnail mode
    scale_dir: Path | None = None  # scenario 6's 100,000-clip data folder, for the start-up scenario

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


def sim_opts(b: Bench, **over: Any) -> dict[str, Any]:
    opts = {
        "latency": b.args.latency,
        "bandwidth": b.args.bandwidth,
        "clips": b.args.clips,
        "size": b.args.clip_kib * KIB,
    }
    opts.update(over)
    return opts


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
