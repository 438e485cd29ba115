"""The routes of the simulated Blink cloud, grouped by concern (OAuth sign-in, the world, cloud media,
local storage, commands). Each parses its request, calls the model (``sim.state``) and shapes the answer;
an ``ApiError`` raised on the way becomes the error answer (``Simulator._handle``)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .common import ApiError
from .media import asset_jpeg, asset_mp4
from .quirks import gzip_json
from .wire import Request, Response, media_response

if TYPE_CHECKING:
    from .server import Simulator

SESSION_COOKIE = "blink_sim_session"

Handler = Callable[["Simulator", Request, "re.Match[str]"], Response]
ROUTES: list[tuple[str, re.Pattern[str], Handler, str]] = []


def route(method: str, pattern: str, kind: str = "api") -> Callable[[Handler], Handler]:
    """Register a handler; ``kind`` is "auth" (the OAuth sign-in) or "api" (REST and media)."""

    def deco(fn: Handler) -> Handler:
        ROUTES.append((method, re.compile(pattern + r"/?$"), fn, kind))
        return fn

    return deco


def is_auth_path(path: str) -> bool:
    return path.startswith("/oauth/")


def authed(sim: Simulator, req: Request, m: re.Match[str] | None = None) -> None:
    auth = req.headers.get("Authorization") or ""
    bearer = auth[7:].strip() if auth[:7].lower() == "bearer " else None
    sim.state.check_auth(bearer)
    if m is not None and "aid" in m.groupdict():
        sim.state.check_account(int(m["aid"]))


# ---------------------------------------------------------------------------------------------- OAuth
@route("GET", r"/oauth/v2/authorize", "auth")
def _authorize(sim: Simulator, req: Request, m: re.Match[str]) -> Response:
    if req.raw_query:
        sid, location = sim.state.oauth_authorize_start(req.query)
        cookie = f"{SESSION_COOKIE}={sid}; Path=/; HttpOnly; SameSite=Lax"
        return Response(302, b"", None, {"Location": location, "Set-Cookie": cookie})
    location = sim.state.oauth_authorize_code(req.cookie(SESSION_COOKIE))
    return Response(302, b"", None, {"Location": location})


@route("GET", r"/oauth/v2/signin", "auth")
def _signin_page(sim: Simulator, req: Request, m: re.Match[str]) -> Response:
    html = sim.state.oauth_signin_page(req.cookie(SESSION_COOKIE))
    return Response(200, html.encode(), "text/html; charset=utf-8")


@route("POST", r"/oauth/v2/signin", "auth")
def _signin(sim: Simulator, req: Request, m: re.Match[str]) -> Response:
    status, body = sim.state.oauth_signin(req.cookie(SESSION_COOKIE), req.form())
    if body is None:
        return Response(status, b"", None, {"Location": "/oauth/v2/authorize"})
    return _two_factor_answer(sim, body, status)


@route("POST", r"/oauth/v2/2fa/verify", "auth")
def _verify_2fa(sim: Simulator, req: Request, m: re.Match[str]) -> Response:
    return _two_factor_answer(sim, sim.state.oauth_verify_2fa(req.cookie(SESSION_COOKIE), req.form()), 201)


def _two_factor_answer(sim: Simulator, body: dict[str, Any], status: int) -> Response:
    """A JSON body served with the Content-Type the knob says (the real one is unpublished)."""
    return Response(status, json.dumps(body).encode(), sim.config.two_factor_content_type)


@route("POST", r"/oauth/token", "auth")
def _token(sim: Simulator, req: Request, m: re.Match[str]) -> Response:
    data = sim.state.oauth_token(req.form(), req.headers.get("hardware_id"))
    return Response.json(data, headers={"Cache-Control": "no-store"})


# ------------------------------------------------------------------------------------------- world
@route("GET", r"/api/v1/users/tier_info")
def _tier_info(sim: Simulator, req: Request, m: re.Match[str]) -> Response:
    authed(sim, req)
    return Response.json(sim.state.tier_info())


@route("GET", r"/api/v[34]/accounts/(?P<aid>\d+)/homescreen")
def _homescreen(sim: Simulator, req: Request, m: re.Match[str]) -> Response:
    authed(sim, req, m)
    headers = {"User-Id": str(sim.config.user_id)}
    return Response.json(sim.state.homescreen(), headers=headers)


@route("GET", r"/api/v3/media/accounts/(?P<aid>\d+)/networks/\d+/\w+/(?P<cid>\d+)/thumbnail/thumbnail\.jpg")
def _camera_thumb(sim: Simulator, req: Request, m: re.Match[str]) -> Response:
    authed(sim, req, m)
    return Response(200, sim.state.camera_thumbnail(int(m["cid"])), "image/jpeg", media=True)


# ------------------------------------------------------------------------------------- cloud media
@route("GET", r"/api/v1/accounts/(?P<aid>\d+)/media/changed")
def _media_changed(sim: Simulator, req: Request, m: re.Match[str]) -> Response:
    authed(sim, req, m)
    try:
        page = int(req.query.get("page", "1") or "1")
    except ValueError:
        raise ApiError(400, {"message": "Invalid page", "code": 400}) from None
    data = sim.state.media_changed(req.query.get("since"), page)
    q = sim.quirks
    headers = {"Date": q.listing_date} if q.listing_date else {}
    if q.listing_padding:
        headers["Content-Encoding"] = "gzip"
        return Response(200, gzip_json(data, q.listing_padding), "application/json", headers)
    return Response.json(data, headers=headers)


@route("GET", r"/api/v2/accounts/(?P<aid>\d+)/media/clip/(?P<mid>\d+)\.mp4")
def _clip(sim: Simulator, req: Request, m: re.Match[str]) -> Response:
    authed(sim, req, m)
    mid, q = int(m["mid"]), sim.quirks
    if mid in q.forbidden_ids:
        raise ApiError(403, {"message": "Forbidden", "code": 403})
    body = sim.state.download_clip(mid)
    if q.redirect_media:
        return Response(302, b"", None, {"Location": f"{sim.cdn.url}/cdn/clip/{mid}.mp4?sig=s1"})
    if mid in q.endless_ids:
        return Response(200, asset_mp4(), "video/mp4", endless=True)
    resp = media_response(req, body)
    if mid in q.trickle_ids:
        resp.bps = q.trickle_bps
    return resp


@route("GET", r"/api/v2/accounts/(?P<aid>\d+)/media/thumb/(?P<mid>\d+)(?:_s)?(?:\.jpg)?")
def _thumb(sim: Simulator, req: Request, m: re.Match[str]) -> Response:
    authed(sim, req, m)
    mid, q = int(m["mid"]), sim.quirks
    if mid in q.missing_thumbnail_ids:
        raise ApiError(404, {"message": "Not Found", "code": 404})
    body = sim.state.download_thumbnail(mid)
    if q.redirect_media:
        return Response(302, b"", None, {"Location": f"{sim.cdn.url}/cdn/thumb/{mid}.jpg?sig=s1"})
    if mid in q.huge_thumbnail_ids:
        body = asset_jpeg() + b"\0" * q.huge_thumbnail_bytes
    return Response(200, body, "image/jpeg", media=True)


@route("POST", r"/api/v1/accounts/(?P<aid>\d+)/media/delete")
def _media_delete(sim: Simulator, req: Request, m: re.Match[str]) -> Response:
    authed(sim, req, m)
    data = req.json()
    ids = data.get("media_list") or data.get("media_ids") or []
    if not isinstance(ids, list):
        raise ApiError(400, {"message": "media_list must be a list", "code": 400})
    return Response.json(sim.state.delete_media(ids))


# ----------------------------------------------------------------------------------- local storage
_LS = r"/api/v1/accounts/(?P<aid>\d+)/networks/(?P<nid>\d+)/sync_modules/(?P<sid>\d+)/local_storage"


@route("POST", _LS + r"/manifest/request")
def _ls_manifest_request(sim: Simulator, req: Request, m: re.Match[str]) -> Response:
    authed(sim, req, m)
    return Response.json(sim.state.request_manifest(int(m["nid"]), int(m["sid"])))


@route("GET", _LS + r"/manifest/request/(?P<rid>\d+)")
def _ls_manifest_get(sim: Simulator, req: Request, m: re.Match[str]) -> Response:
    authed(sim, req, m)
    return Response.json(sim.state.get_manifest(int(m["nid"]), int(m["sid"]), int(m["rid"])))


@route("POST", _LS + r"/manifest/(?P<mid>[^/]+)/clip/request/(?P<cid>[^/]+)")
def _ls_clip_request(sim: Simulator, req: Request, m: re.Match[str]) -> Response:
    authed(sim, req, m)
    return Response.json(sim.state.request_local_clip(int(m["nid"]), int(m["sid"]), m["mid"], m["cid"]))


@route("GET", _LS + r"/manifest/(?P<mid>[^/]+)/clip/request/(?P<cid>[^/]+)")
def _ls_clip_get(sim: Simulator, req: Request, m: re.Match[str]) -> Response:
    authed(sim, req, m)
    body = sim.state.download_local_clip(int(m["nid"]), int(m["sid"]), m["mid"], m["cid"])
    return media_response(req, body)


@route("POST", _LS + r"/manifest/(?P<mid>[^/]+)/clip/delete/(?P<cid>[^/]+)")
def _ls_clip_delete(sim: Simulator, req: Request, m: re.Match[str]) -> Response:
    authed(sim, req, m)
    return Response.json(sim.state.delete_local_clip(int(m["nid"]), int(m["sid"]), m["mid"], m["cid"]))


# ---------------------------------------------------------------------------------------- commands
@route("GET", r"/network/(?P<nid>\d+)/command/(?P<cmd>\d+)")
def _command(sim: Simulator, req: Request, m: re.Match[str]) -> Response:
    authed(sim, req)
    return Response.json(sim.state.command_status(int(m["nid"]), int(m["cmd"])))


@route("POST", r"/network/(?P<nid>\d+)/command/(?P<cmd>\d+)/done")
def _command_done(sim: Simulator, req: Request, m: re.Match[str]) -> Response:
    authed(sim, req)
    return Response.json(sim.state.command_done(int(m["nid"]), int(m["cmd"])))
