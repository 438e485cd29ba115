"""Locating and running ffmpeg.

Command lines are built with ffmpeg-python (:func:`compile_cmd`); they are run with :func:`run`, which
enforces a timeout by killing the whole process group (ffmpeg may spawn helpers) and turns a failure into
a one-line :class:`FFmpegError` (a :class:`~archiver.errors.MediaError`).

Cancellation: :class:`KillScope` collects the processes started by :func:`run` in the current context
(``contextvars``; the worker thread must run in a copy of that context, as ``asyncio.to_thread`` does),
so an awaiting coroutine that is cancelled can kill the ffmpeg its thread is waiting on instead of
leaving it running.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import os
import re
import shutil
import signal
import subprocess
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

from archiver.errors import MediaError

GLOBAL_ARGS = ("-hide_banner", "-nostdin", "-nostats")

_NO_FFMPEG = "no ffmpeg found: set processing.ffmpeg or pip install imageio-ffmpeg"


class FFmpegError(MediaError):
    """ffmpeg/ffprobe exited non-zero or timed out. ``stderr`` holds the full (decoded) error output."""

    def __init__(
        self, message: str, *, stderr: str = "", returncode: int | None = None, timed_out: bool = False
    ) -> None:
        super().__init__(message)
        self.stderr = stderr
        self.returncode = returncode
        self.timed_out = timed_out


# --------------------------------------------------------------------------------------------- locating


def _is_executable(path: str | os.PathLike[str]) -> bool:
    p = Path(path)
    return p.is_file() and os.access(p, os.X_OK)


def find_ffmpeg(configured: str | None = None) -> str:
    """The ffmpeg to use: ``configured`` (must exist and be executable; a bare name is looked up on PATH),
    else ``ffmpeg`` on PATH, else the binary bundled with imageio-ffmpeg."""
    if configured:
        expanded = os.path.expanduser(configured)
        if os.sep not in expanded and not _is_executable(expanded):
            found = shutil.which(expanded)
            if found:
                return found
        if _is_executable(expanded):
            return str(Path(expanded).resolve())
        raise MediaError(f"processing.ffmpeg {configured!r} does not exist or is not executable")
    found = shutil.which("ffmpeg")
    if found:
        return found
    try:
        import imageio_ffmpeg
    except ImportError as exc:
        raise MediaError(_NO_FFMPEG) from exc
    try:
        exe = imageio_ffmpeg.get_ffmpeg_exe()
    except Exception as exc:  # imageio-ffmpeg raises RuntimeError when it ships no binary for the platform
        raise MediaError(_NO_FFMPEG) from exc
    if not exe or not _is_executable(exe):
        raise MediaError(_NO_FFMPEG)
    return exe


def find_ffprobe(ffmpeg_path: str) -> str | None:
    """An ffprobe next to ``ffmpeg_path`` (same name with ffmpeg→ffprobe), else on PATH, else None.

    imageio-ffmpeg ships no ffprobe, so None is the common case; :func:`~archiver.media.probe.probe`
    then parses ``ffmpeg -i`` output instead."""
    p = Path(ffmpeg_path)
    name = p.name
    if "ffmpeg" in name:
        sibling = p.with_name(name.replace("ffmpeg", "ffprobe", 1))
        if _is_executable(sibling):
            return str(sibling)
    return shutil.which("ffprobe")


_ENCODER_LINE = re.compile(r"^\s*([VAS][A-Z.]{5})\s+(\S+)\s")


@functools.lru_cache(maxsize=8)
def _encoders(ffmpeg: str) -> frozenset[str]:
    cp = run([ffmpeg, "-hide_banner", "-nostdin", "-encoders"], timeout=30)
    names: set[str] = set()
    for line in cp.stdout.decode("utf-8", "replace").splitlines():
        m = _ENCODER_LINE.match(line)
        if m and m.group(2) != "=":
            names.add(m.group(2))
    return frozenset(names)


def encoders(ffmpeg: str) -> frozenset[str]:
    """Names of the encoders this ffmpeg build has (``libx264``, ``libwebp_anim`` ...). Cached per binary."""
    return _encoders(ffmpeg)


# --------------------------------------------------------------------------------------------- building


def compile_cmd(stream: object, ffmpeg: str, *, loglevel: str = "error", overwrite: bool = True) -> list[str]:
    """Full argv for an ffmpeg-python stream spec: ``ffmpeg -hide_banner -nostdin -nostats -v LEVEL ...``.

    Global options go first (ffmpeg-python would append them after the outputs)."""
    import ffmpeg as ffmpeg_python  # ffmpeg-python loads with the first command line

    args = ffmpeg_python.get_args(stream, overwrite_output=overwrite)
    return [ffmpeg, *GLOBAL_ARGS, "-v", loglevel, *args]


def path_arg(path: str | os.PathLike[str]) -> str:
    """A path as an ffmpeg URL that cannot be mistaken for an option or a protocol (absolute)."""
    return str(Path(path).absolute())


# --------------------------------------------------------------------------------------------- running


class KillScope:
    """Processes started by :func:`run` while this scope is current; :meth:`kill` ends them all."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._procs: set[subprocess.Popen[bytes]] = set()
        self.killed = False

    def add(self, proc: subprocess.Popen[bytes]) -> None:
        with self._lock:
            if self.killed:
                _kill_group(proc)
            self._procs.add(proc)

    def discard(self, proc: subprocess.Popen[bytes]) -> None:
        with self._lock:
            self._procs.discard(proc)

    def kill(self) -> None:
        with self._lock:
            self.killed = True
            procs = list(self._procs)
        for proc in procs:
            _kill_group(proc)


_scope: contextvars.ContextVar[KillScope | None] = contextvars.ContextVar(
    "archiver_media_kill_scope", default=None
)


@contextlib.contextmanager
def kill_scope() -> Iterator[KillScope]:
    """Make a fresh :class:`KillScope` current.

    Enter it *before* handing work to a thread, and run that work in a copy of the context
    (``asyncio.to_thread`` does this; ``run_in_executor`` needs ``contextvars.copy_context().run``)."""
    scope = KillScope()
    token = _scope.set(scope)
    try:
        yield scope
    finally:
        _scope.reset(token)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError, OSError):
        if os.name == "posix":
            os.killpg(proc.pid, signal.SIGKILL)
        else:  # pragma: no cover - not exercised on Linux
            proc.kill()


def _strip_context(line: str) -> str:
    """``[in#0/mov,mp4 @ 0x55..] partial file`` → ``partial file`` (keeps messages short and stable)."""
    return re.sub(r"^(\[[^\]]*@ 0x[0-9a-f]+\]\s*)+", "", line).strip()


_NOISE = re.compile(
    r"^(Error opening (input|output)|Task finished|Terminating thread|Conversion failed|"
    r"Error while|Nothing was written|\[out#|\[vist#)",
    re.I,
)


def error_reason(stderr: str) -> str:
    """The most telling ffmpeg error line: the first one that is not header output or generic follow-up."""
    lines = [line for line in stderr.splitlines() if line.strip() and not line[:1].isspace()]
    lines = [
        _strip_context(line)
        for line in lines
        if not line.startswith(("Input #", "Output #", "Stream mapping", "Press ["))
    ]
    for line in lines:
        if line and not _NOISE.match(line):
            return line
    if not lines:
        return "unreadable"
    return lines[-1].rsplit(": ", 1)[-1]  # "Error opening input files: Invalid data ..." → "Invalid data ..."


def run(cmd: Sequence[str], timeout: float) -> subprocess.CompletedProcess[bytes]:
    """Run ``cmd`` (stdin closed, stdout/stderr captured) in its own session.

    On timeout the whole process group is killed and :class:`FFmpegError` raised (``timed_out=True``);
    a non-zero exit raises :class:`FFmpegError` carrying one stderr line: the first real error (ffmpeg's
    last line is usually generic follow-up such as "Nothing was written into output file"), or the last.
    A missing binary is a :class:`FFmpegError` too."""
    cmd = [str(c) for c in cmd]
    prog = Path(cmd[0]).name
    scope = _scope.get()
    if scope is not None and scope.killed:
        raise FFmpegError(f"{prog} cancelled")
    try:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
    except OSError as exc:
        raise FFmpegError(f"cannot run {prog}: {exc.strerror or exc}") from exc
    if scope is not None:
        scope.add(proc)
    try:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            try:
                out, err = proc.communicate(timeout=5)
            except subprocess.TimeoutExpired:  # a grandchild left the group and holds the pipes open
                proc.kill()
                proc.wait()
                err = b""
            stderr = err.decode("utf-8", "replace")
            raise FFmpegError(f"{prog} timed out after {timeout:g}s", stderr=stderr, timed_out=True) from None
        except BaseException:  # KeyboardInterrupt etc.: never leave ffmpeg behind
            _kill_group(proc)
            proc.wait()
            raise
    finally:
        if scope is not None:
            scope.discard(proc)
    if proc.returncode != 0:
        stderr = err.decode("utf-8", "replace")
        if scope is not None and scope.killed:
            raise FFmpegError(f"{prog} cancelled", stderr=stderr, returncode=proc.returncode)
        line = error_reason(stderr) if stderr.strip() else f"exit status {proc.returncode}"
        raise FFmpegError(f"{prog} failed: {line}", stderr=stderr, returncode=proc.returncode)
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)
