"""Clip validation and derived media (thumbnails, transcodes, previews) with ffmpeg.

Import from the submodules: ``ffmpeg`` (finding and running the binaries), ``probe`` (MP4/JPEG sniffing
and ffprobe), ``thumbnail`` (thumbnails and previews), ``transcode`` (profiles) and ``processor``
(:class:`~archiver.media.processor.MediaProcessor`, what the pipeline uses).
"""
