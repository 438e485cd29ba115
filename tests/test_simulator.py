"""The Blink cloud simulator, driven with plain httpx over real loopback HTTP."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import struct
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from archiver.simulator import Faults, SimConfig, Simulator

AID = 1001
REDIRECT = "immedia-blink://applinks.blink.com/signin/callback"


@pytest.fixture
def sim() -> Iterator[Simulator]:
    cfg = SimConfig(page_limit=5, tier="u011", account_id=AID)
    faults = Faults(manifest_ready_after_s=0.2, command_complete_after_s=0.1, upload_delay_s=0.1)
    with Simulator(cfg, faults) as s:
        yield s


@pytest.fixture
def world(sim: Simulator) -> dict[str, int]:
    net = sim.add_network("Home", time_zone="America/Chicago")
    cam = sim.add_camera(net, "Front Door", type="catalina")
    sm = sim.add_sync_module(net, "SM2", local_storage=True, online=True)
    return {"net": net, "cam": cam, "sm": sm}


def pkce() -> tuple[str, str]:
    verifier = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def authorize_params(challenge: str, hardware_id: str) -> dict[str, str]:
    return {
        "app_brand": "blink",
        "app_version": "50.1",
        "client_id": "ios",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "device_brand": "Apple",
        "hardware_id": hardware_id,
        "redirect_uri": REDIRECT,
        "response_type": "code",
        "scope": "client",
    }


def csrf_of(html: str) -> str:
    m = re.search(r'<script id="oauth-args" type="application/json">(.*?)</script>', html)
    assert m, html
    return re.search(r'"csrf-token":\s*"([^"]+)"', m[1])[1]  # type: ignore[index]


def oauth_login(
    sim: Simulator, client: httpx.Client, *, verifier_override: str | None = None
) -> httpx.Response:
    verifier, challenge = pkce()
    hw = str(uuid.uuid4()).upper()
    r = client.get("/oauth/v2/authorize", params=authorize_params(challenge, hw))
    assert r.status_code == 200 and r.url.path == "/oauth/v2/signin"
    csrf = csrf_of(r.text)
    form = {"username": sim.config.username, "password": sim.config.password, "csrf-token": csrf}
    r = client.post("/oauth/v2/signin", data=form, follow_redirects=False)
    if sim.config.two_factor:
        assert r.status_code == 202
        r = client.post("/oauth/v2/2fa/verify", data={"2fa_code": sim.config.pin, "csrf-token": csrf})
        assert r.status_code == 201 and r.json() == {"status": "auth-completed"}
    else:
        assert r.status_code in (301, 302, 303)
    r = client.get("/oauth/v2/authorize", follow_redirects=False)
    assert r.status_code == 302
    location = r.headers["location"]
    assert location.startswith(REDIRECT + "?code=")
    code = re.search(r"code=([^&]+)", location)[1]  # type: ignore[index]
    data = {
        "app_brand": "blink",
        "client_id": "ios",
        "code": code,
        "code_verifier": verifier_override or verifier,
        "grant_type": "authorization_code",
        "hardware_id": hw,
        "redirect_uri": REDIRECT,
        "scope": "client",
    }
    return client.post("/oauth/token", data=data)


def login(sim: Simulator) -> tuple[httpx.Client, dict[str, str], dict]:
    client = httpx.Client(base_url=sim.url, follow_redirects=True, timeout=10)
    r = oauth_login(sim, client)
    assert r.status_code == 200, r.text
    tokens = r.json()
    return client, {"Authorization": f"Bearer {tokens['access_token']}"}, tokens


# ------------------------------------------------------------------------------------------- OAuth
def start_signin(sim: Simulator, client: httpx.Client) -> tuple[httpx.Response, str]:
    _, challenge = pkce()
    r = client.get("/oauth/v2/authorize", params=authorize_params(challenge, str(uuid.uuid4()).upper()))
    csrf = csrf_of(r.text)
    form = {"username": sim.config.username, "password": sim.config.password, "csrf-token": csrf}
    return client.post("/oauth/v2/signin", data=form, follow_redirects=False), csrf


@pytest.mark.parametrize("content_type", ["text/html; charset=utf-8", None])
def test_fresh_pin_per_sign_in_and_the_2fa_content_type_knob(content_type: str | None) -> None:
    with Simulator(SimConfig(pin=None, two_factor_content_type=content_type)) as sim:
        a = httpx.Client(base_url=sim.url, follow_redirects=True)
        b = httpx.Client(base_url=sim.url, follow_redirects=True)
        ra, csrf_a = start_signin(sim, a)
        rb, csrf_b = start_signin(sim, b)
        assert ra.status_code == rb.status_code == 202
        assert ra.headers.get("content-type") == content_type
        assert ra.json()["tsv_methods"] == ["sms"]  # the body is JSON whatever the header says
        (pin_a, pin_b) = (p.pin for p in sim.sent_pins)
        assert re.fullmatch(r"\d{6}", pin_a) and sim.last_pin() == pin_b
        if pin_a != pin_b:  # each sign-in takes only its own PIN
            r = a.post("/oauth/v2/2fa/verify", data={"2fa_code": pin_b, "csrf-token": csrf_a})
            assert r.status_code == 401
        r = a.post("/oauth/v2/2fa/verify", data={"2fa_code": pin_a, "csrf-token": csrf_a})
        assert r.status_code == 201 and r.headers.get("content-type") == content_type
        sim.config.signin_session_ttl_s = 0  # the open sign-in of b has expired
        r = b.post("/oauth/v2/2fa/verify", data={"2fa_code": pin_b, "csrf-token": csrf_b})
        assert r.status_code == 400 and "expired" in r.text


@pytest.mark.parametrize(
    ("refusal", "status"),
    [("edge-406", 406), ("invalid_grant", 400), ("forbidden", 403), ("server-error", 503)],
)
def test_refresh_refusal_knob(sim: Simulator, refusal: str, status: int) -> None:
    _, _, tokens = login(sim)
    sim.config.refresh_refusal = refusal
    form = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"], "client_id": "ios"}
    r = httpx.post(sim.url + "/oauth/token", data=form)
    assert r.status_code == status and sim.refresh_attempts == 1
    if refusal == "invalid_grant":
        assert r.json()["error"] == "invalid_grant"
    sim.config.refresh_refusal = None
    assert httpx.post(sim.url + "/oauth/token", data=form).status_code == 200  # the token still works


def test_oauth_flow_with_2fa(sim: Simulator) -> None:
    client, headers, tokens = login(sim)
    assert tokens["token_type"] == "Bearer" and tokens["expires_in"] == 14400 and tokens["refresh_token"]
    assert sim.login_count == 1
    r = client.get("/api/v1/users/tier_info", headers=headers)
    assert r.json() == {"tier": "u011", "account_id": AID}


def test_oauth_requires_cookies(sim: Simulator) -> None:
    _, challenge = pkce()
    # No cookie jar carried over: a fresh client for each step.
    r = httpx.get(sim.url + "/oauth/v2/authorize", params=authorize_params(challenge, str(uuid.uuid4())))
    assert r.status_code == 302 and "set-cookie" in r.headers
    r = httpx.get(sim.url + "/oauth/v2/signin")
    assert r.status_code == 400 and r.json()["error_cause"] == "empty_cookies"
    r = httpx.post(sim.url + "/oauth/v2/signin", data={"username": "x", "password": "y", "csrf-token": "z"})
    assert r.status_code == 400 and r.json()["error_description"] == "Empty Cookies."


def test_oauth_rejects_bad_input(sim: Simulator) -> None:
    client = httpx.Client(base_url=sim.url, follow_redirects=True)
    _, challenge = pkce()
    r = client.get("/oauth/v2/authorize", params=authorize_params(challenge, "Blinkpy"))
    assert r.status_code == 406 and r.headers["content-type"].startswith("text/plain")
    r = client.get("/oauth/v2/authorize", params=authorize_params(challenge, str(uuid.uuid4())))
    csrf = csrf_of(r.text)
    r = client.post(
        "/oauth/v2/signin", data={"username": "demo@example.com", "password": "x", "csrf-token": csrf}
    )
    assert r.status_code == 401 and r.json()["error"] == "invalid_grant"
    r = client.post(
        "/oauth/v2/signin",
        data={"username": "demo@example.com", "password": "demo-password", "csrf-token": "wrong"},
    )
    assert r.status_code == 400
    form = {"username": "demo@example.com", "password": "demo-password", "csrf-token": csrf}
    assert client.post("/oauth/v2/signin", data=form, follow_redirects=False).status_code == 202
    # no code before the 2FA step
    assert client.get("/oauth/v2/authorize", follow_redirects=False).status_code == 400
    r = client.post("/oauth/v2/2fa/verify", data={"2fa_code": "000000", "csrf-token": csrf})
    assert r.status_code == 401 and r.json()["error"] == "invalid_2fa_code"
    r = client.post("/oauth/token", data={"grant_type": "password", "username": "a", "password": "b"})
    assert r.status_code == 401 and r.json()["error"] == "unsupported_grant_type"


def test_oauth_pkce_checked(sim: Simulator) -> None:
    client = httpx.Client(base_url=sim.url, follow_redirects=True)
    r = oauth_login(sim, client, verifier_override="not-the-verifier")
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    assert sim.login_count == 0


def test_oauth_without_2fa_and_412_variant() -> None:
    with Simulator(SimConfig(two_factor=False)) as sim:
        _, _, tokens = login(sim)
        assert tokens["access_token"]
    with Simulator(SimConfig(two_factor_status=412)) as sim:
        client = httpx.Client(base_url=sim.url, follow_redirects=True)
        _, challenge = pkce()
        r = client.get("/oauth/v2/authorize", params=authorize_params(challenge, str(uuid.uuid4())))
        form = {"username": "demo@example.com", "password": "demo-password", "csrf-token": csrf_of(r.text)}
        assert client.post("/oauth/v2/signin", data=form).status_code == 412


def test_refresh_rotation_and_expiry(sim: Simulator, world: dict[str, int]) -> None:
    client, headers, tokens = login(sim)
    base = {
        "grant_type": "refresh_token",
        "client_id": "ios",
        "scope": "client",
        "hardware_id": str(uuid.uuid4()),
    }
    r = client.post("/oauth/token", data={**base, "refresh_token": tokens["refresh_token"]})
    assert r.status_code == 200
    new = r.json()
    assert new["refresh_token"] != tokens["refresh_token"] and new["access_token"] != tokens["access_token"]
    assert sim.refresh_count == 1 and sim.login_count == 1
    r = client.post("/oauth/token", data={**base, "refresh_token": tokens["refresh_token"]})
    assert r.status_code == 401 and r.json()["error_description"] == "Invalid refresh token"
    r = client.post(
        "/oauth/token", data={**base, "refresh_token": new["refresh_token"], "hardware_id": "Blinkpy"}
    )
    assert r.status_code == 406

    new_headers = {"Authorization": f"Bearer {new['access_token']}"}
    assert client.get(f"/api/v3/accounts/{AID}/homescreen", headers=new_headers).status_code == 200
    sim.expire_tokens()
    for h in (headers, new_headers, {"Authorization": "Bearer nonsense"}, {}):
        r = client.get(f"/api/v3/accounts/{AID}/homescreen", headers=h)
        assert r.status_code == 401 and r.json() == {"message": "Unauthorized Access", "code": 101}


# ------------------------------------------------------------------------------------------- REST
def test_homescreen(sim: Simulator, world: dict[str, int]) -> None:
    client, headers, _ = login(sim)
    for version in ("v3", "v4"):
        hs = client.get(f"/api/{version}/accounts/{AID}/homescreen", headers=headers).json()
        assert hs["account"]["id"] == AID
        assert hs["networks"][0]["time_zone"] == "America/Chicago"
        assert hs["sync_modules"][0]["local_storage_status"] == "active"
        assert hs["cameras"][0]["name"] == "Front Door" and hs["cameras"][0]["type"] == "catalina"
        assert hs["owls"] == [] and hs["doorbells"] == [] and hs["video_stats"]["auto_delete_days"] == 60
    sim.set_sync_module_online(world["sm"], False)
    hs = client.get(f"/api/v3/accounts/{AID}/homescreen", headers=headers).json()
    assert hs["sync_modules"][0]["status"] == "offline"
    assert client.get("/api/v1/nothing/here", headers=headers).status_code == 404


def changed(client: httpx.Client, headers: dict[str, str], since: str, page: int) -> dict:
    r = client.get(
        f"/api/v1/accounts/{AID}/media/changed", params={"since": since, "page": page}, headers=headers
    )
    assert r.status_code == 200, r.text
    return r.json()


def test_media_changed_paging_since_and_tombstones(sim: Simulator, world: dict[str, int]) -> None:
    sim.config.mark_watched_on_download = False
    base = datetime(2026, 1, 1, tzinfo=UTC)
    ids = [sim.add_clip(world["cam"], created_at=base + timedelta(minutes=i)) for i in range(12)]
    client, headers, _ = login(sim)
    epoch = "1970-01-01T00:00:00+0000"
    pages = [changed(client, headers, epoch, p)["media"] for p in (1, 2, 3, 4)]
    assert [len(p) for p in pages] == [5, 5, 2, 0]
    got = [m["id"] for p in pages for m in p]
    assert got == list(reversed(ids))  # newest first
    assert [m["id"] for m in changed(client, headers, epoch, 0)["media"]] == got[:5]
    item = pages[0][0]
    assert item["media"] == f"/api/v2/accounts/{AID}/media/clip/{ids[-1]}.mp4"
    assert item["thumbnail"] == f"/api/v2/accounts/{AID}/media/thumb/{ids[-1]}"
    assert item["created_at"] == "2026-01-01T00:11:00+00:00" and item["time_zone"] == "America/Chicago"
    assert item["deleted"] is False and item["device_name"] == "Front Door"

    # since, in every accepted spelling (raw "+" arrives as a space, "%2B" as "+")
    for since in (
        "2026-01-01T00:09:00+0000",
        "2026-01-01T00:09:00+00:00",
        "2026-01-01T00:09:00Z",
        "2026-01-01T00:09:00.000Z",
    ):
        media = changed(client, headers, since, 1)["media"]
        assert [m["id"] for m in media] == list(reversed(ids[9:]))
    raw = client.get(
        f"/api/v1/accounts/{AID}/media/changed?since=2026-01-01T00:09:00+0000&page=1", headers=headers
    )
    assert len(raw.json()["media"]) == 3
    enc = client.get(
        f"/api/v1/accounts/{AID}/media/changed?since=2026-01-01T00:09:00%2B0000&page=1", headers=headers
    )
    assert len(enc.json()["media"]) == 3

    # a deleted clip reappears as a tombstone with a newer updated_at
    sim.delete_clip(ids[0])
    now = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=5)
    media = changed(client, headers, now.strftime("%Y-%m-%dT%H:%M:%S+0000"), 1)["media"]
    assert [(m["id"], m["deleted"]) for m in media] == [(ids[0], True)]
    assert media[0]["updated_at"] > media[0]["created_at"]

    # delete through the API, both body spellings
    r = client.post(f"/api/v1/accounts/{AID}/media/delete", json={"media_list": [ids[1]]}, headers=headers)
    assert r.json()["deleted_count"] == 1
    r = client.post(
        f"/api/v1/accounts/{AID}/media/delete", json={"media_ids": [ids[2], 999]}, headers=headers
    )
    assert r.json() == {"message": "Clips deleted successfully", "code": 200, "deleted_count": 1}
    assert sim.deleted_cloud_ids == {ids[1], ids[2]}
    r = client.get(f"/api/v2/accounts/{AID}/media/clip/{ids[1]}.mp4", headers=headers)
    assert r.status_code == 404 and r.json()["code"] == 700


def test_clip_and_thumbnail_bytes(sim: Simulator, world: dict[str, int]) -> None:
    m1, m2 = sim.add_clips(world["cam"], 2, size=300_000)
    client, headers, _ = login(sim)
    r = client.get(f"/api/v2/accounts/{AID}/media/clip/{m1}.mp4", headers=headers)
    assert r.status_code == 200 and r.headers["content-type"] == "video/mp4"
    assert int(r.headers["content-length"]) == len(r.content) == 300_000
    assert hashlib.sha256(r.content).hexdigest() == sim.clip_sha256(m1) != sim.clip_sha256(m2)
    assert r.content == sim.clip_bytes(m1)
    size, box = struct.unpack(">I4s", r.content[:8])
    assert box == b"ftyp" and 8 <= size < 64
    # the tail is one free box covering the rest of the file
    assert r.content.find(b"free", len(r.content) - 300_000) > 0

    r = client.get(
        f"/api/v2/accounts/{AID}/media/clip/{m1}.mp4", headers={**headers, "Range": "bytes=100-199"}
    )
    assert r.status_code == 206 and r.content == sim.clip_bytes(m1)[100:200]

    t1 = client.get(f"/api/v2/accounts/{AID}/media/thumb/{m1}", headers=headers)
    t2 = client.get(f"/api/v2/accounts/{AID}/media/thumb/{m2}.jpg", headers=headers)
    assert t1.headers["content-type"] == "image/jpeg" and t1.content[:2] == b"\xff\xd8"
    assert t1.content == sim.thumbnail_bytes(m1) and t1.content != t2.content
    assert hashlib.sha256(t2.content).hexdigest() == sim.thumbnail_sha256(m2)
    r = client.get(f"/api/v2/accounts/{AID}/media/clip/12345.mp4", headers=headers)
    assert r.status_code == 404 and r.json() == {"message": "Media not found", "code": 700}


def test_download_marks_watched(sim: Simulator, world: dict[str, int]) -> None:
    m = sim.add_clip(world["cam"], created_at=datetime(2026, 1, 1, tzinfo=UTC))
    client, headers, _ = login(sim)
    client.get(f"/api/v2/accounts/{AID}/media/clip/{m}.mp4", headers=headers)
    item = changed(client, headers, "2026-06-01T00:00:00+0000", 1)["media"][0]
    assert item["id"] == m and item["watched"] is True and item["updated_at"] > item["created_at"]


def test_large_clip_streams() -> None:
    from archiver.simulator.media import ClipBody

    body = ClipBody("cloud:big", 5 * 1024 * 1024 + 123)
    pieces = list(body.iter_range())
    assert max(len(p) for p in pieces) <= 64 * 1024 and sum(len(p) for p in pieces) == body.size
    assert b"".join(body.iter_range(70_000, 200_000)) == b"".join(pieces)[70_000:200_000]
    assert hashlib.sha256(b"".join(pieces)).hexdigest() == body.sha256()


# ------------------------------------------------------------------------------------ local storage
def wait_command(client: httpx.Client, headers: dict[str, str], net: int, cmd: int) -> dict:
    for _ in range(100):
        status = client.get(f"/network/{net}/command/{cmd}", headers=headers).json()
        if status["complete"]:
            return status
        time.sleep(0.05)
    raise AssertionError("command never completed")


def read_manifest(client: httpx.Client, headers: dict[str, str], base: str, net: int) -> dict:
    r = client.post(f"{base}/manifest/request", headers=headers)
    cmd = r.json()["id"]
    assert r.json()["network_id"] == net
    first = client.get(f"{base}/manifest/request/{cmd}", headers=headers)
    assert first.status_code == 409
    wait_command(client, headers, net, cmd)
    for _ in range(100):
        r = client.get(f"{base}/manifest/request/{cmd}", headers=headers)
        if r.status_code == 200:
            return r.json()
        time.sleep(0.05)
    raise AssertionError("manifest never ready")


def test_local_storage_flow(sim: Simulator, world: dict[str, int]) -> None:
    net, sm, cam = world["net"], world["sm"], world["cam"]
    lc1 = sim.add_local_clip(sm, cam, size=150_000)
    lc2 = sim.add_local_clip(sm, cam, size=3000 + 8 * 1024)
    client, headers, _ = login(sim)
    base = f"/api/v1/accounts/{AID}/networks/{net}/sync_modules/{sm}/local_storage"
    manifest = read_manifest(client, headers, base, net)
    assert manifest["version"] == "1.0"
    clips = {c["id"]: c for c in manifest["clips"]}
    assert set(clips) == {lc1, lc2}
    assert clips[lc1]["size"] == str(-(-150_000 // 1024)) and clips[lc1]["camera_name"] == "FrontDoor"
    mid = manifest["manifest_id"]

    url = f"{base}/manifest/{mid}/clip/request/{lc1}"
    r = client.get(url, headers=headers)
    assert r.status_code == 404 and r.json()["code"] == 700
    cmd = client.post(url, headers=headers).json()["id"]
    # a second upload on the same module while the first is in flight: busy
    r = client.post(f"{base}/manifest/{mid}/clip/request/{lc2}", headers=headers)
    assert r.status_code == 409 and r.json()["code"] == 307
    wait_command(client, headers, net, cmd)
    assert client.get(url, headers=headers).json()["code"] == 700  # upload_delay_s not over yet
    time.sleep(0.15)
    r = client.get(url, headers=headers)
    assert r.status_code == 200 and r.headers["content-type"] == "video/mp4"
    assert hashlib.sha256(r.content).hexdigest() == sim.local_clip_sha256(lc1)
    assert r.content[4:8] == b"ftyp"
    done = client.post(f"/network/{net}/command/{cmd}/done/", headers=headers).json()
    assert done["code"] == 902

    # a newer manifest makes the old manifest id stale
    manifest2 = read_manifest(client, headers, base, net)
    assert manifest2["manifest_id"] != mid
    assert client.get(url, headers=headers).status_code == 404
    r = client.post(f"{base}/manifest/{manifest2['manifest_id']}/clip/delete/{lc2}", headers=headers)
    assert r.status_code == 200
    assert [c["id"] for c in read_manifest(client, headers, base, net)["clips"]] == [lc1]


def test_local_storage_renumber_and_offline(sim: Simulator, world: dict[str, int]) -> None:
    net, sm, cam = world["net"], world["sm"], world["cam"]
    old = [sim.add_local_clip(sm, cam) for _ in range(3)]
    client, headers, _ = login(sim)
    base = f"/api/v1/accounts/{AID}/networks/{net}/sync_modules/{sm}/local_storage"
    m1 = read_manifest(client, headers, base, net)
    sim.renumber_local_clips(sm)
    m2 = read_manifest(client, headers, base, net)
    new = [c["id"] for c in m2["clips"]]
    assert m2["manifest_id"] != m1["manifest_id"] and len(new) == 3 and not set(new) & set(old)
    assert [sim.local_clip_sha256(n) for n in new] == [sim.local_clip_sha256(o) for o in old]

    sim.set_sync_module_online(sm, False)
    r = client.post(f"{base}/manifest/request", headers=headers)
    assert r.status_code == 409 and "offline" in r.json()["message"]


# ------------------------------------------------------------------------------------------- faults
def test_error_rate_and_auth_exempt(sim: Simulator, world: dict[str, int]) -> None:
    m = sim.add_clip(world["cam"])
    client, headers, _ = login(sim)
    sim.faults.error_rate = 1.0
    # OAuth still works while every API call fails
    _, headers2, _ = login(sim)
    for path in (
        f"/api/v3/accounts/{AID}/homescreen",
        f"/api/v1/accounts/{AID}/media/changed?page=1",
        f"/api/v2/accounts/{AID}/media/clip/{m}.mp4",
        "/api/v1/users/tier_info",
    ):
        assert client.get(path, headers=headers2).status_code in (500, 502, 503)
    sim.faults.error_rate = 0.5
    statuses = {client.get("/api/v1/users/tier_info", headers=headers).status_code for _ in range(30)}
    assert 200 in statuses and statuses & {500, 502, 503}


def test_rate_limit(sim: Simulator, world: dict[str, int]) -> None:
    client, headers, _ = login(sim)
    sim.faults.rate_limit_rps = 3
    statuses = [client.get("/api/v1/users/tier_info", headers=headers) for _ in range(6)]
    assert [r.status_code for r in statuses[:3]] == [200, 200, 200]
    limited = [r for r in statuses if r.status_code == 429]
    assert limited and limited[0].headers["retry-after"] == "1"
    time.sleep(1.05)
    assert client.get("/api/v1/users/tier_info", headers=headers).status_code == 200


def test_reset_truncate_garbage(sim: Simulator, world: dict[str, int]) -> None:
    m = sim.add_clip(world["cam"], size=200_000)
    _, headers, _ = login(sim)
    url = f"{sim.url}/api/v2/accounts/{AID}/media/clip/{m}.mp4"

    sim.faults.reset_rate = 1.0
    with pytest.raises(httpx.TransportError):
        httpx.get(url, headers=headers)
    sim.faults.reset_rate = 0.0
    assert sim.requests[-1].status == 0

    sim.faults.truncate_rate = 1.0
    with pytest.raises(httpx.TransportError):
        httpx.get(url, headers=headers)
    sim.faults.truncate_rate = 0.0

    sim.faults.garbage_rate = 1.0
    bodies = [httpx.get(url, headers=headers) for _ in range(8)]
    assert all(r.status_code == 200 for r in bodies)
    assert {len(r.content) for r in bodies} <= {20, len(b'{"message": "Media not found", "code": 700}')}
    assert any(r.headers["content-type"] == "application/json" for r in bodies)
    sim.faults.garbage_rate = 0.0
    r = httpx.get(url, headers=headers)
    assert hashlib.sha256(r.content).hexdigest() == sim.clip_sha256(m)


def test_busy_rate_and_hooks(sim: Simulator, world: dict[str, int]) -> None:
    client, headers, _ = login(sim)
    base = f"/api/v1/accounts/{AID}/networks/{world['net']}/sync_modules/{world['sm']}/local_storage"
    sim.faults.busy_rate = 1.0
    r = client.post(f"{base}/manifest/request", headers=headers)
    assert r.status_code == 409 and r.json() == {"message": "System is busy, please wait", "code": 307}
    sim.faults.busy_rate = 0.0

    seen: list[tuple[str, str]] = []
    sim.on_request = lambda method, path: seen.append((method, path))
    sim.reset_requests()
    client.get("/api/v1/users/tier_info", headers=headers)
    assert seen == [("GET", "/api/v1/users/tier_info")]
    assert sim.request_count("tier_info") == 1 and sim.request_count(method="POST") == 0


def test_latency_and_bandwidth(sim: Simulator, world: dict[str, int]) -> None:
    m = sim.add_clip(world["cam"], size=40_000)
    client, headers, _ = login(sim)
    sim.faults.latency_s = 0.1
    sim.faults.bandwidth_bps = 200_000
    t0 = time.perf_counter()
    r = client.get(f"/api/v2/accounts/{AID}/media/clip/{m}.mp4", headers=headers)
    elapsed = time.perf_counter() - t0
    assert r.status_code == 200 and elapsed >= 0.25
    time.sleep(0.05)  # the record's duration is finalised just after the last byte is written
    assert sim.requests[-1].path.endswith(".mp4") and sim.requests[-1].duration >= 0.25
