"""What every per-shard stage shares: its command line, logging, and the loop over videos.

A stage processes each video of its shard with a function that returns ``"done"`` or
``"skipped"`` (cache current) or raises. A failure is logged with the video id and the error's own
message (which names the file and the problem) and the loop goes on; at the end a summary is
logged and the exit code is non-zero if any video failed, unless ``data.allow_failures`` is set.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from pipeline.core import layout
from pipeline.core.atomic import clean_stale
from pipeline.core.manifest import VideoEntry, read_shard
from pipeline.core.params import DEFAULT_PARAMS, Params, load_params

log = logging.getLogger("rjcma")
FAILURES_FILE = "failures.tsv"  # in a per-shard output folder: the videos that failed, and why
OUR_LOGGERS = ("rjcma", "pipeline", "stages", "fusion")  # module loggers of this project


def setup_logging(verbose: bool = False) -> None:
    """Log to stderr as ``LEVEL name: message``; idempotent."""
    level = logging.DEBUG if verbose else logging.INFO
    root = logging.getLogger()
    if not any(getattr(h, "_rjcma", False) for h in root.handlers):
        h = logging.StreamHandler(sys.stderr)
        h.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        h._rjcma = True  # type: ignore[attr-defined]
        root.addHandler(h)
    root.setLevel(logging.DEBUG if verbose else logging.WARNING)  # third-party chatter: warnings only
    for name in OUR_LOGGERS:
        logging.getLogger(name).setLevel(level)


def stage_parser(prog: str, description: str, shard: bool = True) -> argparse.ArgumentParser:
    """The standard stage command line: ``--params``, ``--data`` and (per-shard stages) ``--shard``."""
    p = argparse.ArgumentParser(prog=prog, description=description.replace("``", ""))
    p.add_argument("--params", default=DEFAULT_PARAMS, help="params file (default: %(default)s)")
    p.add_argument("--data", default=str(layout.DATA), help="data directory (default: %(default)s)")
    if shard:
        p.add_argument("--shard", type=int, required=True, help="shard index to process")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return p


@dataclass
class Summary:
    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    def line(self, name: str) -> str:
        return (f"{name}: {len(self.done)} done, {len(self.skipped)} skipped (current), "
                f"{len(self.failed)} failed in {self.seconds:.1f} s")


def run_videos(name: str, entries: Sequence[VideoEntry],
               process: Callable[[VideoEntry], str]) -> Summary:
    """Run ``process`` on each entry with a progress bar, isolating failures per video."""
    summary = Summary()
    t0 = time.perf_counter()
    for entry in tqdm(entries, desc=name, unit="video", disable=None):
        try:
            status = process(entry)
        except KeyboardInterrupt:
            raise
        except Exception as e:  # one broken video never aborts the others
            msg = str(e) or type(e).__name__
            summary.failed[entry.id] = msg
            log.error("%s: video %s failed: %s", name, entry.id, msg)
            log.debug("traceback", exc_info=True)
            continue
        (summary.skipped if status == "skipped" else summary.done).append(entry.id)
    summary.seconds = time.perf_counter() - t0
    log.info(summary.line(name))
    for vid, msg in summary.failed.items():
        log.info("  failed %s: %s", vid, msg)
    return summary


def exit_code(summary: Summary, params: Params) -> int:
    """0 unless some video failed and ``data.allow_failures`` is false."""
    return 1 if summary.failed and not params.data.allow_failures else 0


def write_failures(out_dir: Path, summary: Summary) -> None:
    """``<out_dir>/failures.tsv`` listing the failed videos (``video_id<TAB>error``), or no such
    file when none failed. The folder itself always exists afterwards (DVC needs every output)."""
    from pipeline.core.atomic import write_text

    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / FAILURES_FILE
    if not summary.failed:
        path.unlink(missing_ok=True)
        return
    rows = [f"{vid}\t{' '.join(msg.split())}" for vid, msg in sorted(summary.failed.items())]
    write_text(path, "video_id\terror\n" + "\n".join(rows) + "\n")


def shard_stage_main(name: str, description: str,
                     make_process: Callable[[Params, int, Path], Callable[[VideoEntry], str]],
                     argv: Sequence[str] | None = None,
                     output: Callable[[int, Path], Path] | None = None) -> int:
    """Entry point shared by the per-shard stages.

    ``make_process(params, shard, data_dir)`` returns the per-video function (it may load models
    once). Errors before the loop (bad params, missing manifest, missing model) are one clear line
    and exit code 2. ``output(shard, data_dir)``: the stage's output folder, cleared of the
    temporaries a crash left before the loop; with ``data.allow_failures`` it is created even when
    every video failed, with the failure list (:func:`write_failures`), so DVC runs the stages
    after it for the videos that succeeded.
    """
    args = stage_parser(f"python -m stages.{name}", description).parse_args(argv)
    setup_logging(args.verbose)
    try:
        params = load_params(args.params)
        data = Path(args.data)
        entries = read_shard(args.shard, data)
        if output is not None:
            clean_stale(output(args.shard, data))
        process = make_process(params, args.shard, data)
    except Exception as e:
        log.error("%s: %s", name, e)
        log.debug("traceback", exc_info=True)
        return 2
    summary = run_videos(f"{name}[{args.shard}]", entries, process)
    if output is not None and (params.data.allow_failures or not summary.failed):
        write_failures(output(args.shard, data), summary)
    return exit_code(summary, params)
