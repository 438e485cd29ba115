"""The sidecar's ``"analysis"``: the clip's sidecar is read back from a destination, given the results
and put again through every destination that holds it (the archive stays the truth: ``reindex`` can
rebuild the database's scores and tags from it). The database's record of the object (size, sha256)
follows, so ``verify`` stays clean."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from archiver.db.models import ObjectKind, StoredObject
from archiver.destinations.base import Destination, DestinationError, read_all
from archiver.errors import ArchiverError


class SidecarUnavailable(ArchiverError):
    """No destination could give the clip's sidecar back (it is retried with the analysis)."""


def rewrite_sidecar(
    destinations: Sequence[Destination],
    objects: Sequence[StoredObject],
    analysis: dict[str, Any],
    workdir: Path,
) -> list[tuple[StoredObject, int, str]]:
    """Put the sidecar again with ``"analysis": analysis`` in every destination holding it; returns
    ``(row, size, sha256)`` for each object rewritten (the caller updates the rows). No sidecar: []."""
    by_name = {d.name: d for d in destinations}
    sidecars = [o for o in objects if o.kind == ObjectKind.sidecar.value and o.destination in by_name]
    if not sidecars:
        return []
    doc: dict[str, Any] | None = None
    problems: list[str] = []
    for o in sidecars:
        try:
            value = json.loads(read_all(by_name[o.destination], o.key))
        except (DestinationError, OSError, ValueError) as exc:
            problems.append(f"{o.destination}: {exc}")
            continue
        if isinstance(value, dict):
            doc = value
            break
        problems.append(f"{o.destination}: not a JSON object")
    if doc is None:
        raise SidecarUnavailable(f"the sidecar could not be read back ({'; '.join(problems)[:300]})")
    doc["analysis"] = analysis
    data = json.dumps(doc, indent=2, sort_keys=True).encode()
    digest = hashlib.sha256(data).hexdigest()
    workdir.mkdir(parents=True, exist_ok=True)
    tmp = workdir / f"sidecar-{uuid.uuid4().hex}.json"
    tmp.write_bytes(data)
    out: list[tuple[StoredObject, int, str]] = []
    try:
        for o in sidecars:
            meta = {"kind": ObjectKind.sidecar.value, "sha256": digest}
            by_name[o.destination].put(tmp, o.key, sha256=digest, metadata=meta)
            out.append((o, len(data), digest))
    finally:
        tmp.unlink(missing_ok=True)
    return out
