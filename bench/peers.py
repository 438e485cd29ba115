"""The peer: blinkpy 0.25 ``download_videos`` against the simulator, in-process or as a whole process.

    python bench/peers.py --sim '{"url": ..., "username": ...}' --dest DIR [--tokens JSON] [--delay 0]

As a whole process it prints one JSON line ``{"secs": download seconds, "login_secs": ...}``. Without
``--tokens`` it logs in the way a user's script does (``Blink.start()``: OAuth v2 sign-in, tier info,
homescreen, networks, cameras), with blinkpy's Blink hosts pointed at the simulator over plain HTTP.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path
from typing import Any


def _point_at(url: str) -> None:
    """Every blinkpy host (OAuth, rest-prod, regional REST) → the simulator (a monkeypatch: blinkpy has no
    setting for it)."""
    from blinkpy import api, auth
    from blinkpy.helpers import util

    for name in dir(api):
        if name.startswith("OAUTH_") and name.endswith("_URL"):
            value = getattr(api, name)
            setattr(api, name, value.replace("https://api.oauth.blink.com", url))
    auth.Auth.get_tier_info.__defaults__ = (f"{url}/api/v1/users/tier_info",)
    auth.Auth.login.__defaults__ = (f"{url}/oauth/token", False)
    original = util.BlinkURLHandler.__init__

    def init(self: Any, region_id: str) -> None:
        original(self, region_id)
        self.base_url = url

    util.BlinkURLHandler.__init__ = init  # type: ignore[method-assign]


async def _download(
    sim: dict[str, Any], tokens: dict[str, Any] | None, path: Path, delay: float, stop: int
) -> dict[str, float]:
    import aiohttp
    from blinkpy.auth import Auth
    from blinkpy.blinkpy import Blink
    from blinkpy.helpers.util import BlinkURLHandler

    url = sim["url"]
    # unsafe=True: accept cookies from an IP address host (the simulator on 127.0.0.1; Blink has names)
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        blink = Blink(session=session)
        t0 = time.perf_counter()
        if tokens is None:
            _point_at(url)
            blink.auth = Auth(
                {"username": sim["username"], "password": sim["password"]}, no_prompt=True, session=session
            )
            await blink.start()
        else:
            auth = blink.auth
            auth.token = tokens["access_token"]
            auth.refresh_token = tokens["refresh_token"]
            auth.expires_in = tokens["expires_in"]
            auth.expiration_date = time.time() + tokens["expires_in"]
            auth.hardware_id = tokens["hardware_id"]
            auth.account_id = sim["account_id"]
            auth.region_id = sim["tier"]
            auth.host = f"{sim['tier']}.immedia-semi.com"
            blink.urls = BlinkURLHandler(sim["tier"])
            blink.urls.base_url = url
            blink.last_refresh = int(time.time())
        t1 = time.perf_counter()
        await blink.download_videos(str(path), since="1970-01-02T00:00:00+00:00", stop=stop, delay=delay)
        return {"login_secs": t1 - t0, "secs": time.perf_counter() - t1}


def blinkpy_download(sim: Any, tokens: dict[str, Any], path: Path, delay: float, stop: int) -> float:
    """In-process (tokens from the simulator's OAuth flow): seconds of ``download_videos``."""
    return asyncio.run(_download(sim.info | {"url": sim.url}, tokens, path, delay, stop))["secs"]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sim", required=True, help="the simulator's info line (JSON)")
    ap.add_argument("--dest", required=True)
    ap.add_argument("--tokens", help="JSON tokens: skip the log-in")
    ap.add_argument("--delay", type=float, default=0.0)
    ap.add_argument("--stop", type=int, default=6)
    args = ap.parse_args()
    tokens = json.loads(args.tokens) if args.tokens else None
    out = asyncio.run(_download(json.loads(args.sim), tokens, Path(args.dest), args.delay, args.stop))
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
