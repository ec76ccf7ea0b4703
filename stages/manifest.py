"""Scan the dataset root and write the manifest: videos, shard lists, labels and folds.

Writes under ``<data>/manifest/`` (docs/dataset.md): ``videos.json``, ``shards/<k>.json`` for
k < data.shards, ``labels.h5``, ``folds.json`` and ``problems.json`` (every problem found, naming
the file). A corrupt video or a bad label file is reported and left out; the others go on. Exit
status 1 when anything was left out (unless data.allow_failures) or the folds cannot be made.
Output bytes are deterministic (sorted, no timestamps).
"""

from __future__ import annotations

import logging
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from pipeline.core import layout
from pipeline.core.atomic import write_json
from pipeline.core.manifest import write_shards
from pipeline.core.params import load_params
from pipeline.core.stage import setup_logging, stage_parser
from pipeline.dataset.folds import FoldsError, make_folds, write_folds
from pipeline.dataset.labels import write_labels
from pipeline.dataset.lists import ListError, trial_order
from pipeline.dataset.scan import Problem, scan

log = logging.getLogger("rjcma.manifest")


def problems_file(data: Path) -> Path:
    return layout.manifest_dir(data) / "problems.json"


def log_problems(problems: Sequence[Problem], listed_in: Path, verbose: bool = False) -> None:
    """One line per error; a warning shared by several files (e.g. ``no audio track``) once, with
    its count (every file with ``-v``, and all of them in ``problems.json``)."""
    shared = Counter(p.message for p in problems if p.level == "warning")
    for p in problems:
        if p.level == "error" or verbose or shared[p.message] == 1:
            (log.error if p.level == "error" else log.warning)("%s: %s", p.path, p.message)
    for message, n in sorted(shared.items()):
        if n > 1 and not verbose:
            log.warning("%d files: %s (listed in %s)", n, message, listed_in)


def main(argv: Sequence[str] | None = None) -> int:
    args = stage_parser("python -m stages.manifest", __doc__.splitlines()[0], shard=False).parse_args(argv)
    setup_logging(args.verbose)
    try:
        params = load_params(args.params)
    except Exception as e:
        log.error("manifest: %s", e)
        return 2
    data, t0 = Path(args.data), time.perf_counter()
    result = scan(params.data.root, params.data, params.asr.transcripts_dir)
    try:
        folds = make_folds(result.entries, params.data.folds, params.data.fold_scheme,
                           trial_order(params.data.trial_order), params.data.trial_order)
    except (FoldsError, ListError) as e:
        result.problems.append(Problem(params.data.root, str(e)))
        folds = None
    log_problems(result.problems, problems_file(data), args.verbose)
    write_shards(result.entries, params.data.shards, data)
    write_labels(layout.labels_file(data), result.labels)
    write_json(problems_file(data), [p.to_dict() for p in result.problems])
    if folds is not None:
        write_folds(layout.folds_file(data), folds)
    else:
        layout.folds_file(data).unlink(missing_ok=True)  # never leave stale folds behind
    parts = Counter(e.partition for e in result.entries)
    n_frames = sum(e.n_frames for e in result.entries)
    log.info("manifest: %d videos (%d train, %d validation, %d test; %d frames, %d labeled) in %d "
             "shards, %d folds, %d error(s), %d warning(s) in %.1f s -> %s",
             len(result.entries), parts["train"], parts["validation"], parts["test"], n_frames,
             len(result.labels), params.data.shards, len(folds["folds"]) if folds else 0,
             len(result.errors), len(result.warnings), time.perf_counter() - t0,
             layout.manifest_dir(data))
    if result.errors:
        log.info("problems listed in %s", problems_file(data))
    if folds is None:  # a configuration error: data.allow_failures does not excuse it
        return 1
    return 1 if result.errors and not params.data.allow_failures else 0


if __name__ == "__main__":
    sys.exit(main())
