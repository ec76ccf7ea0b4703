"""Ingestion throughput: probing + hashing (manifest scan), and audio extraction, in video frames/s.

Writes N real videos (OpenCV frames + an AAC tone muxed by ffmpeg) under bench/out/ingest/, then
times `pipeline.dataset.scan.scan` (probe + sha256 of every file) with each `data.count_frames` mode and
`pipeline.core.media.extract_wav` per video. Run: `python bench/ingest.py [--videos 6 --seconds 60]`.
"""

from __future__ import annotations

import argparse
import platform
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.core.media import extract_wav  # noqa: E402
from pipeline.core.params import DataParams  # noqa: E402
from pipeline.dataset.scan import scan  # noqa: E402
from tests.media_fixtures import make_video  # noqa: E402

OUT = Path("bench/out/ingest")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", type=int, default=6)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--fps", type=float, default=30.0)
    ap.add_argument("--size", default="640x360", help="WxH")
    args = ap.parse_args()
    w, h = map(int, args.size.split("x"))
    n_frames = int(args.seconds * args.fps)
    shutil.rmtree(OUT, ignore_errors=True)
    t0 = time.perf_counter()
    for i in range(args.videos):
        make_video(OUT / "videos" / f"v{i}.mp4", n_frames=n_frames, fps=args.fps, size=(w, h), seed=i)
    total = args.videos * n_frames
    mb = sum(p.stat().st_size for p in (OUT / "videos").iterdir()) / 1e6
    print(f"{platform.processor() or platform.machine()}, {args.videos} videos x {args.seconds:g} s "
          f"at {args.fps:g} fps {w}x{h} ({total} frames, {mb:.1f} MB), made in "
          f"{time.perf_counter() - t0:.1f} s")
    for mode in ("header", "auto", "decode"):
        t = time.perf_counter()
        result = scan(OUT, DataParams(count_frames=mode), progress=False)
        dt = time.perf_counter() - t
        assert len(result.entries) == args.videos and not result.errors
        print(f"scan (probe + hash), count_frames={mode}: {dt:.2f} s = {dt / args.videos * 1e3:.0f} "
              f"ms/video, {total / dt:,.0f} frames/s")
    t = time.perf_counter()
    for e in result.entries:
        extract_wav(e.source, OUT / "wav" / f"{e.id}.wav")
    dt = time.perf_counter() - t
    print(f"extract_wav: {dt:.2f} s = {dt / args.videos * 1e3:.0f} ms/video, {total / dt:,.0f} "
          f"frames/s ({args.videos * args.seconds / dt:,.0f}x real time); wav "
          f"{sum(p.stat().st_size for p in (OUT / 'wav').iterdir()) / total:,.0f} B/frame")


if __name__ == "__main__":
    main()
