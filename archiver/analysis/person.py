"""``person``: OpenCV's built-in HOG people detector (Dalal-Triggs), on a few frames of the clip.

Optional extra ``analysis-person`` (``opencv-python-headless>=4.10,<5``: OpenCV 5 removed HOG from the
main wheels). The detector's weights ship inside OpenCV: nothing is downloaded. HOG finds upright people
seen whole or down to the thighs, at least about 64x128 px in a frame scaled to ``width``: a filter, not a
guarantee (people lying down, far away, half hidden or seen from above are missed).

Confidence: the SVM's margin through a logistic curve (0.5 on the decision boundary); one tag per frame
with a person, the best detection of that frame.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from archiver.analysis import Detection, DetectorUnavailable, Tag
from archiver.analysis.frames import sample_frames

if TYPE_CHECKING:
    from archiver.config import PersonSettings

EXTRA = "pip install 'blink-archiver[analysis-person]' (opencv-python-headless>=4.10,<5)"


def confidence(weight: float) -> float:
    return round(1.0 / (1.0 + math.exp(-float(weight))), 4)


class PersonDetector:
    name: ClassVar[str] = "person"
    version: ClassVar[str] = "1"

    def __init__(self, settings: PersonSettings) -> None:
        try:
            import cv2
        except ImportError:
            raise DetectorUnavailable(f"analysis: the person detector needs OpenCV: {EXTRA}") from None
        if not hasattr(cv2, "HOGDescriptor_getDefaultPeopleDetector"):
            raise DetectorUnavailable(f"analysis: this OpenCV has no HOG people detector: {EXTRA}")
        self.settings = settings
        self._cv2: Any = cv2
        self._hog = cv2.HOGDescriptor()
        self._hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())

    def analyze(self, path: Path) -> Detection:
        s = self.settings
        tags: list[Tag] = []
        for sample in sample_frames(Path(path), s.frames):
            frame = sample.frame
            height = max(2, round(frame.height * s.width / max(frame.width, 1) / 2) * 2)
            img = frame.reformat(width=s.width, height=height, format="bgr24").to_ndarray()
            _, weights = self._hog.detectMultiScale(img, winStride=(8, 8), padding=(8, 8), scale=1.05)
            best = max((confidence(w) for w in weights.ravel()), default=0.0) if len(weights) else 0.0
            if best >= s.min_confidence:
                tags.append(Tag(label="person", confidence=best, at_s=round(sample.at_s, 2)))
        return Detection(tags=tags)
