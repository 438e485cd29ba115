"""The simulated account's world: networks, cameras and sync modules, and the homescreen that lists them."""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from typing import Any

from .common import ApiError, Context, Part, fmt_ts, utcnow
from .media import thumbnail_bytes


@dataclass
class Network:
    id: int
    name: str
    time_zone: str
    dst: bool = True
    armed: bool = False


@dataclass
class Camera:
    id: int
    network_id: int
    name: str
    type: str
    serial: str
    removed: bool = False  # removed from the account: gone from the homescreen


@dataclass
class SyncModule:
    id: int
    network_id: int
    name: str
    serial: str
    local_storage: bool
    online: bool
    renumber_pending: bool = False


class World(Part):
    """Networks, cameras and sync modules (ids as Blink numbers them)."""

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.networks: dict[int, Network] = {}
        self.cameras: dict[int, Camera] = {}
        self.sync_modules: dict[int, SyncModule] = {}
        self._network_ids = itertools.count(2000001)
        self._sync_module_ids = itertools.count(3000001)
        self._camera_ids = itertools.count(4000001)

    # ------------------------------------------------------------------ building
    def add_network(self, name: str, time_zone: str = "America/Chicago") -> int:
        with self.lock:
            nid = next(self._network_ids)
            self.networks[nid] = Network(nid, name, time_zone)
            return nid

    def add_camera(self, network_id: int, name: str, type: str = "catalina") -> int:
        with self.lock:
            self.network(network_id)
            cid = next(self._camera_ids)
            self.cameras[cid] = Camera(cid, network_id, name, type, serial=f"G8T1{cid:08d}")
            return cid

    def add_sync_module(
        self, network_id: int, name: str = "SM2", local_storage: bool = True, online: bool = True
    ) -> int:
        with self.lock:
            self.network(network_id)
            sid = next(self._sync_module_ids)
            self.sync_modules[sid] = SyncModule(
                sid, network_id, name, f"G8S1{sid:08d}", local_storage, online
            )
            return sid

    def remove_camera(self, camera_id: int) -> None:
        """Gone from the homescreen (its clips are the media part's business)."""
        with self.lock:
            self.camera(camera_id).removed = True

    def set_sync_module_online(self, sync_module_id: int, online: bool) -> None:
        with self.lock:
            self.sync_module(sync_module_id).online = online

    # ------------------------------------------------------------------ lookups (404 when unknown)
    def network(self, nid: int) -> Network:
        try:
            return self.networks[nid]
        except KeyError:
            raise ApiError(404, {"message": "Network not found", "code": 404}) from None

    def camera(self, cid: int) -> Camera:
        try:
            return self.cameras[cid]
        except KeyError:
            raise ApiError(404, {"message": "Camera not found", "code": 404}) from None

    def sync_module(self, sid: int) -> SyncModule:
        try:
            return self.sync_modules[sid]
        except KeyError:
            raise ApiError(404, {"message": "Sync Module not found", "code": 404}) from None

    # ------------------------------------------------------------------ REST
    def tier_info(self) -> dict[str, Any]:
        return {"tier": self.config.tier, "account_id": self.config.account_id}

    def camera_thumbnail(self, camera_id: int) -> bytes:
        with self.lock:
            self.camera(camera_id)
        return thumbnail_bytes(f"camera:{camera_id}")

    def homescreen(self) -> dict[str, Any]:
        with self.lock:
            aid = self.config.account_id
            cameras, owls, doorbells = [], [], []
            for cam in self.cameras.values():
                if cam.removed:
                    continue
                ts = int(time.time())
                item = {
                    "id": cam.id,
                    "network_id": cam.network_id,
                    "name": cam.name,
                    "type": cam.type,
                    "serial": cam.serial,
                    "fw_version": "10.58",
                    "enabled": True,
                    "status": "done",
                    "onboarded": True,
                    "battery": "ok",
                    "thumbnail": f"/api/v3/media/accounts/{aid}/networks/{cam.network_id}/{cam.type}/"
                    f"{cam.id}/thumbnail/thumbnail.jpg?ts={ts}&ext=",
                    "signals": {"lfr": 5, "wifi": 5, "temp": 71, "battery": 3},
                    "local_storage_enabled": False,
                    "local_storage_compatible": True,
                    "issues": [],
                    "snooze": False,
                }
                {"owl": owls, "lotus": doorbells}.get(cam.type, cameras).append(item)
            odd = self.quirks.homescreen_items
            return {
                "account": {"id": aid, "email_verified": True, "email_verification_required": False},
                "networks": [
                    {
                        "id": n.id,
                        "name": n.name,
                        "time_zone": n.time_zone,
                        "dst": n.dst,
                        "armed": n.armed,
                        "lv_save": False,
                    }
                    for n in self.networks.values()
                ]
                + odd.get("networks", []),
                "sync_modules": [
                    {
                        "id": s.id,
                        "network_id": s.network_id,
                        "name": s.name,
                        "serial": s.serial,
                        "status": "online" if s.online else "offline",
                        "type": "sm2",
                        "subtype": "vinnie",
                        "fw_version": "4.4.8",
                        "onboarded": True,
                        "last_hb": fmt_ts(utcnow()),
                        "local_storage_enabled": s.local_storage,
                        "local_storage_compatible": True,
                        "local_storage_status": "active" if s.local_storage and s.online else "unavailable",
                    }
                    for s in self.sync_modules.values()
                ]
                + odd.get("sync_modules", []),
                "cameras": cameras + odd.get("cameras", []),
                "owls": owls + odd.get("owls", []),
                "doorbells": doorbells + odd.get("doorbells", []),
                "sirens": [],
                "chimes": [],
                "doorbell_buttons": [],
                "video_stats": {
                    "storage": 1,
                    "auto_delete_days": 60,
                    "auto_delete_day_options": [3, 7, 14, 30, 60],
                },
                "app_updates": {
                    "message": "OK",
                    "code": 103,
                    "update_available": False,
                    "update_required": False,
                },
                "device_limits": {"camera": 10, "owl": 10, "total_devices": 20},
            }
