"""Sidecar: a JSON file beside each clip with what we know about the recording."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC

from archiver.db.models import ObjectKind
from archiver.pipeline.naming import local_time, sibling
from archiver.pipeline.store import StagedFile
from archiver.pipeline.task import ClipTask


def write_sidecar(task: ClipTask, account: str) -> StagedFile:
    clip, facts = task.clip, task.facts
    doc = {
        "id": clip.blink_id,
        "identity": clip.identity,
        "source": clip.source,
        "account": account,
        "network": {"id": clip.network_blink_id, "name": clip.network_name},
        "camera": {"id": clip.camera_blink_id, "name": clip.camera_name},
        "sync_module_id": clip.sync_module_blink_id,
        "created_at_utc": clip.created_at.astimezone(UTC).isoformat(),
        "created_at_local": local_time(clip.created_at, clip.time_zone).isoformat(),
        "time_zone": clip.time_zone,
        "duration_s": facts.duration if facts else clip.duration,
        "width": facts.width if facts else clip.width,
        "height": facts.height if facts else clip.height,
        "codec": facts.codec if facts else clip.codec,
        "manifest_size": clip.size_hint,
        "files": {f.kind.value: {"key": f.key, "size": f.size, "sha256": f.sha256} for f in task.files},
        "thumbnail": {
            "source": "blink"
            if task.has_thumbnail
            else ("generated" if any(f.kind == ObjectKind.thumbnail for f in task.files) else "none"),
            "blink_error": task.thumbnail_error,
        },
    }
    path = task.work / "sidecar.json"
    data = json.dumps(doc, indent=2, sort_keys=True).encode()
    path.write_bytes(data)  # the destinations make it durable
    return StagedFile(
        ObjectKind.sidecar, path, sibling(task.key, ".json"), len(data), hashlib.sha256(data).hexdigest()
    )
