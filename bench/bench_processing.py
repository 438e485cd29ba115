"""How much does MediaProcessor add on top of the ffmpeg it runs?

Generates a ~10 s 1280x720 30 fps H.264 clip (with AAC audio, like a Blink clip), then times, alternating
and after one warm-up each:

  (a) direct     the exact argv ``transcode_cmd`` builds for the h264 profile, run with subprocess.run
  (b) processor  ``MediaProcessor.process`` with transcode=h264, probe on, thumbnail blink (with a Blink
                 thumbnail, so none is generated): probe of the original + the same transcode + probe of
                 its output, through the worker pool (asyncio.to_thread)

and prints medians, the overhead ratio (b)/(a) (goal: within 5 %), and the probe alone.

    python bench/bench_processing.py [--preset veryfast] [--reps 3] [--seconds 10]

The default preset is ``veryfast`` to keep the run under a minute on a small machine; with a slower
preset the transcode grows and the fixed probe cost (two ffmpeg launches) shrinks in relative terms.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from archiver.config import ProcessingSettings
from archiver.media.ffmpeg import find_ffmpeg
from archiver.media.probe import probe
from archiver.media.processor import MediaProcessor
from archiver.media.transcode import transcode_cmd


def make_clip(ffmpeg: str, dst: Path, seconds: float) -> None:
    subprocess.run(
        [
            ffmpeg,
            "-hide_banner",
            "-nostdin",
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=1280x720:rate=30",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=16000",
            "-t",
            str(seconds),
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "60",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-b:a",
            "32k",
            "-movflags",
            "+faststart",
            str(dst),
        ],
        check=True,
        timeout=120,
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="veryfast")
    ap.add_argument("--crf", type=int, default=28)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--seconds", type=float, default=10.0)
    args = ap.parse_args()

    ffmpeg = find_ffmpeg(None)
    settings = ProcessingSettings(
        transcode="h264",
        crf=args.crf,
        preset=args.preset,
        probe=True,
        thumbnail="blink",
        preview="off",
        workers=1,
    )
    with tempfile.TemporaryDirectory(prefix="bench-media-") as tmp:
        root = Path(tmp)
        clip = root / "clip.mp4"
        t0 = time.perf_counter()
        make_clip(ffmpeg, clip, args.seconds)
        print(f"ffmpeg:   {ffmpeg}")
        print(
            f"clip:     {args.seconds:g} s 1280x720 30 fps, {clip.stat().st_size / 1e6:.2f} MB "
            f"(generated in {time.perf_counter() - t0:.2f} s)"
        )
        print(
            f"profile:  h264 crf={args.crf} preset={args.preset}, "
            f"{args.reps} reps + 1 warm-up each, alternating"
        )

        direct_cmd = transcode_cmd(clip, root / "direct.h264.mp4", "h264", args.crf, args.preset, ffmpeg)
        processor = MediaProcessor(settings)

        def run_direct() -> float:
            t = time.perf_counter()
            subprocess.run(direct_cmd, check=True, stdin=subprocess.DEVNULL, capture_output=True, timeout=600)
            return time.perf_counter() - t

        def run_processor() -> float:
            t = time.perf_counter()
            res = asyncio.run(processor.process(clip, root / "work", has_blink_thumbnail=True))
            elapsed = time.perf_counter() - t
            if res.warnings or not res.derived:
                raise SystemExit(f"processor failed: {res.warnings}")
            return elapsed

        run_direct()
        run_processor()  # warm-ups (page cache, encoder list cache)
        direct: list[float] = []
        proc: list[float] = []
        for i in range(args.reps):
            order = (run_direct, run_processor) if i % 2 == 0 else (run_processor, run_direct)
            for fn in order:
                (direct if fn is run_direct else proc).append(fn())

        probes = []
        for _ in range(7):
            t = time.perf_counter()
            probe(clip, ffmpeg)
            probes.append(time.perf_counter() - t)
        full = []
        for _ in range(3):
            t = time.perf_counter()
            probe(clip, ffmpeg, decode="full")
            full.append(time.perf_counter() - t)

    md, mp = statistics.median(direct), statistics.median(proc)
    mprobe = statistics.median(probes)
    print()
    print(f"{'':28} {'median':>9} {'min':>9} {'max':>9}")
    print(f"{'(a) direct subprocess':28} {md:9.3f} {min(direct):9.3f} {max(direct):9.3f}")
    print(f"{'(b) MediaProcessor.process':28} {mp:9.3f} {min(proc):9.3f} {max(proc):9.3f}")
    print(f"{'probe alone (keyframes)':28} {mprobe:9.3f} {min(probes):9.3f} {max(probes):9.3f}")
    mfull = statistics.median(full)
    print(f"{'probe alone (full decode)':28} {mfull:9.3f} {min(full):9.3f} {max(full):9.3f}")
    print()
    ratio, ratio_min = mp / md, min(proc) / min(direct)
    print(
        f"overhead (b)/(a): median {ratio:.3f} ({(ratio - 1) * 100:+.1f} %), "
        f"min {ratio_min:.3f} ({(ratio_min - 1) * 100:+.1f} %); goal within 5 %"
    )
    rest = min(proc) - min(direct) - 2 * min(probes)
    print(
        f"  expected extra work: 2 probes (original + output) = {2 * mprobe:.3f} s; "
        f"unexplained (min-based): {rest:+.3f} s"
    )
    print("  (min is the steadier estimate on a shared machine; ffmpeg itself uses every core)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
