"""``motion``: the activity score, the share of the picture where something changed during the clip.

A few frames (``FRAMES``) spread over the clip are decoded in this process with PyAV and scaled down to
``WIDTH`` px grey (the scaling averages away most sensor noise). Between consecutive frames a pixel
counts as changed when it moved by more than ``THRESHOLD`` grey levels beyond the frames' overall
brightness shift (the median difference: an exposure change or headlights over the whole scene do not
count as activity). The score is the share of pixels changed between any two consecutive frames:
0.0 for a still scene, about the swept area for an object crossing the picture, 1.0 when everything
changed. Pure Python on a few thousand pixels: no numpy needed.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from archiver.analysis import Detection
from archiver.analysis.frames import gray, sample_frames

if TYPE_CHECKING:
    from archiver.config import AnalysisSettings

FRAMES = 8
WIDTH = 64
THRESHOLD = 24


def activity(pictures: list[bytes]) -> float:
    """The share (0-1) of pixels that changed between any two consecutive pictures (same size)."""
    if len(pictures) < 2:
        return 0.0
    size = len(pictures[0])
    changed = bytearray(size)
    for a, b in itertools.pairwise(pictures):
        diffs = [y - x for x, y in zip(a, b, strict=True)]
        shift = sorted(diffs)[size // 2]
        for i, d in enumerate(diffs):
            if abs(d - shift) > THRESHOLD:
                changed[i] = 1
    return round(sum(changed) / size, 4)


class MotionDetector:
    name: ClassVar[str] = "motion"
    version: ClassVar[str] = "1"

    def __init__(self, settings: AnalysisSettings | None = None) -> None:
        self.frames = FRAMES

    def analyze(self, path: Path) -> Detection:
        samples = sample_frames(Path(path), self.frames)
        pictures = [gray(s.frame, WIDTH)[0] for s in samples]
        return Detection(activity=min(1.0, activity(pictures)))
