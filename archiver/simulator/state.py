"""The stateful model behind the fake Blink cloud, one part per concern:

- ``world.py``: networks, cameras, sync modules, the homescreen (``World``);
- ``oauth.py``: the OAuth sign-in, PINs, tokens and their refresh, edge blocks (``OAuth``);
- ``cloud.py``: cloud clips, their listing, downloads, deletions and forgetting (``CloudMedia``);
- ``commands.py``: commands and their polling (``Commands``);
- ``usb.py``: local storage, manifests and uploads (``LocalStorage``);
- ``common.py``: the error answer, helpers and the ``Context`` (knobs, quirks, one lock) they share.

Everything here is plain Python: the HTTP layer (``server.py``) parses requests, calls a ``SimState``
method and turns its return value (a JSON-able dict, a media body) or a raised ``ApiError`` into an
HTTP response. Every public method takes the one shared lock (``SimState.lock``) so the model can be used
from the request threads and from test code at the same time.

``SimState`` composes the parts and keeps the names the server, tests, the demo and the benchmark use:
each attribute and method below is the part's own (read and written through), so ``sim.state.clips`` is
``sim.state.media.clips``; new code may as well use the parts.
"""

from __future__ import annotations

from typing import Any

from .cloud import CloudClip, CloudMedia
from .commands import Command, Commands
from .common import (
    BUSY,
    MANIFEST_PENDING,
    MEDIA_NOT_FOUND,
    SM_OFFLINE,
    UNAUTHORIZED,
    ApiError,
    Context,
    alnum,
    fmt_ts,
    is_uuid,
    parse_since,
    pkce_challenge,
    utcnow,
)
from .knobs import Faults, SimConfig
from .oauth import REDIRECT_URI, AuthCode, OAuth, OAuthSession, SentPin
from .usb import LocalClip, LocalStorage, Manifest
from .world import Camera, Network, SyncModule, World

__all__ = [
    "BUSY",
    "MANIFEST_PENDING",
    "MEDIA_NOT_FOUND",
    "REDIRECT_URI",
    "SM_OFFLINE",
    "UNAUTHORIZED",
    "ApiError",
    "AuthCode",
    "Camera",
    "CloudClip",
    "Command",
    "Faults",
    "LocalClip",
    "Manifest",
    "Network",
    "OAuthSession",
    "SentPin",
    "SimConfig",
    "SimState",
    "SyncModule",
    "alnum",
    "fmt_ts",
    "is_uuid",
    "parse_since",
    "pkce_challenge",
    "utcnow",
]


class _Via:
    """An attribute or method of ``SimState`` that belongs to one of its parts (read and written there)."""

    def __init__(self, part: str) -> None:
        self.part = part
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: SimState | None, objtype: type | None = None) -> Any:
        if obj is None:
            return self
        return getattr(getattr(obj, self.part), self.name)

    def __set__(self, obj: SimState, value: Any) -> None:
        setattr(getattr(obj, self.part), self.name, value)


class SimState:
    """All simulated account data, sessions, tokens, commands and local storage (the parts, composed)."""

    def __init__(self, config: SimConfig, faults: Faults) -> None:
        self.ctx = Context(config, faults)
        self.world = World(self.ctx)
        self.oauth = OAuth(self.ctx)
        self.media = CloudMedia(self.ctx, self.world)
        self.cmds = Commands(self.ctx, self.world)
        self.usb = LocalStorage(self.ctx, self.world, self.cmds)

    # the shared knobs and lock
    config = _Via("ctx")
    faults = _Via("ctx")
    quirks = _Via("ctx")
    lock = _Via("ctx")

    # world
    networks = _Via("world")
    cameras = _Via("world")
    sync_modules = _Via("world")
    add_network = _Via("world")
    add_camera = _Via("world")
    add_sync_module = _Via("world")
    set_sync_module_online = _Via("world")
    tier_info = _Via("world")
    homescreen = _Via("world")
    camera_thumbnail = _Via("world")

    def remove_camera(self, camera_id: int) -> None:
        """The camera is removed from the account: gone from the homescreen, its cloud clips deleted."""
        with self.lock:
            self.world.remove_camera(camera_id)
            self.media.delete_camera_clips(camera_id)

    # OAuth
    sessions = _Via("oauth")
    codes = _Via("oauth")
    access_tokens = _Via("oauth")
    refresh_tokens = _Via("oauth")
    login_count = _Via("oauth")
    refresh_count = _Via("oauth")
    refresh_attempts = _Via("oauth")
    edge_refusals = _Via("oauth")
    clock = _Via("oauth")
    sent_pins = _Via("oauth")
    oauth_authorize_start = _Via("oauth")
    oauth_signin_page = _Via("oauth")
    oauth_signin = _Via("oauth")
    oauth_verify_2fa = _Via("oauth")
    oauth_authorize_code = _Via("oauth")
    oauth_token = _Via("oauth")
    last_pin = _Via("oauth")
    expire_tokens = _Via("oauth")
    check_auth = _Via("oauth")
    check_account = _Via("oauth")

    # cloud media
    clips = _Via("media")
    deleted_cloud_ids = _Via("media")
    purge_id = _Via("media")
    add_clip = _Via("media")
    add_clips = _Via("media")
    delete_clip = _Via("media")
    forget_oldest_clips = _Via("media")
    clip_body = _Via("media")
    thumbnail_bytes = _Via("media")
    thumbnail_sha256 = _Via("media")
    media_changed = _Via("media")
    download_clip = _Via("media")
    download_thumbnail = _Via("media")
    delete_media = _Via("media")

    # commands
    commands = _Via("cmds")
    command_status = _Via("cmds")
    command_done = _Via("cmds")

    # local storage (USB)
    local_clips = _Via("usb")
    local_aliases = _Via("usb")
    manifests = _Via("usb")
    manifest_by_request = _Via("usb")
    latest_manifest = _Via("usb")
    uploads = _Via("usb")
    deleted_local_ids = _Via("usb")
    add_local_clip = _Via("usb")
    renumber_local_clips = _Via("usb")
    local_clip_body = _Via("usb")
    request_manifest = _Via("usb")
    get_manifest = _Via("usb")
    request_local_clip = _Via("usb")
    download_local_clip = _Via("usb")
    delete_local_clip = _Via("usb")
