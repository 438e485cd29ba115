"""The ASGI application: the web UI (cameras, camera, clip, filters, status), the media it plays, and the
worker's /healthz, /readyz and /metrics. Read-only: every route is a GET (or HEAD)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import jinja2
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy.engine import Engine
from sqlmodel import Session
from starlette.applications import Starlette
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from archiver.config import Settings
from archiver.db.models import ClipSource, ObjectKind
from archiver.metrics import Metrics, ReadyCheck, database_ready
from archiver.web import queries
from archiver.web.media import MediaReader, flatten
from archiver.web.queries import THUMB_KINDS, VIDEO_KINDS, ClipFilter, LoginCheck
from archiver.web.security import AuthMiddleware

HERE = Path(__file__).parent
log = logging.getLogger("archiver.web")
CSP = (
    "default-src 'self'; img-src 'self'; media-src 'self'; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


class SecurityHeaders:
    """Every answer: same-origin only (CSP), no framing, no referrer, no sniffing."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                h = MutableHeaders(scope=message)
                h.setdefault("Content-Security-Policy", CSP)
                h.setdefault("X-Frame-Options", "DENY")
                h.setdefault("Referrer-Policy", "no-referrer")
                h.setdefault("X-Content-Type-Options", "nosniff")
            await send(message)

        await self.app(scope, receive, wrapped)


# -- formatting helpers for the templates ----------------------------------------------------------------
def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    s = round(seconds)
    return f"{s // 60}:{s % 60:02d}"


def fmt_bytes(n: int | None) -> str:
    if n is None:
        return ""
    size = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{n} B"


def fmt_day(d: date) -> str:
    today = date.today()
    if d == today:
        return "Today"
    if (today - d).days == 1:
        return "Yesterday"
    return d.strftime("%A, %-d %B %Y")


def fmt_time(ts: datetime | None, with_date: bool = False) -> str:
    if ts is None:
        return "never"
    return ts.strftime("%Y-%m-%d %H:%M" if with_date else "%H:%M:%S")


def fmt_zoned(ts: datetime | None, with_date: bool = True) -> str:
    """A time with its zone's abbreviation ("2026-12-05 20:49 CST"); naive or UTC times say UTC."""
    if ts is None:
        return "never"
    return f"{fmt_time(ts, with_date)} {ts.tzname() or 'UTC'}"


def fmt_ago(ts: datetime | None) -> str:
    if ts is None:
        return ""
    from datetime import UTC

    seconds = (datetime.now(UTC) - queries.aware(ts)).total_seconds()
    if seconds < 0:
        minutes = round(-seconds / 60)
        return f"in {minutes} min" if minutes < 120 else f"in {round(minutes / 60)} h"
    if seconds < 90:
        return "just now"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} min ago"
    if seconds < 36 * 3600:
        return f"{round(seconds / 3600)} h ago"
    return f"{round(seconds / 86400)} days ago"


def _templates() -> Jinja2Templates:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        duration=fmt_duration, bytes=fmt_bytes, day=fmt_day, clock=fmt_time, zoned=fmt_zoned, ago=fmt_ago
    )
    return Jinja2Templates(env=env)


MAX_ID = queries.MAX_ID


def _path_id(request: Request, name: str) -> int:
    value = int(request.path_params[name])
    if value > MAX_ID:
        raise HTTPException(404)
    return value


def _int(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() and len(value) < 12 and int(value) <= MAX_ID else None


def _date(value: str | None) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return None


def _bounded(value: str | None, low: int, high: int, default: int) -> int:
    try:
        n = int(value or "")
    except ValueError:
        return default
    return n if low <= n <= high else default


def _source(value: str | None) -> ClipSource | None:
    return {"cloud": ClipSource.cloud, "usb": ClipSource.local, "local": ClipSource.local}.get(
        (value or "").lower()
    )


def _tag(value: str | None) -> str | None:
    text = (value or "").strip().lower()
    return text[:40] if text else None


def _activity(value: str | None) -> float | None:
    """A minimum activity 0-1 (anything else: no minimum)."""
    try:
        n = float(value or "")
    except ValueError:
        return None
    return n if 0.0 < n <= 1.0 else None


def _filter(
    q: Mapping[str, str], account_id: int | None, camera_id: int | None, tz_name: str | None = None
) -> ClipFilter:
    """The clip filter a page's query string asks for (unknown values are ignored, never an error)."""
    return ClipFilter(
        account_id=account_id,
        camera_id=camera_id,
        source=_source(q.get("source")),
        start=_date(q.get("from")),
        end=_date(q.get("to")),
        tz_name=tz_name,
        tag=_tag(q.get("tag")),
        min_activity=_activity(q.get("min_activity")),
    )


class WebApp:
    """Holds what the routes need; ``app`` is the Starlette application."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        *,
        metrics: Metrics | None = None,
        ready: ReadyCheck | None = None,
        login_check: LoginCheck | None = None,
        destinations: list[Any] | None = None,
        page_size: int = queries.PAGE_SIZE,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.metrics = metrics or Metrics(engine)
        self.ready = ready or (lambda: database_ready(engine))
        self.login_check = login_check or queries.login_needed
        self.page_size = page_size
        if destinations is None:
            from archiver.destinations import build_destinations

            destinations = build_destinations(settings) if settings.server.ui else []
        self.media = MediaReader(destinations)
        self.destinations = list(destinations)
        self.templates = _templates()
        routes: list[Route | Mount] = [
            Route("/healthz", self.healthz, methods=["GET", "HEAD"]),
            Route("/readyz", self.readyz, methods=["GET", "HEAD"]),
            Route("/metrics", self.metrics_page, methods=["GET"]),
        ]
        if settings.server.ui:
            routes += [
                Route("/", self.cameras_page, methods=["GET", "HEAD"]),
                Route("/camera/{account_id:int}/{camera_id:int}", self.camera_page, methods=["GET", "HEAD"]),
                Route("/clips", self.clips_page, methods=["GET", "HEAD"]),
                Route("/clip/{clip_id:int}", self.clip_page, methods=["GET", "HEAD"]),
                Route("/clip/key/{key:path}", self.clip_by_key, methods=["GET", "HEAD"]),
                Route("/media/{clip_id:int}/{what:str}", self.media_file, methods=["GET", "HEAD"]),
                Route("/status", self.status_page, methods=["GET", "HEAD"]),
                Route("/export", self.export_zip, methods=["GET"]),
                Route("/timeline", self.timeline_page, methods=["GET", "HEAD"]),
                Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
            ]
        self.app: ASGIApp = Starlette(
            routes=routes,
            exception_handlers={HTTPException: self.error},  # type: ignore[dict-item]
        )
        if settings.server.auth.configured:
            self.app = AuthMiddleware(self.app, settings.server.auth)
        self.app = SecurityHeaders(self.app)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)

    # -- helpers ---------------------------------------------------------------------------------------
    async def db(self, fn: Callable[..., Any], *args: Any) -> Any:
        def run() -> Any:
            with Session(self.engine) as s:
                return fn(s, *args)

        return await run_in_threadpool(run)

    def render(self, request: Request, name: str, status_code: int = 200, **ctx: Any) -> Response:
        response = self.templates.TemplateResponse(request, name, ctx, status_code=status_code)
        response.headers["Cache-Control"] = "no-store"
        return response

    async def error(self, request: Request, exc: HTTPException) -> Response:
        if not self.settings.server.ui or exc.status_code != 404:
            return PlainTextResponse(f"{exc.detail}\n", status_code=exc.status_code)
        return self.render(request, "error.html", 404, nav="", title="Not found", message="Nothing here.")

    # -- probes ----------------------------------------------------------------------------------------
    async def healthz(self, request: Request) -> Response:
        return PlainTextResponse("ok\n")

    async def readyz(self, request: Request) -> Response:
        try:
            ok, reason = await run_in_threadpool(self.ready)
        except Exception as exc:  # the check itself broke
            ok, reason = False, f"readiness check failed: {type(exc).__name__}"
        line = reason.splitlines()[0] if reason else ""
        return PlainTextResponse(line + "\n", status_code=200 if ok else 503)

    async def metrics_page(self, request: Request) -> Response:
        body = await run_in_threadpool(self.metrics.render)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    # -- pages -----------------------------------------------------------------------------------------
    async def cameras_page(self, request: Request) -> Response:
        groups = await self.db(queries.cameras)
        return self.render(request, "cameras.html", nav="cameras", title="Cameras", groups=groups)

    async def camera_page(self, request: Request) -> Response:
        account_id = _path_id(request, "account_id")
        camera_id = _path_id(request, "camera_id")
        title = await self.db(queries.camera_title, account_id, camera_id)
        if title is None:
            raise HTTPException(404)
        name, network, tz_name = title
        q = request.query_params
        flt = _filter(q, account_id, camera_id, tz_name)
        page = await self.db(queries.clip_page, flt, q.get("before"), self.page_size)
        failed = [] if q.get("before") else await self.db(queries.camera_failed, account_id, camera_id)
        tags = await self.db(queries.tag_labels)
        return self.render(
            request,
            "camera.html",
            failed=failed,
            tz_name=tz_name or "UTC",
            nav="cameras",
            title=name,
            camera=name,
            network=network,
            page=page,
            flt=flt,
            tags=tags,
            base=request.url.path,
            query=_keep(q, ("source", "from", "to", "tag", "min_activity")),
            export_query=_export_query(name, network, flt),
            day_zip=_export_query(name, network, ClipFilter()),
        )

    async def clips_page(self, request: Request) -> Response:
        q = request.query_params
        account_id = camera_id = None
        acc, _, cam = (q.get("camera") or "").partition(":")
        if _int(acc) is not None and _int(cam) is not None:
            account_id, camera_id = _int(acc), _int(cam)
        flt = _filter(q, account_id, camera_id)
        found = await self.db(queries.find_page, flt, q.get("before"), self.page_size)
        page, choices, tz_name = found.page, found.choices, found.tz_name
        return self.render(
            request,
            "clips.html",
            nav="clips",
            title="Find clips",
            page=page,
            flt=flt,
            choices=choices,
            tags=found.tags,
            selected=q.get("camera") or "",
            tz_label=", ".join(found.zones) or "UTC",
            one_zone=tz_name is not None,
            base=request.url.path,
            query=_keep(q, ("camera", "source", "from", "to", "tag", "min_activity")),
        )

    async def clip_by_key(self, request: Request) -> Response:
        """The clip page by archive key (the stable link Home Assistant's events carry): a redirect."""
        key = request.path_params["key"]
        clip_id = await self.db(queries.clip_id_for_key, key) if 0 < len(key) <= 1024 else None
        if clip_id is None:
            raise HTTPException(404)
        return RedirectResponse(f"/clip/{clip_id}", status_code=302)

    async def clip_page(self, request: Request) -> Response:
        detail = await self.db(queries.clip_detail, _path_id(request, "clip_id"))
        if detail is None:
            raise HTTPException(404)
        sidecars = [o for o in detail.objects if o.kind == ObjectKind.sidecar]
        doc = await self.media.read_json(sidecars) if sidecars else None
        video = next((o for o in detail.objects if o.kind in VIDEO_KINDS), None)
        missing = None
        if video is not None and not await run_in_threadpool(self._readable, detail.objects):
            missing = ", ".join(
                f"{o.key} in {o.destination}" for o in detail.objects if o.kind in VIDEO_KINDS
            )
            log.warning("clip %s: its video is missing from every destination (%s)", detail.item.id, missing)
        return self.render(
            request,
            "clip.html",
            nav="cameras",
            title=f"{detail.item.camera} {fmt_time(detail.item.at, True)}",
            d=detail,
            c=detail.item,
            meta=flatten(doc) if doc else [],
            video=video,
            missing=missing,
            has_thumb=detail.item.has_thumb,
        )

    def _readable(self, objects: list[queries.MediaObject]) -> bool:
        """Whether some destination still holds one of the clip's videos (a cheap stat, no read)."""
        by_name = {d.name: d for d in self.destinations}
        checked = False
        for o in objects:
            dest = by_name.get(o.destination)
            if o.kind not in VIDEO_KINDS or dest is None:
                continue
            checked = True
            try:
                if dest.stat(o.key) is not None:
                    return True
            except Exception:  # unreachable: not known to be missing
                return True
        return not checked

    async def media_file(self, request: Request) -> Response:
        clip_id = _path_id(request, "clip_id")
        what = request.path_params["what"]
        kinds = {
            "video": VIDEO_KINDS,
            "download": VIDEO_KINDS,
            "thumbnail": THUMB_KINDS,
            "preview": (ObjectKind.preview,),
            "summary": ("daily_summary",),
        }.get(what)
        if kinds is None:
            raise HTTPException(404)
        clip = await self.db(queries.stored_clip, clip_id)
        if clip is None:
            raise HTTPException(404)
        objects = await self.db(queries.media_objects, clip_id)
        wanted = sorted((o for o in objects if o.kind in kinds), key=lambda o: kinds.index(o.kind))
        name = None
        if what == "download" and wanted:
            at = queries.local(clip.created_at, clip.time_zone).strftime("%Y-%m-%d_%H-%M-%S")
            suffix = Path(wanted[0].key).suffix or ".mp4"
            name = f"{clip.camera_name or 'clip'}_{at}{suffix}"
        response = await run_in_threadpool(self.media.response, request, wanted, download_name=name)
        if response.status_code == 404:
            log.warning(
                "clip %s: no destination could serve its %s (%s): run `archiver verify --repair`",
                clip_id,
                what,
                ", ".join(f"{o.key} in {o.destination}" for o in wanted) or "none recorded",
            )
        return response

    async def timeline_page(self, request: Request) -> Response:
        """One local day (or a window of it: ``from`` hour, ``hours``) of every camera on one axis."""
        q = request.query_params
        today = await self.db(queries.today_in)
        day = _date(q.get("day")) or today
        start_hour = _bounded(q.get("from"), -24, 23, 0)
        hours = _bounded(q.get("hours"), 1, 48, 24)
        try:
            prev_day, next_day = day - timedelta(days=1), day + timedelta(days=1)
        except OverflowError:
            raise HTTPException(404) from None
        flt = _filter(q, None, None)
        tl = await self.db(queries.timeline, day, start_hour, hours, flt)
        step = 3 if hours > 12 else (2 if hours > 6 else 1)
        ticks = [f"{(start_hour + h) % 24:02d}:00" for h in range(0, hours, step)]
        span = "" if (start_hour, hours) == (0, 24) else f"&from={start_hour}&hours={hours}"
        narrowed = _keep(q, ("tag", "min_activity"))  # the day links keep the filter
        window = span + (f"&{narrowed}" if narrowed else "")
        now_hour = datetime.now(queries.zone(tl.zones[0].split(" ")[0] if tl.zones else None)).hour
        return self.render(
            request,
            "timeline.html",
            nav="timeline",
            title=f"Timeline {day.isoformat()}",
            t=tl,
            flt=flt,
            narrowed=narrowed,
            span=span,
            ticks=ticks,
            step=step,
            window=window,
            prev_day=prev_day.isoformat(),
            next_day=next_day.isoformat(),
            now_hour=now_hour,
            today=today.isoformat(),
        )

    async def export_zip(self, request: Request) -> Response:
        """The selected clips as one zip (originals, thumbnails, sidecars, manifest.csv, SHA256SUMS),
        streamed while it is read from the first destination: no copy of the whole zip anywhere."""
        from archiver.export import ExportError, pick_destination, plan, zip_chunks, zip_name

        try:
            sel = _selection(request.query_params)
            dest = pick_destination(self.destinations, request.query_params.get("destination"))
            chosen = await self.db(plan, sel, dest.name)
        except ExportError as exc:
            return self.render(
                request, "error.html", 400, nav="", title="Nothing to export", message=str(exc)
            )
        chunks = zip_chunks(chosen, dest, selection=sel.describe())
        return StreamingResponse(
            iterate_in_threadpool(chunks),
            media_type="application/zip",
            headers={
                "Content-Disposition": f'attachment; filename="{zip_name(sel)}"',
                "Cache-Control": "no-store",
            },
        )

    async def status_page(self, request: Request) -> Response:
        page = await self.db(queries.status, self.login_check)
        return self.render(request, "status.html", nav="status", title="Status", s=page)


def _selection(q: Any) -> Any:
    """The export selection a query string asks for (``camera`` and ``clip`` repeatable)."""
    from archiver.export import Selection, parse_bound

    ids = [int(v) for v in q.getlist("clip") if _int(v) is not None]
    return Selection(
        cameras=[v for v in q.getlist("camera") if v.strip()][:50],
        network=q.get("network") or None,
        start=parse_bound(q["from"], end=False) if q.get("from") else None,
        end=parse_bound(q["to"], end=True) if q.get("to") else None,
        source=(_source(q.get("source")) or None),
        clip_ids=ids,
        tags=[t for t in (_tag(v) for v in q.getlist("tag")) if t][:20],
        min_activity=_activity(q.get("min_activity")),
    )


def _export_query(camera: str, network: str, flt: ClipFilter) -> str:
    from urllib.parse import urlencode

    pairs = [("camera", camera), ("network", network)]
    if flt.start:
        pairs.append(("from", flt.start.isoformat()))
    if flt.end:
        pairs.append(("to", flt.end.isoformat()))
    if flt.source:
        pairs.append(("source", flt.source.value))
    if flt.tag:
        pairs.append(("tag", flt.tag))
    if flt.min_activity:
        pairs.append(("min_activity", f"{flt.min_activity:g}"))
    return urlencode(pairs)


def _keep(params: Any, names: tuple[str, ...]) -> str:
    from urllib.parse import urlencode

    return urlencode([(k, params[k]) for k in names if params.get(k)])


def create_app(settings: Settings, engine: Engine, **kw: Any) -> WebApp:
    return WebApp(settings, engine, **kw)
