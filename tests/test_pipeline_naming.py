"""Archive keys: every name a server sends becomes a safe path segment; times render in the camera's zone."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from archiver.pipeline.naming import clip_key, sanitize_segment


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Front Door", "Front Door"),
        ("../../etc", "_.._etc"),
        ("..", "_"),
        ("a/b\\c", "a_b_c"),
        ("\x00x", "_x"),
        ("", "_"),
        ("   ", "_"),
        ("." * 5, "_"),
        ("x" * 300, "x" * 120),
    ],
)
def test_sanitize_segment(raw: str, expected: str) -> None:
    assert sanitize_segment(raw) == expected


def test_clip_key_renders_local_time_and_never_escapes() -> None:
    key = clip_key(
        "{network}/{camera}/{date}/{time}_{id}.mp4",
        network="..",
        camera="../x",
        clip_id="7",
        created_at=datetime(2024, 3, 10, 8, 30, tzinfo=UTC),
        time_zone="America/New_York",
    )
    assert key == "_/_x/2024-03-10/04-30-00_7.mp4"
    assert ".." not in key.split("/")
