"""Logging setup: plain or JSON lines, with every known secret and token-shaped value redacted."""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from types import TracebackType

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

# C0 and C1 controls, DEL, and the Unicode line separators and bidi overrides that reorder a terminal line
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_CONTROLS_BUT_NEWLINE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _escape(m: re.Match[str]) -> str:
    code = ord(m.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape_controls(text: str, *, keep_newlines: bool = False) -> str:
    """Make server-supplied text harmless on a terminal: control characters become ``\\x1b``-style escapes
    (a camera named with an escape sequence or a newline can neither recolour nor forge a line)."""
    return (_CONTROLS_BUT_NEWLINE if keep_newlines else _CONTROLS).sub(_escape, text)


def safe_markup(text: object) -> str:
    """Server-supplied text for a rich console: controls escaped, ``[markup]`` shown as written."""
    from rich.markup import escape

    return escape(escape_controls(str(text)))


class PlainFormatter(logging.Formatter):
    """One record, one line: the message's control characters are escaped; a traceback keeps its
    newlines but nothing else."""

    def format(self, record: logging.LogRecord) -> str:
        if record.exc_text:
            record.exc_text = escape_controls(record.exc_text, keep_newlines=True)
        return super().format(record)

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = escape_controls(record.message)
        return super().formatMessage(record)


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


class HumanFormatter(PlainFormatter):
    """``warning: message``: no timestamp, no logger name (a command's own output around it is human)."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return f"{record.levelname.lower()}: {escape_controls(record.getMessage())}"


def setup_logging(  # type: ignore[no-untyped-def]
    level: str = "INFO", json_format: bool = False, stream=None, *, human: bool = False
) -> None:
    """Log lines to ``stream`` (stderr): JSON, plain with timestamps, or ``human`` (``level: message``)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(REDACTOR)
    if json_format:
        handler.setFormatter(JsonFormatter())
    elif human:
        handler.setFormatter(HumanFormatter())
    else:
        handler.setFormatter(PlainFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for h in _ours(root):
        root.removeHandler(h)
    handler._archiver = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper())
    for noisy in ("httpx", "httpcore", "botocore", "boto3", "s3transfer", "urllib3", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # Uncaught exceptions (main thread, worker threads) go through the redacting handler, never raw.
    sys.excepthook = _log_uncaught
    threading.excepthook = _log_uncaught_in_thread


def _log_uncaught(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, value, tb)
        return
    logging.getLogger("archiver").critical("uncaught %s", kind.__name__, exc_info=(kind, value, tb))


def _log_uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_value is None or issubclass(args.exc_type, SystemExit):
        return
    name = args.thread.name if args.thread is not None else "?"
    logging.getLogger("archiver").critical(
        "uncaught %s in thread %s",
        args.exc_type.__name__,
        name,
        exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
    )
