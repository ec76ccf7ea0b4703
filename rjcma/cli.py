"""``rjcma``: the user-facing command.

- ``rjcma predict VIDEO --model RUN_DIR``: per-frame valence/arousal CSV + PNG for any video;
- ``rjcma validate``: check a dataset root's layout before any expensive stage;
- ``rjcma demo``: regenerate the built-in demo dataset.

The DVC stages themselves run as ``python -m stages.<name>`` (see dvc.yaml).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from pipeline.core.stage import setup_logging

log = logging.getLogger("rjcma")


def transcript_for(video: str, given: str | None) -> Path | None:
    """The transcript of ``video``: ``given`` itself, or ``given/<stem>.json|csv`` for a folder."""
    if not given:
        return None
    given_path = Path(given)
    if not given_path.is_dir():
        return given_path
    from pipeline.core.layout import find_transcript

    found = find_transcript(given_path, Path(video).stem)
    if found is not None:
        return found
    log.warning("%s: no %s.json or .csv in %s; using ASR", video, Path(video).stem, given_path)
    return None


def _predict(args: argparse.Namespace) -> int:
    from rjcma.predict import Predictor, write_outputs

    out = Path(args.out)
    if args.transcript and Path(args.transcript).is_file() and len(args.videos) > 1:
        log.error("--transcript %s is one file but %d videos were given; pass a folder of "
                  "<video>.json|csv transcripts instead", args.transcript, len(args.videos))
        return 2
    stems = [Path(v).stem for v in args.videos]
    clash = sorted({s for s in stems if stems.count(s) > 1})
    if clash:
        log.error("videos with the same name would overwrite each other's outputs in %s: %s",
                  out, ", ".join(clash))
        return 2
    if out.exists() and not out.is_dir():
        log.error("--out %s: exists and is not a directory", out)
        return 2
    try:  # checkpoints and feature models load once for all the videos
        predictor = Predictor(args.model, args.device, args.face_source)
    except (FileNotFoundError, ValueError) as e:
        log.error("%s", e)
        return 2
    failed = 0
    for video in args.videos:
        try:
            transcript = transcript_for(video, args.transcript)
            pred = predictor(video, transcript=transcript, crops_dir=args.crops)
        except Exception as e:  # one unreadable video never stops the others
            msg = str(e) or type(e).__name__
            log.error("%s", msg if str(video) in msg else f"{video}: {msg}")
            log.debug("traceback", exc_info=True)
            failed += 1
            continue
        csv_path, png_path = write_outputs(pred, out)
        means = ", ".join(f"mean {t} {v.mean():+.3f}" for t, v in pred.values.items())
        log.info("%s: %d frames at %.2f fps -> %s, %s (%s)", video, pred.n_frames, pred.fps,
                 csv_path, png_path, means)
        for note in pred.notes:
            log.warning("%s: %s", video, note)
    log.info("predict: %d of %d videos done", len(args.videos) - failed, len(args.videos))
    return 1 if failed else 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rjcma", description="rjcma: emotion recognition from videos "
                                "(valence/arousal per frame). DVC stages run as python -m stages.<name>.")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True)

    pr = sub.add_parser("predict", help="per-frame valence/arousal for video files",
                        description="Run the trained model on video files: writes <out>/<video>.csv "
                        "(frame,time,<targets>,face) and <out>/<video>.png.")
    pr.add_argument("videos", nargs="+", metavar="VIDEO", help="video file(s)")
    pr.add_argument("--model", required=True,
                    help="a run directory (results/train/<fold>-<target>) or a directory of runs "
                         "(e.g. results/train: runs of one target are averaged)")
    pr.add_argument("--out", default="predictions", help="output directory (default: %(default)s)")
    pr.add_argument("--transcript", help="word-level transcript (JSON or CSV of word,start,end) "
                                         "instead of ASR, or a folder of <video>.json|csv")
    pr.add_argument("--crops", help="a folder of face crops 00001.jpg ... (Aff-Wild2 cropped_aligned)")
    pr.add_argument("--face-source", choices=["auto", "crops", "frames", "detect"],
                    help="override how faces are found (default: as trained; detect without crops)")
    pr.add_argument("--device", default="auto",
                    help="torch device for the models and feature backbones: auto (CUDA when "
                         "available, else the CPU), cpu, cuda, cuda:N, ...; never the device the "
                         "checkpoints were trained on (default: %(default)s)")
    pr.set_defaults(func=_predict)

    va = sub.add_parser("validate", help="check a dataset root's layout (see stages.validate)",
                        add_help=False)
    va.set_defaults(func=None, module="stages.validate")
    de = sub.add_parser("demo", help="regenerate the demo dataset (see rjcma.demo)", add_help=False)
    de.set_defaults(func=None, module="rjcma.demo")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("validate", "demo"):  # delegate: their own parsers and --help
        import importlib

        module = {"validate": "stages.validate", "demo": "rjcma.demo"}[argv[0]]
        return int(importlib.import_module(module).main(argv[1:]) or 0)
    args = parser().parse_args(argv)
    setup_logging(args.verbose)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
