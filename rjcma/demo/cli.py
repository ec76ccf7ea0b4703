"""The demo generator's command line: ``python -m rjcma.demo`` (``rjcma demo``)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from rjcma.demo.build import generate
from rjcma.demo.plan import FPS, N_VIDEOS, SECONDS, DemoConfig

log = logging.getLogger("rjcma.demo")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m rjcma.demo",
        description="Generate the synthetic demo dataset (Aff-Wild2 layout: videos, cropped_aligned "
                    "face crops, annotations, word-level transcripts) whose valence/arousal drive "
                    "face, voice and words. Needs espeak-ng. Same seed → byte-identical files.")
    parser.add_argument("--out", type=Path, default=Path("data/demo"), help="dataset root to (re)write")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--videos", type=int, default=N_VIDEOS, help="number of video files")
    parser.add_argument("--seconds", type=float, default=SECONDS, help="mean duration of a video")
    parser.add_argument("--fps", type=int, default=FPS)
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(message)s")
    cfg = DemoConfig(seed=args.seed, videos=args.videos, seconds=args.seconds, fps=args.fps)
    summary = generate(cfg, args.out)
    n_files = sum(1 for p in args.out.rglob("*") if p.is_file())
    n_bytes = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    parts = {}
    for v in summary["videos"]:
        parts[v["partition"]] = parts.get(v["partition"], 0) + len(v["persons"])
    log.info("wrote %s: %d videos (%s persons), %d frames, %d files, %.2f MB",
             args.out, len(summary["videos"]), ", ".join(f"{k} {n}" for k, n in parts.items()),
             sum(v["n_frames"] for v in summary["videos"]), n_files, n_bytes / 1e6)
    return 0
