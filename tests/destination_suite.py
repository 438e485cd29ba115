"""The conformance suite every destination type runs (disk and S3 today).

A backend's test module subclasses :class:`DestinationSuite` and provides three fixtures:
``dest`` (a fresh, empty, working destination), ``tamper`` (a function ``(key, data)`` that replaces
an object's bytes behind the destination's back) and ``broken`` (the same type pointed at something that
does not work: a missing folder or bucket). Every test here holds for every backend.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from archiver.destinations import BACKENDS, Capability, Destination, DestinationError
from archiver.destinations.base import preflight_all, read_all, stream, unreachable
from archiver.destinations.registry import LAYERS

Tamper = Callable[[str, bytes], None]


def make_file(path: Path, data: bytes) -> tuple[Path, str]:
    """A staged source file and its sha256."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path, hashlib.sha256(data).hexdigest()


async def _collect(chunks: AsyncIterator[bytes]) -> bytes:
    return b"".join([c async for c in chunks])


class DestinationSuite:
    """Behaviour shared by every backend; subclasses only provide the fixtures."""

    def test_is_a_registered_destination_with_declared_capabilities(self, dest: Destination) -> None:
        assert isinstance(dest, Destination)
        assert isinstance(dest.capabilities, frozenset)
        assert all(isinstance(c, Capability) for c in dest.capabilities)
        assert type(dest).__name__.lower().startswith((*BACKENDS, *LAYERS))

    def test_round_trip(self, dest: Destination, tmp_path: Path) -> None:
        data = os.urandom(300_000)
        src, sha = make_file(tmp_path / "src" / "a.mp4", data)
        key = "Home/Front Door/2024-05-01/12-00-00_42.mp4"
        info = dest.put(src, key, sha256=sha, metadata={"clip-id": "cloud:42", "camera": "Vordertür"})
        assert (info.key, info.size) == (key, len(data))
        assert src.read_bytes() == data  # never consumes the source
        stat = dest.stat(key)
        assert stat is not None and stat.size == len(data)
        if Capability.stored_sha256 in dest.capabilities:
            assert stat.sha256 == sha
        assert dest.hash(key) == sha
        assert [o.key for o in dest.list()] == [key]
        assert [o.key for o in dest.list("Home/Front")] == [key]
        assert list(dest.list("Other/")) == []
        out = tmp_path / "copy.mp4"
        dest.read_to(key, out)
        assert out.read_bytes() == data
        dest.delete(key)
        assert dest.stat(key) is None
        dest.delete(key)  # a missing object is not an error
        assert list(dest.list()) == []

    def test_put_is_idempotent(self, dest: Destination, tmp_path: Path) -> None:
        src, sha = make_file(tmp_path / "b.mp4", b"same bytes" * 100)
        first = dest.put(src, "cam/b.mp4", sha256=sha, metadata={})
        again = dest.put(src, "cam/b.mp4", sha256=sha, metadata={})
        assert first == again
        assert [o.key for o in dest.list()] == ["cam/b.mp4"]

    def test_a_damaged_object_is_seen_by_hash_and_restored_by_delete_and_put(
        self, dest: Destination, tamper: Tamper, tmp_path: Path
    ) -> None:
        src, sha = make_file(tmp_path / "c.mp4", b"good bytes" * 1000)
        dest.put(src, "cam/c.mp4", sha256=sha, metadata={})
        tamper("cam/c.mp4", b"bad bytes!" * 1000)  # same size, other content
        stat = dest.stat("cam/c.mp4")
        assert stat is not None and stat.size == 10_000  # only a re-read tells
        assert dest.hash("cam/c.mp4") != sha
        dest.delete("cam/c.mp4")
        dest.put(src, "cam/c.mp4", sha256=sha, metadata={})
        assert dest.hash("cam/c.mp4") == sha

    def test_unicode_and_long_keys(self, dest: Destination, tmp_path: Path) -> None:
        src, sha = make_file(tmp_path / "d.mp4", b"x" * 10)
        keys = ["家/前门 摄像头/2024-05-01/12-00-00_1.mp4", "n/" + "長" * 60 + "/a b.mp4"]
        for key in keys:
            dest.put(src, key, sha256=sha, metadata={"camera": "前门"})
            assert dest.hash(key) == sha
        assert sorted(o.key for o in dest.list()) == sorted(keys)

    @pytest.mark.parametrize(
        "key", ["../escape.mp4", "a/../../escape.mp4", "/abs.mp4", "a//b.mp4", "", "a/./b", "a\\b"]
    )
    def test_keys_that_would_leave_the_root_are_refused(
        self, dest: Destination, tmp_path: Path, key: str
    ) -> None:
        src, sha = make_file(tmp_path / "e.mp4", b"x")
        with pytest.raises(DestinationError):
            dest.put(src, key, sha256=sha, metadata={})
        with pytest.raises(DestinationError):
            dest.stat(key)
        assert list(dest.list()) == []

    def test_open_reads_the_whole_object_and_any_byte_range(self, dest: Destination, tmp_path: Path) -> None:
        data = os.urandom(700_000)  # several read chunks
        src, sha = make_file(tmp_path / "r.mp4", data)
        dest.put(src, "cam/r.mp4", sha256=sha, metadata={})
        assert read_all(dest, "cam/r.mp4") == data
        for start, end in [(0, 1), (100, 200), (262_143, 262_145), (699_000, None), (0, 700_000)]:
            assert b"".join(dest.open("cam/r.mp4", start, end)) == data[start:end]
        assert b"".join(dest.open("cam/r.mp4", 700_000)) == b""  # at the end: nothing, no error
        chunks = asyncio.run(_collect(stream(dest, "cam/r.mp4", 10, 500_000)))
        assert chunks == data[10:500_000]
        where = dest.location("cam/r.mp4")
        if where is not None and where.startswith("/"):  # a local file the caller may serve as it is
            assert Path(where).read_bytes() == data

    def test_missing_objects(self, dest: Destination, tmp_path: Path) -> None:
        assert dest.stat("no/such.mp4") is None
        with pytest.raises(DestinationError, match="does not exist"):
            dest.hash("no/such.mp4")
        with pytest.raises(DestinationError, match="does not exist"):
            dest.read_to("no/such.mp4", tmp_path / "out")
        with pytest.raises(DestinationError, match="does not exist"):
            b"".join(dest.open("no/such.mp4"))

    def test_delete_many_deletes_all_and_ignores_missing(self, dest: Destination, tmp_path: Path) -> None:
        src, sha = make_file(tmp_path / "f.mp4", b"y" * 20)
        keys = [f"cam/{i}.mp4" for i in range(5)]
        for key in keys:
            dest.put(src, key, sha256=sha, metadata={})
        assert dest.delete_many([*keys[:3], "cam/missing.mp4"]) == {}
        assert sorted(o.key for o in dest.list()) == keys[3:]

    def test_a_working_destination_passes_its_checks(self, dest: Destination) -> None:
        problems, notes = preflight_all([dest])
        assert (problems, notes) == ([], [])  # may create what a first run needs (a folder)
        dest.check()
        assert unreachable(dest) is None

    def test_a_broken_destination_fails_preflight_in_one_line(
        self, broken: Destination, tmp_path: Path
    ) -> None:
        problems, _ = preflight_all([broken])
        assert len(problems) == 1 and problems[0].config  # waiting will not help: fix the config
        assert "\n" not in str(problems[0]) and repr(broken.name) in str(problems[0])
        if Capability.health_check in broken.capabilities:
            assert unreachable(broken) is not None
        src, sha = make_file(tmp_path / "g.mp4", b"z")
        with pytest.raises(DestinationError):
            broken.put(src, "cam/g.mp4", sha256=sha, metadata={})
