"""Clip validation and derived media (thumbnails, transcodes, previews) with ffmpeg.

The pipeline uses :class:`MediaProcessor`; the download step uses :func:`looks_like_mp4` /
:func:`looks_like_jpeg` to sniff bodies cheaply.

The functions ``probe`` and ``transcode`` are deliberately *not* re-exported here: the names would shadow
the submodules ``archiver.media.probe`` / ``archiver.media.transcode`` (and break ``import ... as`` and
monkeypatching). Use ``from archiver.media.probe import probe``.
"""

from __future__ import annotations

from archiver.media.ffmpeg import FFmpegError, encoders, find_ffmpeg, find_ffprobe, run
from archiver.media.probe import MediaInfo, looks_like_jpeg, looks_like_mp4, mp4_structure_problem
from archiver.media.processor import DerivedFile, MediaProcessor, ProcessResult
from archiver.media.thumbnail import Preview, make_preview, make_thumbnail
from archiver.media.transcode import PROFILES, Profile, TranscodeResult

__all__ = [
    "PROFILES",
    "DerivedFile",
    "FFmpegError",
    "MediaInfo",
    "MediaProcessor",
    "Preview",
    "ProcessResult",
    "Profile",
    "TranscodeResult",
    "encoders",
    "find_ffmpeg",
    "find_ffprobe",
    "looks_like_jpeg",
    "looks_like_mp4",
    "make_preview",
    "make_thumbnail",
    "mp4_structure_problem",
    "run",
]
