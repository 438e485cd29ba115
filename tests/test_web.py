# ruff: noqa: F811  (the web_archive fixture imported from web_fixtures is shadowed by test parameters)
"""The web UI over HTTP (httpx's ASGI transport, and a real uvicorn for what needs sockets): every page,
Range answered 206, caching headers, traversal attempts, auth, and the bind rule."""

from __future__ import annotations

import asyncio
import base64
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import cli_env, free_port, run_cli
from sqlalchemy import event
from sqlmodel import Session, select
from web_fixtures import SECRET_OUTSIDE, WebArchive, web_archive  # noqa: F401

from archiver.config import Settings
from archiver.db.engine import make_engine, open_engine, session_scope
from archiver.db.models import Account, Clip, ClipSource, ClipState, ObjectKind, StoredObject
from archiver.web.app import create_app
from archiver.web.queries import decode_cursor, encode_cursor
from archiver.web.server import WebServer


def request(app: Any, method: str, path: str | bytes, **kw: Any) -> httpx.Response:
    """One request through the ASGI transport; a bytes path is sent exactly as given (no dot-segment
    normalisation)."""

    async def go() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ui") as c:
            if isinstance(path, bytes):
                req = c.build_request(method, "/", **kw)
                req.url = req.url.copy_with(raw_path=path)
                return await c.send(req)
            return await c.request(method, path, **kw)

    return asyncio.run(go())


def get(app: Any, path: str | bytes, **kw: Any) -> httpx.Response:
    return request(app, "GET", path, **kw)


@pytest.fixture(scope="module")
def app(web_archive: WebArchive) -> Iterator[Any]:
    engine = open_engine(web_archive.settings)
    yield create_app(web_archive.settings, engine)
    engine.dispose()


def links(html: str, pattern: str) -> list[str]:
    return re.findall(rf'href="({pattern})"', html)


def stored_clips(settings: Settings) -> list[Clip]:
    engine = make_engine(settings.database_url)
    try:
        with Session(engine) as s:
            return list(s.exec(select(Clip).where(Clip.state == ClipState.stored)).all())
    finally:
        engine.dispose()


# -- pages --------------------------------------------------------------------------------------------------
def test_cameras_page_groups_cameras_by_network_with_thumbnail_count_and_last_time(app: Any) -> None:
    r = get(app, "/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    html = r.text
    assert html.index(">Cabin<") < html.index(">Home<")  # networks sorted by name
    home = html[html.index(">Home<") :]
    assert home.index("Back Yard") < home.index("Front Door")
    assert "5 clips" in html and "2 clips" in html and "4 clips" in html  # Porch: 2 cloud + 2 USB
    cams = links(html, r"/camera/\d+/\d+")
    assert len(cams) == 3
    thumbs = re.findall(r'src="(/media/\d+/thumbnail)"', html)
    assert len(thumbs) == 3
    for t in thumbs:
        img = get(app, t)
        assert img.status_code == 200 and img.headers["content-type"] == "image/jpeg"
        assert img.content[:2] == b"\xff\xd8"
    assert re.search(r"last \d{4}-\d\d-\d\d \d\d:\d\d", html)


def test_camera_page_lists_clips_newest_first_grouped_by_local_day(app: Any, web_archive: WebArchive) -> None:
    html = get(app, "/").text
    porch = next(c for c in links(html, r"/camera/\d+/\d+") if f'href="{c}"' in html.split("Porch")[0][-400:])
    page = get(app, porch)
    assert page.status_code == 200
    assert "<h1>Porch" in page.text
    clip_ids = [int(x.rsplit("/", 1)[1]) for x in links(page.text, r"/clip/\d+")]
    by_id = {c.id: c for c in stored_clips(web_archive.settings)}
    times = [by_id[i].created_at for i in clip_ids]
    assert len(clip_ids) == 4 and times == sorted(times, reverse=True)
    assert page.text.count('class="day"') >= 2  # the USB clips are a day or more older
    assert page.text.count('src-usb">USB<') == 2 and page.text.count('src-cloud">cloud<') == 2
    assert re.search(r'class="dur">0:01<', page.text)  # duration from the probe
    usb = get(app, porch + "?source=usb")
    assert usb.text.count('src-usb">USB<') == 2 and 'src-cloud">' not in usb.text


def test_camera_page_keyset_paging_follows_older_links_to_the_end(web_archive: WebArchive) -> None:
    engine = open_engine(web_archive.settings)
    small = create_app(web_archive.settings, engine, page_size=2)
    front = [c for c in stored_clips(web_archive.settings) if c.camera_name == "Front Door"]
    url = f"/camera/{front[0].account_id}/{front[0].camera_blink_id}"
    seen: list[int] = []
    pages = 0
    while url:
        page = get(small, url).text
        seen += [int(x.rsplit("/", 1)[1]) for x in links(page, r"/clip/\d+")]
        more = re.search(r'rel="next" href="([^"]+)"', page)
        url = more[1].replace("&amp;", "&") if more else ""
        pages += 1
    expected = sorted(front, key=lambda c: (c.created_at, c.id), reverse=True)
    assert seen == [c.id for c in expected] and pages == 3
    engine.dispose()


def test_find_page_pages_through_every_camera_in_time_order(web_archive: WebArchive) -> None:
    engine = open_engine(web_archive.settings)
    small = create_app(web_archive.settings, engine, page_size=3)
    url, seen = "/clips", []
    while url:
        page = get(small, url).text
        seen += [int(x.rsplit("/", 1)[1]) for x in links(page, r"/clip/\d+")]
        more = re.search(r'rel="next" href="([^"]+)"', page)
        url = more[1].replace("&amp;", "&") if more else ""
    everything = sorted(stored_clips(web_archive.settings), key=lambda c: (c.created_at, c.id), reverse=True)
    assert seen == [c.id for c in everything]
    engine.dispose()


def test_keyset_cursor_round_trips_and_ignores_garbage() -> None:
    from datetime import UTC, datetime

    ts = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
    assert decode_cursor(encode_cursor(ts, 42)) == (ts, 42)
    for bad in ("", "x", "1-", "-1", "1-x", "9" * 60 + "-1", "1-2-3"):
        assert decode_cursor(bad) is None


def test_clip_page_plays_video_with_metadata_download_and_neighbours(
    app: Any, web_archive: WebArchive
) -> None:
    front = sorted(
        (c for c in stored_clips(web_archive.settings) if c.camera_name == "Front Door"),
        key=lambda c: (c.created_at, c.id),
    )
    middle = front[2]
    r = get(app, f"/clip/{middle.id}")
    assert r.status_code == 200
    html = r.text
    assert f'src="/media/{middle.id}/video"' in html and "<video" in html
    assert f'poster="/media/{middle.id}/thumbnail"' in html
    assert f'href="/media/{middle.id}/download"' in html
    assert f'href="/clip/{front[1].id}"' in html and f'href="/clip/{front[3].id}"' in html  # older, newer
    assert "<dt>identity</dt><dd>cloud:" in html and "<dt>camera.name</dt><dd>Front Door</dd>" in html
    assert "America/Chicago" in html and "160\u00d790 h264" in html
    dl = get(app, f"/media/{middle.id}/download")
    assert dl.status_code == 200 and dl.headers["content-disposition"].startswith("attachment;")
    assert dl.content[4:8] == b"ftyp"


def test_video_answers_range_requests_with_206_and_is_cached_by_etag(
    app: Any, web_archive: WebArchive
) -> None:
    clip = stored_clips(web_archive.settings)[0]
    full = get(app, f"/media/{clip.id}/video")
    assert full.status_code == 200 and full.headers["accept-ranges"] == "bytes"
    assert full.headers["content-type"] == "video/mp4"
    assert full.headers["etag"] == f'"{clip.sha256}"'
    assert "immutable" in full.headers["cache-control"]
    part = get(app, f"/media/{clip.id}/video", headers={"Range": "bytes=100-1099"})
    assert part.status_code == 206
    assert part.headers["content-range"] == f"bytes 100-1099/{len(full.content)}"
    assert part.content == full.content[100:1100]
    tail = get(app, f"/media/{clip.id}/video", headers={"Range": "bytes=-10"})
    assert tail.status_code == 206 and tail.content == full.content[-10:]
    bad = get(app, f"/media/{clip.id}/video", headers={"Range": f"bytes={len(full.content) + 5}-"})
    assert bad.status_code == 416
    again = get(app, f"/media/{clip.id}/video", headers={"If-None-Match": full.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    head = request(app, "HEAD", f"/media/{clip.id}/thumbnail")
    assert head.status_code == 200 and head.headers["etag"]


def test_filters_by_camera_date_range_and_source(app: Any, web_archive: WebArchive) -> None:
    clips = stored_clips(web_archive.settings)
    page = get(app, "/clips")
    assert page.status_code == 200
    assert len(links(page.text, r"/clip/\d+")) == 11
    options = re.findall(r'<option value="(\d+:\d+)"', page.text)
    assert len(options) == 3
    back = next(c for c in clips if c.camera_name == "Back Yard")
    only = get(app, f"/clips?camera={back.account_id}:{back.camera_blink_id}").text
    assert {int(x.rsplit("/", 1)[1]) for x in links(only, r"/clip/\d+")} == {
        c.id for c in clips if c.camera_name == "Back Yard"
    }
    usb = get(app, "/clips?source=usb").text
    assert len(links(usb, r"/clip/\d+")) == 2
    oldest = min(c.created_at for c in clips)
    day = oldest.date().isoformat()  # dates are read in UTC: the archive has two zones
    first_day = get(app, f"/clips?from={day}&to={day}").text
    assert 1 <= len(links(first_day, r"/clip/\d+")) < 11
    assert get(app, "/clips?from=2001-01-01&to=2001-01-02").text.count("/clip/") == 0
    assert get(app, "/clips?from=garbage&camera=x:y&source=%00").status_code == 200


def test_status_page_shows_sync_failures_login_and_sizes(web_archive: WebArchive) -> None:
    engine = open_engine(web_archive.settings)
    app = create_app(web_archive.settings, engine)
    html = get(app, "/status").text
    assert '"Account">default</td>' in html and "login needed" not in html
    assert re.search(r"<td>disk</td><td class=\"num\">\d+</td><td class=\"num\">[\d.]+ KB</td>", html)
    assert "None." in html  # no failed clips
    with session_scope(engine) as s:
        clip = s.exec(select(Clip).where(Clip.source == ClipSource.local)).first()
        assert clip is not None
        clip.state, clip.last_error, clip.attempts = ClipState.failed, "download: HTTP 500 <b>boom</b>", 3
        s.add(clip)
    try:
        login = create_app(web_archive.settings, engine, login_check=lambda a: f"PIN needed for {a.name}")
        html = get(login, "/status").text
        assert "download: HTTP 500 &lt;b&gt;boom&lt;/b&gt;" in html  # escaped
        assert "login needed</span> PIN needed for default" in html
        assert get(app, f"/clip/{clip.id}").status_code == 404  # a failed clip has no page
    finally:
        with session_scope(engine) as s:
            row = s.get(Clip, clip.id)
            assert row is not None
            row.state, row.last_error, row.attempts = ClipState.stored, None, 1
            s.add(row)
        engine.dispose()


SCANS_A_TABLE = re.compile(r"^SCAN (TABLE )?(clip|storedobject)\b")


def test_cameras_and_status_pages_read_no_clip_or_object_table_in_full(web_archive: WebArchive) -> None:
    """Clips per camera, the newest failed clips and the size per destination come from indexes (at
    100,000 clips a table scan costs 50-100 ms: bench/bench_web.py). Every SELECT the two pages send is
    explained by SQLite: none reads the clip or storedobject table from end to end."""
    engine = open_engine(web_archive.settings)
    sent: list[tuple[str, Any]] = []

    def record(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            sent.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", record)
    try:
        app = create_app(web_archive.settings, engine)
        for path in ("/", "/status"):
            assert get(app, path).status_code == 200
        assert len(sent) > 5
        scans: list[tuple[list[str], str]] = []
        with engine.connect() as conn:
            raw = conn.connection.dbapi_connection
            assert raw is not None
            for statement, parameters in sent:
                plan = [row[-1] for row in raw.execute(f"EXPLAIN QUERY PLAN {statement}", parameters)]
                table_scan = any(SCANS_A_TABLE.match(d) and "COVERING INDEX" not in d for d in plan)
                # a scan in key order that a LIMIT stops early (the newest rows) reads only those rows
                stops_early = "LIMIT" in statement and not any(d.startswith("USE TEMP B-TREE") for d in plan)
                if table_scan and not stops_early:
                    scans.append((plan, " ".join(statement.split())[:200]))
    finally:
        event.remove(engine, "before_cursor_execute", record)
        engine.dispose()
    assert scans == []


def test_default_login_check_reads_the_stored_session() -> None:
    from archiver.web.queries import login_needed

    acct = Account(name="a", hardware_id="x")
    assert login_needed(acct) is not None and "archiver login --account a" in (login_needed(acct) or "")
    acct.refresh_token = "r"
    assert login_needed(acct) is None


def test_no_page_shows_a_secret(app: Any, web_archive: WebArchive) -> None:
    engine = make_engine(web_archive.settings.database_url)
    with Session(engine) as s:
        acct = s.exec(select(Account)).one()
        secrets = [web_archive.sim_password, acct.access_token, acct.refresh_token, acct.hardware_id]
    engine.dispose()
    assert all(secrets)
    todo, seen = ["/"], set()
    while todo:
        path = todo.pop(0)  # breadth first: the timeline links day to day without end
        if path in seen or len(seen) > 80:
            continue
        seen.add(path)
        r = get(app, path)
        assert r.status_code == 200, path
        for secret in secrets:
            assert secret not in r.text, f"a secret in {path}"
        todo += [
            p.replace("&amp;", "&") for p in re.findall(r'href="(/[^"]*)"', r.text) if "/media/" not in p
        ]
    assert {"/", "/clips", "/status"} <= seen and any(p.startswith("/clip/") for p in seen)


def test_unknown_pages_and_ids_are_404(app: Any) -> None:
    for path in (
        "/nope",
        "/clip/999999",
        "/clip/abc",
        "/camera/1/999",
        "/media/1/sidecar",
        "/media/999/video",
    ):
        assert get(app, path).status_code == 404, path
    assert request(app, "POST", "/clips").status_code == 405  # read-only


HOSTILE = [
    "/clip/99999999999999999999999",
    "/media/99999999999999999999999/video",
    "/camera/99999999999999999999/1",
    "/camera/1/99999999999999999999999",
    "/clips?before=9223372036854775807999-1",
    "/clips?before=1-99999999999999999999",
    "/clips?before=-99999999999999999999-1",
    "/clips?camera=1:99999999999999999999",
    "/clips?from=9999-12-31&to=9999-12-31",
    "/clips?from=0001-01-01&to=0001-01-01",
    "/clips?source=%00&from=%ff",
]


@pytest.mark.parametrize("path", HOSTILE)
def test_hostile_ids_and_dates_are_answered_not_crashed(app: Any, path: str) -> None:
    assert get(app, path).status_code in (200, 404)


# -- nothing outside the archive ----------------------------------------------------------------------------
TRAVERSALS = [
    b"/static/../../../outside-secret.txt",
    b"/static/%2e%2e/%2e%2e/%2e%2e/outside-secret.txt",
    b"/static/..%2f..%2f..%2foutside-secret.txt",
    b"/static/%2e%2e%2f%2e%2e%2f%2e%2e%2farchiver.db",
    b"/static/....//....//archiver.db",
    b"/static/%252e%252e/%252e%252e/archiver.db",
    b"/media/1/..%2f..%2f..%2foutside-secret.txt",
    b"/media/..%2f..%2foutside-secret.txt/video",
    b"/media/%2e%2e/video",
    b"/clip/1/../../outside-secret.txt",
    b"/camera/1/%2e%2e%2f%2e%2e%2farchiver.db",
    b"/../outside-secret.txt",
    b"/%2e%2e/%2e%2e/outside-secret.txt",
    b"/archive/link-out.txt",
    b"/static/..\\..\\archiver.db",
]


def _leaks(body: bytes) -> bool:
    return SECRET_OUTSIDE.encode() in body or body.startswith(b"SQLite format 3")


@pytest.mark.parametrize("raw", TRAVERSALS, ids=[t.decode() for t in TRAVERSALS])
def test_traversal_attempts_never_serve_a_file_outside_the_archive(app: Any, raw: bytes) -> None:
    r = get(app, raw)
    assert r.status_code in (400, 404, 405), (raw, r.status_code)
    assert not _leaks(r.content)


def test_a_hostile_key_in_the_database_is_not_served(web_archive: WebArchive) -> None:
    """Keys come from the database, and even there a key that leaves the root (or a symlink out of it)
    is refused."""
    engine = open_engine(web_archive.settings)
    app = create_app(web_archive.settings, engine)
    clip = stored_clips(web_archive.settings)[0]
    with session_scope(engine) as s:
        for kind, key in (
            (ObjectKind.preview, "../outside-secret.txt"),
            (ObjectKind.generated_thumbnail, "link-out.txt"),
        ):
            s.add(
                StoredObject(
                    clip_id=clip.id or 0, destination="disk", kind=kind, key=key, size=10, sha256="0" * 64
                )
            )
    try:
        assert get(app, f"/media/{clip.id}/preview").status_code == 404
        thumb = get(app, f"/media/{clip.id}/thumbnail")  # Blink's own thumbnail is preferred, still fine
        assert not _leaks(thumb.content)
        with session_scope(engine) as s:
            own = s.exec(
                select(StoredObject).where(
                    StoredObject.clip_id == clip.id, StoredObject.kind == ObjectKind.thumbnail
                )
            ).one()
            s.delete(own)
        only_link = get(app, f"/media/{clip.id}/thumbnail")
        assert only_link.status_code == 404 and not _leaks(only_link.content)
    finally:
        with session_scope(engine) as s:
            for o in s.exec(select(StoredObject).where(StoredObject.clip_id == clip.id)).all():
                if o.kind in (ObjectKind.preview, ObjectKind.generated_thumbnail):
                    s.delete(o)
        engine.dispose()


# -- a real server: raw traversal lines, bind rule, auth, bounded connections -----------------------------
@pytest.fixture(scope="module")
def live(web_archive: WebArchive) -> Iterator[WebServer]:
    engine = open_engine(web_archive.settings)
    server = WebServer(create_app(web_archive.settings, engine), web_archive.settings.server, "127.0.0.1", 0)
    server.start()
    yield server
    server.stop()
    engine.dispose()


def raw_get(port: int, target: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"GET " + target + b" HTTP/1.1\r\nHost: ui\r\nConnection: close\r\n\r\n")
        out = b""
        while chunk := sock.recv(65536):
            out += chunk
    return out


@pytest.mark.parametrize("raw", TRAVERSALS, ids=[t.decode() for t in TRAVERSALS])
def test_traversal_over_a_real_socket(live: WebServer, raw: bytes) -> None:
    answer = raw_get(live.port, raw)
    status = int(answer.split(b" ", 2)[1])
    assert status in (400, 404, 405), (raw, answer[:200])
    assert not _leaks(answer)


def test_serve_refuses_a_public_bind_without_auth(tmp_path: Path) -> None:
    env = cli_env(tmp_path, _NoSim(), ARCHIVER_SERVER__ENABLED="true")
    r = run_cli(["serve", "--host", "0.0.0.0", "--port", str(free_port())], env, timeout=60)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "without authentication" in lines[0] and "server.auth.password" in lines[0]


def test_serve_answers_pages_and_reports_a_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        r = run_cli(["serve", "--port", str(port)], cli_env(tmp_path, _NoSim()), timeout=60)
    assert r.returncode == 2
    assert r.stderr.startswith(f"error: server.port: 127.0.0.1:{port} is already in use")


class _NoSim:
    url = "http://127.0.0.1:9"


def test_auth_protects_the_ui_but_not_the_probes(web_archive: WebArchive) -> None:
    s = web_archive.settings.model_copy(deep=True)
    s.server = s.server.model_validate(
        {"host": "0.0.0.0", "auth": {"password": "pw-123", "token": "tok-456"}}
    )
    engine = open_engine(s)
    app = create_app(s, engine)
    try:
        for path in ("/", "/status", "/clips", "/static/app.css", "/media/1/video"):
            r = get(app, path)
            assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Basic"), path
            assert "pw-123" not in r.text
        for path in ("/healthz", "/readyz", "/metrics"):
            assert get(app, path).status_code == 200, path
        basic = "Basic " + base64.b64encode(b"archiver:pw-123").decode()
        assert get(app, "/", headers={"Authorization": basic}).status_code == 200
        wrong = "Basic " + base64.b64encode(b"archiver:nope").decode()
        assert get(app, "/", headers={"Authorization": wrong}).status_code == 401
        other_user = "Basic " + base64.b64encode(b"admin:pw-123").decode()
        assert get(app, "/", headers={"Authorization": other_user}).status_code == 401
        assert get(app, "/", headers={"Authorization": "Bearer tok-456"}).status_code == 200
        assert get(app, "/", headers={"Authorization": "Bearer pw-123"}).status_code == 401
        assert get(app, "/", headers={"Authorization": "Basic !!!"}).status_code == 401
        from archiver.web.security import check_bind

        check_bind(s.server, "0.0.0.0")  # allowed: auth is set
    finally:
        engine.dispose()


def test_bind_rule() -> None:
    from archiver.config import ServerSettings
    from archiver.errors import ConfigError
    from archiver.web.security import check_bind

    open_ = ServerSettings()
    assert open_.host == "127.0.0.1"
    for host in ("127.0.0.1", "::1", "localhost", "127.0.0.2"):
        check_bind(open_, host)
    for host in ("0.0.0.0", "::", "192.168.1.10", "example.org"):
        with pytest.raises(ConfigError):
            check_bind(open_, host)
    check_bind(ServerSettings(ui=False), "0.0.0.0")  # probes and metrics only: no archive content


def test_idle_connections_neither_starve_the_server_nor_exhaust_descriptors(tmp_path: Path) -> None:
    """300 idle sockets against a cap of 16: the server holds at most ~16, closes idle ones after the
    timeout, and /healthz keeps answering at once."""
    import subprocess
    import sys

    port = free_port()
    env = cli_env(
        tmp_path,
        _NoSim(),
        ARCHIVER_SERVER__MAX_CONNECTIONS="16",
        ARCHIVER_SERVER__TIMEOUT_S="2",
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", "from archiver.cli import main; main()", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    idle: list[socket.socket] = []
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline and proc.poll() is None, "serve did not start"
            time.sleep(0.2)
        fds = Path(f"/proc/{proc.pid}/fd")
        before = len(list(fds.iterdir()))
        for _ in range(300):
            idle.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        time.sleep(0.5)
        during = len(list(fds.iterdir()))
        assert during - before <= 16 + 4, (before, during)
        t0 = time.monotonic()
        for _ in range(5):
            r = httpx.get(f"{base}/healthz", timeout=5)
            assert r.status_code == 200
        assert time.monotonic() - t0 < 5
        time.sleep(3)  # the deadline closes the idle ones the server still holds
        after = len(list(fds.iterdir()))
        assert after - before <= 2, (before, after)
        assert httpx.get(f"{base}/", timeout=5).status_code == 200
        slow = socket.create_connection(("127.0.0.1", port), timeout=10)  # headers trickled: slowloris
        idle.append(slow)
        slow.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        time.sleep(1)
        slow.sendall(b"X-Slow: 1\r\n")
        t0 = time.monotonic()
        assert slow.recv(100) == b""  # closed by the request deadline, not served
        assert time.monotonic() - t0 < 5
    finally:
        for sock in idle:
            sock.close()
        proc.terminate()
        proc.wait(timeout=15)


def test_every_page_on_sqlite_and_postgresql(tmp_path: Path, database_url: str) -> None:
    """The same pages and keyset paging on both databases (timestamps compare differently)."""
    from helpers import make_settings, run_sync

    from archiver.simulator import SimConfig, Simulator

    with Simulator(SimConfig(two_factor=False)) as sim:
        cam = sim.add_camera(sim.add_network("Home", time_zone="Asia/Tokyo"), "Gate")
        sim.add_clips(cam, 5, size=5_000)
        s = make_settings(tmp_path, sim, database={"url": database_url}, processing={"probe": False})
        assert run_sync(s).stored == 5
    engine = open_engine(s)
    app = create_app(s, engine, page_size=2)
    try:
        home = get(app, "/").text
        assert "Gate" in home and "5 clips" in home
        url, seen = links(home, r"/camera/\d+/\d+")[0], []
        while url:
            page = get(app, url).text
            seen += [int(x.rsplit("/", 1)[1]) for x in links(page, r"/clip/\d+")]
            more = re.search(r'rel="next" href="([^"]+)"', page)
            url = more[1].replace("&amp;", "&") if more else ""
        assert len(seen) == 5 == len(set(seen))
        detail = get(app, f"/clip/{seen[2]}").text
        assert f'href="/clip/{seen[1]}"' in detail and f'href="/clip/{seen[3]}"' in detail
        assert "Asia/Tokyo" in detail
        video = get(app, f"/media/{seen[0]}/video", headers={"Range": "bytes=0-9"})
        assert video.status_code == 206 and len(video.content) == 10
        assert get(app, "/clips?source=cloud").text.count('class="clip"') == 2
        status = get(app, "/status").text
        assert '"Account">default</td>' in status and '"Stored" class="num">5</td>' in status
        for path in [*HOSTILE, f"/clips?before=1-{2**31}", f"/clip/{2**31}", f"/camera/1/{2**40}"]:
            assert get(app, path).status_code in (200, 404), path
    finally:
        engine.dispose()
