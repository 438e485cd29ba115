"""Which clips an account archives: the camera/network filters, applied to every source's clips."""

from __future__ import annotations

from dataclasses import dataclass

from archiver.config import AccountSettings
from archiver.db.models import Clip


def _match(wanted: tuple[str, ...], name: str | None, ident: int | None) -> bool:
    if not wanted:
        return True
    return (name or "").casefold() in wanted or (ident is not None and str(ident) in wanted)


@dataclass(frozen=True)
class Selection:
    cameras: tuple[str, ...] = ()  # casefolded names or ids; empty = all
    networks: tuple[str, ...] = ()

    @classmethod
    def of(cls, account: AccountSettings) -> Selection:
        return cls(
            tuple(c.casefold() for c in account.cameras), tuple(n.casefold() for n in account.networks)
        )

    def allows(
        self, *, camera: str | None, camera_id: int | None, network: str | None, network_id: int | None
    ) -> bool:
        return _match(self.cameras, camera, camera_id) and _match(self.networks, network, network_id)

    def admits(self, clip: Clip) -> bool:
        return self.allows(
            camera=clip.camera_name,
            camera_id=clip.camera_blink_id,
            network=clip.network_name,
            network_id=clip.network_blink_id,
        )
