"""What every per-shard stage shares: its command line, logging, and the loop over videos.

A stage processes each video of its shard with a function that returns ``"done"`` or
``"skipped"`` (cache current) or raises. A failure is logged with the video id and the error's own
message (which names the file and the problem) and the loop goes on; at the end a summary is
logged and the exit code is non-zero if any video failed, unless ``data.allow_failures`` is set.

Per-video conditions (silent audio, no face, no words) come back as an :class:`Outcome`, for
skipped videos too; the stage logs one line per condition with its count and writes the ids to
``conditions.json`` in the shard's output folder (one line per video only with ``-v``). A stage
of a chain the configuration does not use (pipeline/core/uses.py) does nothing but say so.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from pipeline.core import layout
from pipeline.core.atomic import clean_stale, write_json, write_text
from pipeline.core.manifest import VideoEntry, read_shard
from pipeline.core.params import DEFAULT_PARAMS, Params, load_params
from pipeline.core.uses import UNUSED_FILE, read_usage

log = logging.getLogger("rjcma")
FAILURES_FILE = "failures.tsv"  # in a per-shard output folder: the videos that failed, and why
OUR_LOGGERS = ("rjcma", "pipeline", "stages", "fusion")  # module loggers of this project
CONDITIONS_FILE = "conditions.json"  # per-video conditions of a shard, beside the stage's outputs


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


@dataclass(frozen=True)
class Outcome:
    """What a per-video function may return instead of a bare status: the status and the video's
    conditions (e.g. ``("silent audio",)``), reported whether it was done or skipped."""

    status: str  # "done" | "skipped"
    conditions: tuple[str, ...] = ()


@dataclass
class Summary:
    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    conditions: dict[str, list[str]] = field(default_factory=dict)  # condition -> video ids

    def line(self, name: str) -> str:
        return (f"{name}: {len(self.done)} done, {len(self.skipped)} skipped (current), "
                f"{len(self.failed)} failed in {self.seconds:.1f} s")


def run_videos(name: str, entries: Sequence[VideoEntry],
               process: Callable[[VideoEntry], str | Outcome]) -> Summary:
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
        if isinstance(status, Outcome):
            for condition in status.conditions:
                summary.conditions.setdefault(condition, []).append(entry.id)
                log.debug("%s: video %s: %s", name, entry.id, condition)
            status = status.status
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
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / FAILURES_FILE
    if not summary.failed:
        path.unlink(missing_ok=True)
        return
    rows = [f"{vid}\t{' '.join(msg.split())}" for vid, msg in sorted(summary.failed.items())]
    write_text(path, "video_id\terror\n" + "\n".join(rows) + "\n")


def write_conditions(out_dir: Path, name: str, summary: Summary) -> Path | None:
    """``<out_dir>/conditions.json`` = ``{condition: [video ids]}`` (sorted; rewritten only when it
    changes, removed when there is none); one log line per condition. Returns the file or None."""
    path = out_dir / CONDITIONS_FILE
    conditions = {c: sorted(ids) for c, ids in sorted(summary.conditions.items())}
    if not conditions:
        path.unlink(missing_ok=True)
        return None
    try:
        current = json.loads(path.read_text())
    except (OSError, ValueError):
        current = None
    if current != conditions:  # an unchanged file keeps its mtime
        write_json(path, conditions)
    for condition, ids in conditions.items():
        log.warning("%s: %s: %d video(s), listed in %s", name, condition, len(ids), path)
    return path


def shard_stage_main(name: str, description: str,
                     make_process: Callable[[Params, int, Path], Callable[[VideoEntry], str | Outcome]],
                     argv: Sequence[str] | None = None, *,
                     out_dir: Callable[[int, Path], Path] | None = None, chain: str = "") -> int:
    """Entry point shared by the per-shard stages.

    ``make_process(params, shard, data_dir)`` returns the per-video function (it may load models
    once). Errors before the loop (bad params, missing manifest, missing model) are one clear line
    and exit code 2. ``out_dir(shard, data_dir)``: the shard's output folder, cleared of the
    temporaries a crash left before the loop; the videos' conditions go there
    (:func:`write_conditions`), and with ``data.allow_failures`` it is created even when every video
    failed, with the failure list (:func:`write_failures`), so DVC runs the stages after it for the
    videos that succeeded. ``chain``: the extraction chain of the stage (pipeline/core/uses.py);
    when it is unused, no model is loaded and no video read: the stage writes ``unused.json`` into
    ``out_dir`` and says so once.
    """
    args = stage_parser(f"python -m stages.{name}", description).parse_args(argv)
    setup_logging(args.verbose)
    label = f"{name}[{args.shard}]"
    try:
        params = load_params(args.params)
        data = Path(args.data)
        entries = read_shard(args.shard, data)
        out = out_dir(args.shard, data) if out_dir is not None else None
        if out is not None:
            clean_stale(out)
        usage = read_usage(chain, data) if chain else None
        if out is not None and usage is not None:
            if not usage.used:
                write_json(out / UNUSED_FILE, {"chain": chain, "stage": name, "shard": args.shard,
                                               "why": usage.why})
                log.info("%s: nothing to extract for %d videos: %s", label, len(entries), usage.why)
                return 0
            (out / UNUSED_FILE).unlink(missing_ok=True)
        process = make_process(params, args.shard, data)
    except Exception as e:
        log.error("%s: %s", name, e)
        log.debug("traceback", exc_info=True)
        return 2
    summary = run_videos(label, entries, process)
    if out is not None:
        if params.data.allow_failures or not summary.failed:
            write_failures(out, summary)  # creates the folder (DVC needs every output)
        if out.is_dir():
            write_conditions(out, label, summary)
    return exit_code(summary, params)
