"""Commands: what a local-storage request starts on a sync module, and the polling that follows it
(``/network/{id}/command/{id}``). A command completes ``Faults.command_complete_after_s`` after it was
issued, when marked done, or at once as failed when its sync module is offline."""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .common import ApiError, Context, Part, fmt_ts, utcnow
from .world import World


@dataclass
class Command:
    id: int
    network_id: int
    kind: str
    created_at: datetime
    complete_at: float
    sync_module_id: int | None = None
    target_uid: int | None = None
    done: bool = False


class Commands(Part):
    """The commands issued so far, by id."""

    def __init__(self, ctx: Context, world: World) -> None:
        super().__init__(ctx)
        self.world = world
        self.commands: dict[int, Command] = {}
        self._ids = itertools.count(670555852)

    def new_command(
        self, network_id: int, kind: str, sync_module_id: int | None = None, target_uid: int | None = None
    ) -> Command:
        cmd = Command(
            next(self._ids),
            network_id,
            kind,
            utcnow(),
            time.monotonic() + self.faults.command_complete_after_s,
            sync_module_id,
            target_uid,
        )
        self.commands[cmd.id] = cmd
        return cmd

    def command_status(self, network_id: int, command_id: int) -> dict[str, Any]:
        with self.lock:
            cmd = self.commands.get(command_id)
            if cmd is None or cmd.network_id != network_id:
                raise ApiError(404, {"message": "Command not found", "code": 404})
            failed = cmd.sync_module_id is not None and not self.world.sync_modules[cmd.sync_module_id].online
            complete = failed or cmd.done or time.monotonic() >= cmd.complete_at
            condition = "failed" if failed else ("done" if complete else "running")
            entry = {
                "id": cmd.id,
                "command": cmd.kind,
                "state_condition": condition,
                "state_stage": "dev" if complete else "sm",
                "created_at": fmt_ts(cmd.created_at),
                "updated_at": fmt_ts(utcnow()),
                "network_id": cmd.network_id,
                "sync_module_id": cmd.sync_module_id,
                "target": "sync_module",
                "target_id": cmd.sync_module_id,
            }
            return {
                "complete": complete,
                "status": 1 if failed else 0,
                "status_code": 999 if failed else 908,
                "status_msg": "Sync Module is offline" if failed else "Command succeeded",
                "commands": [entry],
                "media_id": None,
            }

    def command_done(self, network_id: int, command_id: int) -> dict[str, Any]:
        with self.lock:
            cmd = self.commands.get(command_id)
            if cmd is None or cmd.network_id != network_id:
                raise ApiError(404, {"message": "Command not found", "code": 404})
            cmd.done = True
            return {"message": f"Command {command_id} set to :done", "code": 902}
