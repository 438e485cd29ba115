"""A destination type defined here, added through the registry alone: it passes the conformance suite, the
web UI serves its clips (Range, 416, the sidecar) and Home Assistant gets its thumbnails, although no module
of the archiver names it (every reader goes through ``open`` / ``location``)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, Literal

import pytest
from destination_suite import DestinationSuite, Tamper
from helpers import asgi_get as get
from helpers import seed_stored
from sqlmodel import select

from archiver.config import load_settings
from archiver.db.engine import open_database, session_scope
from archiver.db.models import Clip, ClipState, ObjectKind, StoredObject
from archiver.destinations import registry
from archiver.destinations.base import Capability, DestinationBase, DestinationError, ObjectInfo, check_key
from archiver.destinations.settings import DestinationSettingsBase
from archiver.homeassistant.state import clip_event, read_thumbnail
from archiver.web.app import create_app


class MemorySettings(DestinationSettingsBase):
    type: Literal["memory"] = "memory"
    broken: bool = False


class MemoryDestination(DestinationBase):
    """Objects in a dict; ``location`` stays None (nothing local, no URL): readers must use ``open``."""

    capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.health_check})

    def __init__(self, name: str, broken: bool = False) -> None:
        self.name = name
        self.broken = broken
        self.objects: dict[str, bytes] = {}
        self.opened: list[tuple[str, int, int | None]] = []  # what readers asked for

    def _get(self, key: str) -> bytes:
        check_key(key, self.name)
        if self.broken:
            raise DestinationError(f"memory destination {self.name!r}: broken", config=True)
        if key not in self.objects:
            raise DestinationError(f"memory destination {self.name!r}: {key} does not exist")
        return self.objects[key]

    def check(self) -> None:
        if self.broken:
            raise DestinationError(f"memory destination {self.name!r}: broken", config=True)

    def put(self, src: Path, key: str, *, sha256: str, metadata: Mapping[str, str]) -> ObjectInfo:
        check_key(key, self.name)
        self.check()
        self.objects[key] = src.read_bytes()
        return ObjectInfo(key=key, size=len(self.objects[key]), sha256=sha256)

    def stat(self, key: str) -> ObjectInfo | None:
        check_key(key, self.name)
        data = self.objects.get(key)
        return None if data is None else ObjectInfo(key=key, size=len(data))

    def hash(self, key: str) -> str:
        return hashlib.sha256(self._get(key)).hexdigest()

    def read_to(self, key: str, path: Path) -> None:
        path.write_bytes(self._get(key))

    def open(self, key: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        data = self._get(key)
        self.opened.append((key, start, end))
        part = data[start:end]
        return iter([part[i : i + 1000] for i in range(0, len(part), 1000)])

    def delete(self, key: str) -> None:
        check_key(key, self.name)
        self.objects.pop(key, None)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        for key, data in sorted(self.objects.items()):
            if key.startswith(prefix):
                yield ObjectInfo(key=key, size=len(data))


def _factory(cfg: MemorySettings, name: str, ctx: registry.BuildContext) -> MemoryDestination:
    return MemoryDestination(name, broken=cfg.broken)


@pytest.fixture(autouse=True)
def memory_type() -> Iterator[None]:
    registry.register(registry.Backend("memory", MemorySettings, _factory, "objects in a dict (tests)"))
    try:
        yield
    finally:
        registry.unregister("memory")


def build(tmp_path: Path, **cfg: Any) -> MemoryDestination:
    ctx = registry.BuildContext(archive_dir=tmp_path / "archive", staging_dir=tmp_path / "staging")
    dest = registry.create(MemorySettings(**cfg), "mem", ctx)
    assert isinstance(dest, MemoryDestination)
    return dest


@pytest.fixture
def dest(tmp_path: Path) -> MemoryDestination:
    return build(tmp_path)


class TestMemoryConformance(DestinationSuite):
    @pytest.fixture
    def tamper(self, dest: MemoryDestination) -> Tamper:
        return dest.objects.__setitem__

    @pytest.fixture
    def broken(self, tmp_path: Path) -> MemoryDestination:
        return build(tmp_path, broken=True)


def test_the_web_ui_and_home_assistant_read_a_registered_type_through_the_interface(
    tmp_path: Path, dest: MemoryDestination
) -> None:
    settings = load_settings(None, data_dir=tmp_path, database={"url": f"sqlite:///{tmp_path / 'a.db'}"})
    engine = open_database(settings.database_url)
    when = datetime(2024, 5, 1, 12, tzinfo=UTC)
    [(clip_id, (video_key, thumb_key))] = seed_stored(
        engine,
        tmp_path / "staging",
        {"mem": dest},
        [("Front", when, ClipState.stored)],
        kinds=(ObjectKind.clip, ObjectKind.thumbnail),
    ).items()
    video, thumb = dest.objects[video_key], dest.objects[thumb_key]
    app = create_app(settings, engine, destinations=[dest])
    try:
        full = get(app, f"/media/{clip_id}/video")
        assert full.status_code == 200 and full.content == video
        assert full.headers["content-length"] == str(len(video))
        part = get(app, f"/media/{clip_id}/video", headers={"Range": "bytes=100-299"})
        assert part.status_code == 206 and part.content == video[100:300]
        assert part.headers["content-range"] == f"bytes 100-299/{len(video)}"
        assert (video_key, 100, 300) in dest.opened  # the range was asked of the destination
        tail = get(app, f"/media/{clip_id}/video", headers={"Range": "bytes=-10"})
        assert tail.status_code == 206 and tail.content == video[-10:]
        past = get(app, f"/media/{clip_id}/video", headers={"Range": f"bytes={len(video)}-"})
        assert past.status_code == 416 and past.headers["content-range"] == f"bytes */{len(video)}"
        etag = full.headers["etag"]
        assert get(app, f"/media/{clip_id}/video", headers={"If-None-Match": etag}).status_code == 304
        image = get(app, f"/media/{clip_id}/thumbnail")
        assert image.status_code == 200 and image.content == thumb
        assert get(app, f"/clip/{clip_id}").status_code == 200

        del dest.objects[video_key]  # the row says it is there; the destination says it is not
        assert get(app, f"/media/{clip_id}/video").status_code == 502

        with session_scope(engine) as s:
            clip = s.get(Clip, clip_id)
            objects = list(s.exec(select(StoredObject).where(StoredObject.clip_id == clip_id)))
            assert clip is not None
            assert read_thumbnail(objects, [dest]) == thumb
            event = clip_event(s, "default", clip, [dest], None)
        assert {f.kind for f in event.files} == {"clip", "thumbnail"}
        assert all(f.uri is None and f.path is None for f in event.files)  # nothing to hand out
    finally:
        engine.dispose()
