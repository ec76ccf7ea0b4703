"""Stage ``uses``: which extraction chains the configuration uses, one file per chain.

    python -m stages.uses [--params params.yaml] [--data data]

Writes ``<data>/uses/{wav,audio,visual,text}.json`` (``{"chain", "used", "why"}``) from
``fusion.modalities`` and ``asr.engine`` (rules in pipeline/core/uses.py). The per-shard stages of a
chain depend on its file: a stage whose chain is unused extracts nothing, and a change that keeps a
chain's verdict (``fusion.recursions``, another modality) leaves its stages alone.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from pipeline.core.params import load_params
from pipeline.core.stage import setup_logging, stage_parser
from pipeline.core.uses import chain_uses, write_uses

log = logging.getLogger("rjcma.uses")


def main(argv: Sequence[str] | None = None) -> int:
    args = stage_parser("python -m stages.uses", __doc__.split("\n\n")[0], shard=False).parse_args(argv)
    setup_logging(args.verbose)
    try:
        params = load_params(args.params)
    except Exception as e:
        log.error("uses: %s", e)
        return 2
    usages = chain_uses(params)
    write_uses(usages, Path(args.data))
    log.info("uses: %s", ", ".join(f"{c} {'used' if u.used else 'UNUSED'}" for c, u in usages.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
