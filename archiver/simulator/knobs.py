"""The simulator's knobs: ``SimConfig`` (the account and its sign-in) and ``Faults`` (transport faults and
local-storage delays). Both are plain dataclasses, mutable while the server runs."""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Faults:
    """Fault injection knobs; all off by default and mutable while the server runs.

    Every injected fault is drawn per request from one ``random.Random(seed)``, so a retry eventually
    succeeds and a run is reproducible for a given request order.
    """

    latency_s: float = 0.0
    bandwidth_bps: float = 0.0
    error_rate: float = 0.0
    reset_rate: float = 0.0
    truncate_rate: float = 0.0
    garbage_rate: float = 0.0
    rate_limit_rps: float = 0.0
    retry_after_s: float = 1.0
    seed: int | None = 0
    faults_on_auth: bool = False
    manifest_ready_after_s: float = 0.2
    command_complete_after_s: float = 0.2
    upload_delay_s: float = 0.2
    busy_rate: float = 0.0
    _rng: random.Random | None = field(default=None, init=False, repr=False, compare=False)
    _rng_seed: int | None = field(default=None, init=False, repr=False, compare=False)
    _rng_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False, compare=False)

    def _random(self) -> random.Random:
        if self._rng is None or self._rng_seed != self.seed:
            self._rng = random.Random(self.seed)
            self._rng_seed = self.seed
        return self._rng

    def chance(self, rate: float) -> bool:
        """True with probability ``rate`` (never draws when the rate is 0)."""
        if rate <= 0:
            return False
        if rate >= 1:
            return True
        with self._rng_lock:
            return self._random().random() < rate

    def uniform(self, a: float, b: float) -> float:
        with self._rng_lock:
            return self._random().uniform(a, b)

    def choice(self, options: list[Any]) -> Any:
        with self._rng_lock:
            return self._random().choice(options)


@dataclass
class SimConfig:
    username: str = "demo@example.com"
    password: str = "demo-password"
    # -- sign-in (auth knobs) --
    pin: str | None = "123456"  # every PIN "texted" is this one; None = a fresh random PIN per sign-in (real)
    two_factor: bool = True
    two_factor_status: int = 202  # 412 = the older "2FA required" answer
    two_factor_content_type: str | None = "application/json"  # of the 2FA answers; None = no header
    signin_session_ttl_s: float = 600.0  # how long a sign-in (its cookie and CSRF token) takes a PIN
    # every refresh answers: None (normal), "edge-406" (Cloudflare, text/plain), "invalid_grant" (400),
    # "forbidden" (403, HTML), "server-error" (503) or "upgrade" (426)
    refresh_refusal: str | None = None
    # Blink's edge (Cloudflare) answers these OAuth steps with a 406, an HTML page and a cf-ray header,
    # before the credentials are read: "authorize", "signin" (the credentials POST), "verify" (the PIN),
    # "token" (the code exchange), "refresh"
    edge_block: set[str] = field(default_factory=set)
    tier: str = "u011"
    account_id: int = 1001
    user_id: int = 2002
    token_ttl_s: int = 14400  # the access token's lifetime (expires_in); may be changed while running
    page_limit: int = 25
    host: str = "127.0.0.1"
    port: int = 0
    mark_watched_on_download: bool = True
    auth_code_ttl_s: int = 600
