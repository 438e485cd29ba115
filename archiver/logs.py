"""Logging setup: plain or JSON lines, with every known secret and token-shaped value redacted."""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime

_PATTERNS = [
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{8,}"),
    re.compile(
        r"(?i)(\b(?:access_token|refresh_token|password|2fa_code|secret_access_key|token-auth|"
        r'token_auth)["\']?\s*[:=]\s*["\']?)[^"\'&\s,}]+'
    ),
]


class Redactor(logging.Filter):
    """Replaces registered secrets and token-shaped substrings in every record's final message."""

    def __init__(self) -> None:
        super().__init__()
        self._secrets: set[str] = set()
        self._lock = threading.Lock()

    def add(self, *secrets: str | None) -> None:
        with self._lock:
            self._secrets.update(s for s in secrets if s and len(s) >= 4)

    def scrub(self, text: str) -> str:
        for secret in sorted(self._secrets, key=len, reverse=True):
            text = text.replace(secret, "***")
        for pat in _PATTERNS:
            text = pat.sub(r"\1***", text)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        msg = self.scrub(record.getMessage())
        record.msg, record.args = msg, None
        if record.exc_info:
            record.exc_text = self.scrub(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


REDACTOR = Redactor()


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_text:
            doc["exc"] = record.exc_text
        return json.dumps(doc)


def _ours(root: logging.Logger) -> list[logging.Handler]:
    return [h for h in root.handlers if getattr(h, "_archiver", False)]


def route_through(handler: logging.Handler) -> Callable[[], None]:
    """Send the archiver's log lines through ``handler`` instead (e.g. a rich console under a live progress
    bar, so lines never break it), redacted as usual; returns the function that undoes it."""
    root = logging.getLogger()
    previous = _ours(root)
    handler.addFilter(REDACTOR)
    handler._archiver = True  # type: ignore[attr-defined]
    for h in previous:
        root.removeHandler(h)
    root.addHandler(handler)

    def undo() -> None:
        root.removeHandler(handler)
        for h in previous:
            root.addHandler(h)

    return undo


def setup_logging(level: str = "INFO", json_format: bool = False, stream=None) -> None:  # type: ignore[no-untyped-def]
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(REDACTOR)
    handler.setFormatter(
        JsonFormatter()
        if json_format
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    for h in _ours(root):
        root.removeHandler(h)
    handler._archiver = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper())
    for noisy in ("httpx", "httpcore", "botocore", "boto3", "s3transfer", "urllib3", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
