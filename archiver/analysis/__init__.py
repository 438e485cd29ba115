"""What is in each clip: detectors registered by name, like sources and destinations.

A detector reads one stored clip (a local file) and returns a :class:`Detection`: an activity score
(0.0-1.0, ``motion``) and/or tags (``{label, confidence, at_s}``: ``person``, ``onnx``). Everything else
reaches a detector only through :class:`Detector` and :data:`DETECTORS`: adding one is a module with a
class (``name``, ``version``, ``analyze(path)``) built from the settings, plus one line in
:data:`DETECTORS`. No model is ever downloaded: ``person`` uses the HOG people detector built into OpenCV,
``onnx`` a model file the user gives.

The analysis runs after a clip is stored, in a bounded worker off the download path
(:mod:`archiver.analysis.runner`): it never delays or fails archiving.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Protocol

from pydantic import BaseModel, Field

from archiver.errors import ConfigError

if TYPE_CHECKING:
    from archiver.config import AnalysisSettings


class Tag(BaseModel):
    """One detection: what (``label``), how sure (0-1) and when in the clip (seconds from its start)."""

    label: str
    confidence: float = Field(ge=0.0, le=1.0)
    at_s: float = Field(ge=0.0)


class Detection(BaseModel):
    """One detector's answer for one clip."""

    activity: float | None = Field(default=None, ge=0.0, le=1.0)  # share of the picture that changed
    tags: list[Tag] = Field(default_factory=list)


class Detector(Protocol):
    name: ClassVar[str]  # the registry key, stored with the results
    version: ClassVar[str]  # bumped when results change meaning: `archiver analyze` redoes older ones

    def analyze(self, path: Path) -> Detection:
        """Analyse the clip at ``path`` (blocking; run in a worker thread). Raise MediaError when the
        clip cannot be read."""
        ...


DetectorFactory = Callable[["AnalysisSettings"], Detector]


class DetectorUnavailable(ConfigError):
    """A configured detector cannot run here (its optional extra is not installed, no model file)."""


def _motion(settings: AnalysisSettings) -> Detector:
    from archiver.analysis.motion import MotionDetector

    return MotionDetector(settings)


def _person(settings: AnalysisSettings) -> Detector:
    from archiver.analysis.person import PersonDetector

    return PersonDetector(settings.person)


def _onnx(settings: AnalysisSettings) -> Detector:
    from archiver.analysis.yolo import OnnxDetector

    return OnnxDetector(settings.onnx)


DETECTORS: dict[str, DetectorFactory] = {
    "motion": _motion,
    "person": _person,
    "onnx": _onnx,
}


def build_detectors(settings: AnalysisSettings, only: str | None = None) -> list[Detector]:
    """The configured detectors (or just ``only``), built once. A name that is not registered, or one
    whose extra is missing, is a clear one-line error (exit 2: a person must act)."""
    names = [only] if only else list(settings.detectors)
    out: list[Detector] = []
    for name in names:
        factory = DETECTORS.get(name)
        if factory is None:
            raise ConfigError(
                f"analysis: unknown detector {name!r}; registered: {', '.join(sorted(DETECTORS))}"
            )
        out.append(factory(settings))
    return out
