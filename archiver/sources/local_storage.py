"""Sync Module 2 USB storage (placeholder until the local-storage source lands)."""

from __future__ import annotations

from typing import Any


def attach(sync: Any) -> None:
    """Plug the USB source into an AccountSync when enabled."""
    return None
