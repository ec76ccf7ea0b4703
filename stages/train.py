"""Stage ``train``: fit the fusion model of one fold and target on the cached features.

    python -m stages.train --fold 0 --target valence [--params params.yaml] [--data data] [--out results]

Reads ``<data>/manifest/{videos.json,labels.h5,folds.json}`` and the feature caches of the modalities
in ``fusion.modalities``; writes ``<out>/train/<fold>-<target>/``:

- ``checkpoint.pt``: state dict + config (see fusion/checkpoint.py; ``torch.load(weights_only=True)``),
- ``curves.csv`` / ``curves.json`` / ``curves.png``: lr, train loss and validation CCC per epoch,
- ``metrics.json``: validation CCC (all frames concatenated, per target, their mean, per video),
- ``predictions/<video>.csv``: per-frame predictions and labels of the validation videos.

The target is ``valence`` or ``arousal`` (one model each, the paper), or ``both`` when
``train.joint`` is true. The run directory is built beside the final one and swapped in at the end,
so an interrupted run never leaves a partial result.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from fusion.backbones import input_kinds
from fusion.checkpoint import save_checkpoint
from fusion.curves import plot_curves, write_curves
from fusion.data import open_videos
from fusion.evaluate import write_predictions
from fusion.train import JOINT_TARGET, run_targets, train_model
from pipeline.core import layout
from pipeline.core.atomic import atomic_dir, json_safe, write_json
from pipeline.core.params import load_params
from pipeline.core.stage import setup_logging, stage_parser
from pipeline.dataset.folds import fold_split

log = logging.getLogger("rjcma.stages.train")




def main(argv: Sequence[str] | None = None) -> int:
    p = stage_parser("python -m stages.train", __doc__.split("\n\n")[0], shard=False)
    p.add_argument("--fold", type=int, required=True, help="fold index in folds.json (0 = official split)")
    p.add_argument("--target", required=True,
                   help=f"valence | arousal | {JOINT_TARGET} (with train.joint: true)")
    p.add_argument("--out", default=str(layout.RESULTS), help="results directory (default: %(default)s)")
    args = p.parse_args(argv)
    setup_logging(args.verbose)
    t0 = time.perf_counter()
    try:
        params = load_params(args.params)
        data = Path(args.data)
        targets = run_targets(params.train, args.target)
        train_ids, val_ids = fold_split(layout.folds_file(data), args.fold)
        modalities = list(params.fusion.modalities)
        kinds = input_kinds(params)  # fine-tuning: faces / log-mel; else embeddings
        train_videos = open_videos(train_ids, modalities, targets, data, desc="open train", inputs=kinds)
        val_videos = open_videos(val_ids, modalities, targets, data, desc="open validation", inputs=kinds)
    except Exception as e:
        log.error("train: %s", e)
        log.debug("traceback", exc_info=True)
        return 2

    final = layout.train_dir(args.fold, args.target, Path(args.out))
    title = f"fold {args.fold}, {args.target}"
    try:
        with atomic_dir(final) as tmp:  # built beside `final`, swapped in when complete
            result = train_model(params.fusion, params.train, train_videos, val_videos, targets,
                                 on_epoch=lambda rows: write_curves(tmp, rows), params=params)
            m = result.val_metrics
            info = {"fold": args.fold, "target": args.target, "best_epoch": result.best_epoch,
                    "val_ccc": m["ccc_mean"], "val_ccc_per_target": m["ccc"]}
            save_checkpoint(tmp / layout.CHECKPOINT, result.model, targets=targets, params=params, info=info)
            plot_curves(tmp / layout.CURVES_PNG, result.history, title=title)
            write_predictions(tmp / layout.PREDICTIONS, val_videos, result.val_preds, targets)
            write_json(tmp / layout.METRICS, json_safe({
                "fold": args.fold, "target": args.target, "targets": list(targets),
                "val_ccc": m["ccc_mean"], "ccc": m["ccc"], "per_video": m["per_video"],
                "labelled_frames": m["labelled_frames"], "frames": m["frames"],
                "best_epoch": result.best_epoch, "epochs_run": len(result.history), "stopped": result.stopped,
                "train_videos": len(train_videos), "validation_videos": len(val_videos),
            }))
    except Exception as e:
        log.error("train: %s", e)
        log.debug("traceback", exc_info=True)
        return 1
    log.info("train %s: best epoch %d of %d, validation CCC %s -> %s (%.1f s)", title, result.best_epoch,
             len(result.history), ", ".join(f"{t} {v:.4f}" for t, v in m["ccc"].items()), final,
             time.perf_counter() - t0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
