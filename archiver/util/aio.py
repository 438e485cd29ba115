"""Running the event loop: uvloop when it is installed (a dependency on Linux and macOS), else asyncio's own.

uvloop's loop (libuv, in C) spends less CPU per socket read, timer and thread hand-off than asyncio's
selector loop: about 7 % less CPU for a backlog of clips (``bench/run.py``, scenario 8), which matters
on a Raspberry Pi. Behaviour is the same on either loop."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop factory, or None (asyncio's default loop) where uvloop is not installed."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)`` on the best loop available."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(main)
