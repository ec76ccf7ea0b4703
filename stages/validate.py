"""Check a dataset root for layout problems before running any expensive stage.

Reports, naming each file: labels without a video, label rows vs video frames off by more than
``data.label_tolerance``, unreadable or corrupt videos and label files, colliding ids, face-crop
folders without a video, an empty dataset, too few labeled videos for ``data.folds``.
Exit status 1 when there are errors, 0 with warnings only. Nothing is written.

Runs from any directory: without ``--params`` it reads ``./params.yaml`` when there is one, else the
built-in defaults (pipeline/core/params.py), and the report's first line says which it used.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from pipeline.core.params import DEFAULT_PARAMS, Params, load_params
from pipeline.core.stage import setup_logging
from pipeline.dataset.validate import report, validate

log = logging.getLogger("rjcma.validate")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m stages.validate", description=__doc__.splitlines()[0],
                                epilog="Exit status: 0 = no errors (warnings allowed), 1 = errors, "
                                       "2 = bad params.")
    p.add_argument("--params", default=None,
                   help=f"params file (default: ./{DEFAULT_PARAMS} if present, else built-in defaults)")
    p.add_argument("--root", default=None, help="dataset root (default: data.root from the params)")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return p


def read_params(path: str | None) -> tuple[Params, str]:
    """The params to validate with and where they came from: ``path`` (must exist), else
    ``./params.yaml`` when present, else the built-in defaults."""
    if path is None and not Path(DEFAULT_PARAMS).is_file():
        return Params(), f"built-in defaults (no {DEFAULT_PARAMS} in {Path.cwd()})"
    path = path or DEFAULT_PARAMS
    return load_params(path), str(path)


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    setup_logging(args.verbose)
    try:
        params, used = read_params(args.params)
        if args.root:
            params = replace(params, data=replace(params.data, root=args.root))
    except Exception as e:
        log.error("validate: %s", e)
        return 2
    result = validate(params)
    print(f"params: {used}")
    print(report(result, params.data.root))
    return 1 if result.errors else 0


if __name__ == "__main__":
    sys.exit(main())
