"""Cross-fold report: CCC per fold and target and over folds, plots, challenge-format test predictions.

Reads exactly the runs ``train.folds`` x ``train.targets`` of ``results/train/`` (never other
folders found there) and writes ``results/report/`` (fusion/report.py lists its files):
``metrics.json`` (DVC's top-level metrics), training curves and predicted-vs-true traces of
``report.plot_videos`` validation videos per run (PNG + CSV), and per test video a file with header
``valence,arousal`` and one row per frame: the mean of the folds' models' predictions.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from fusion.report import ReportError, write_report
from pipeline.core import layout
from pipeline.core.params import load_params
from pipeline.core.stage import setup_logging, stage_parser

log = logging.getLogger("rjcma.report")


def main(argv: Sequence[str] | None = None) -> int:
    p = stage_parser("python -m stages.report", __doc__.splitlines()[0], shard=False)
    p.add_argument("--results", default=str(layout.RESULTS), help="results directory (default: %(default)s)")
    args = p.parse_args(argv)
    setup_logging(args.verbose)
    t0 = time.perf_counter()
    try:
        params = load_params(args.params)
        results = Path(args.results)
        out = layout.report_dir(results)
        metrics = write_report(out, params.train.folds, params.train.targets, params.report.plot_videos,
                               submission_list=params.report.submission_list,
                               results=results, data_root=Path(args.data))
    except (ReportError, FileNotFoundError, ValueError) as e:
        log.error("report: %s", e)
        log.debug("traceback", exc_info=True)
        return 2
    ccc = metrics["ccc"]
    log.info("report: validation CCC over %d fold(s): %s -> %s (%.1f s)", len(params.train.folds),
             ", ".join(f"{t} {v:.4f}" if v is not None else f"{t} n/a" for t, v in ccc.items()),
             out, time.perf_counter() - t0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
