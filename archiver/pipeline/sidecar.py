"""Sidecar: a JSON file beside each clip with what we know about the recording.

The sidecar is the archive's contract: the database is an index that ``archiver reindex`` rebuilds from
the sidecars alone (see the README, "The sidecar format"). One model, :class:`Sidecar`, writes and reads
it. Readers accept unknown fields (a newer writer's additions) and the unversioned sidecars of earlier
releases (no ``schema`` field: version 1, "legacy", without ``state``, ``archive_key``, ``stored_at``,
``size`` and ``sha256``).
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer

from archiver.db.models import ObjectKind, utcnow
from archiver.pipeline.naming import local_time, sibling
from archiver.pipeline.store import StagedFile
from archiver.pipeline.task import ClipTask

SCHEMA = 1  # the sidecar format's version; a reader takes a missing "schema" for 1 (legacy)


# written as Python's isoformat ("+00:00", "-05:00"), as every release did
Instant = Annotated[datetime, PlainSerializer(lambda d: d.isoformat(), return_type=str, when_used="json")]


class _Open(BaseModel):
    """Tolerant parts: unknown fields are kept (and written back), numbers are accepted for strings."""

    model_config = ConfigDict(extra="allow", coerce_numbers_to_str=True, populate_by_name=True)


class SidecarFile(_Open):
    """One file of the clip in the archive (the sidecar itself is not listed: it is the file that lists)."""

    key: str  # relative to the destination's root (or prefix)
    size: int
    sha256: str


class Place(_Open):
    id: int | None = None  # Blink's id
    name: str | None = None


class ThumbnailNote(_Open):
    source: str = "blink"  # "blink": Blink's own; "generated": made from the clip; "none": none could be made
    blink_error: str | None = None  # why Blink's thumbnail could not be used


class Sidecar(_Open):
    """The sidecar document (``<archive key without .mp4>.json``)."""

    version: int = Field(default=SCHEMA, alias="schema")
    id: str  # Blink's media id (cloud) or the manifest clip id (USB)
    identity: str  # unique per account: cloud:<media id> | local:<sync module>:<camera>:<UTC instant>
    source: str = "cloud"  # the source that fetched it ("cloud", "local")
    account: str  # the account's configured name
    state: str = "stored"  # the clip's state when the sidecar was written (always "stored" today)
    archive_key: str | None = None  # the key the clip owns in every destination (None: legacy)
    network: Place = Field(default_factory=Place)
    camera: Place = Field(default_factory=Place)
    sync_module_id: int | None = None
    created_at_utc: Instant
    created_at_local: Instant | None = None
    time_zone: str | None = None
    stored_at: Instant | None = None  # when the clip was stored (None: legacy)
    duration_s: float | None = None
    width: int | None = None
    height: int | None = None
    codec: str | None = None
    size: int | None = None  # the original recording's bytes (also with keep_original off)
    sha256: str | None = None  # the original recording's sha256
    manifest_size: int | None = None  # the listing's size field (unit unknown)
    notes: str | None = None  # processing or size warnings kept with the clip
    files: dict[str, SidecarFile] = Field(default_factory=dict)  # by kind: clip, thumbnail, transcode...
    thumbnail: ThumbnailNote | None = None

    def dumps(self) -> bytes:
        """The document as written: sorted keys, two-space indent, UTF-8."""
        doc = self.model_dump(mode="json", by_alias=True)
        return json.dumps(doc, indent=2, sort_keys=True).encode()

    @classmethod
    def loads(cls, data: bytes | str) -> Sidecar:
        """Parse a sidecar (raises pydantic.ValidationError for anything that is not one)."""
        return cls.model_validate_json(data)


def write_sidecar(task: ClipTask, account: str) -> StagedFile:
    clip, facts = task.clip, task.facts
    original = next((f for f in task.files if f.kind == ObjectKind.clip), None)
    doc = Sidecar(
        id=clip.blink_id,
        identity=clip.identity,
        source=clip.source,
        account=account,
        state="stored",
        archive_key=task.key,  # store rewrites it (and every file's key) when the clip gets a "-2" key
        network=Place(id=clip.network_blink_id, name=clip.network_name),
        camera=Place(id=clip.camera_blink_id, name=clip.camera_name),
        sync_module_id=clip.sync_module_blink_id,
        created_at_utc=clip.created_at.astimezone(UTC),
        created_at_local=local_time(clip.created_at, clip.time_zone),
        time_zone=clip.time_zone,
        stored_at=utcnow(),
        duration_s=facts.duration if facts else clip.duration,
        width=facts.width if facts else clip.width,
        height=facts.height if facts else clip.height,
        codec=facts.codec if facts else clip.codec,
        size=original.size if original else clip.size,
        sha256=original.sha256 if original else clip.sha256,
        manifest_size=clip.size_hint,
        notes=task.note,
        files={
            str(f.kind): SidecarFile(key=f.key, size=f.size, sha256=f.sha256)
            for f in task.files
            if f.kind != ObjectKind.sidecar
        },
        thumbnail=ThumbnailNote(
            source="blink"
            if task.has_thumbnail
            else ("generated" if any(f.kind == ObjectKind.thumbnail for f in task.files) else "none"),
            blink_error=task.thumbnail_error,
        ),
    )
    path = task.work / "sidecar.json"
    data = doc.dumps()
    path.write_bytes(data)  # the destinations make it durable
    return StagedFile(
        ObjectKind.sidecar, path, sibling(task.key, ".json"), len(data), hashlib.sha256(data).hexdigest()
    )


def archive_key_of(sidecar_key: str) -> str:
    """The clip's archive key from where its sidecar lies ('a/b/c.json' -> 'a/b/c.mp4')."""
    stem = sidecar_key[: -len(".json")] if sidecar_key.endswith(".json") else sidecar_key
    return stem + ".mp4"


def is_sidecar_key(key: str) -> bool:
    return key.endswith(".json")


__all__ = ["SCHEMA", "Place", "Sidecar", "SidecarFile", "ThumbnailNote", "archive_key_of", "write_sidecar"]
