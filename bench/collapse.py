"""Issue 12 item 3: does the demo recipe (lr 1e-3) collapse without weight decay on words-only data?

The data (tests/words.py): real English words through the real text path (the demo generator's
graded word lists -> the packaged minilm BERT -> ``frame_word_index`` with ``text.gap: zeros``),
silent audio and constant grey frames, labels that follow the words alone with a rater's lag.

Every run trains with params.yaml's ``fusion`` / ``train`` sections (the demo: lr 1e-3, window 64,
paper variant, batch 8, warm-up 1, plateau 5 / 0.1) except the modalities, the weight decay, the
seed, the epochs (early stop off) and the ``--fusion`` / ``--train`` overrides, and logs per epoch:
validation CCC, Pearson r and the std of the stitched predictions over the labels' std (a CCC ~0
is near-constant predictions -- std ratio ~0 -- or uncorrelated ones -- r ~0), the head's
pre-tanh magnitude and saturated fraction (|z| > 3), the norms of the K x K time mixings
W_c / W_h and of the head's output weight. docs/training.md ("Stability") has the figures.

    nice -n 19 python bench/collapse.py --videos 160 --epochs 8 --seeds 0 1 2 \\
        --weight-decay 0 0.001 --modalities text --train loss=window --out window.json
    python bench/collapse.py --table window.json batch.json     # the markdown table
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as `python bench/<name>.py`
import fusion.train as trainer  # noqa: E402
from fusion.ccc import ccc  # noqa: E402
from fusion.evaluate import predict_videos  # noqa: E402
from pipeline.core.params import load_params  # noqa: E402
from tests.words import dataset  # noqa: E402

SATURATED = 3.0  # |pre-tanh| above this: tanh' < 0.01

log = logging.getLogger("collapse")


class Probe:
    """Captures the trainer's model and measures it after every epoch (``on_epoch``)."""

    def __init__(self, val_videos, fusion, batch_size: int):
        self.model = None
        self.val, self.fusion, self.batch_size = val_videos, fusion, batch_size
        self.rows: list[dict] = []
        original = trainer.RJCMA

        def build(*args, **kwargs):
            self.model = original(*args, **kwargs)
            return self.model
        trainer.RJCMA = build

    def __call__(self, history: list[dict]) -> None:
        model = self.model
        was_training = model.training
        pre = []
        hook = model.head.fc2.register_forward_hook(lambda m, i, o: pre.append(o.detach().flatten()))
        preds = predict_videos(model, self.val, self.fusion.window, self.fusion.stride, self.batch_size)
        hook.remove()
        z = torch.cat(pre).numpy()
        x = np.concatenate([preds[v.id][:, 0] for v in self.val])
        y = np.concatenate([v.labels[:, 0] for v in self.val])
        ok = ~np.isnan(y)
        x, y = x[ok], y[ok]
        row = dict(history[-1])
        row.update(val_ccc=round(float(ccc(x, y)), 4), val_r=round(float(np.corrcoef(x, y)[0, 1]), 4),
                   pred_std_ratio=round(float(x.std() / y.std()), 4), pred_mean=round(float(x.mean()), 4),
                   pre_tanh_abs=round(float(np.abs(z).mean()), 3),
                   saturated=round(float((np.abs(z) > SATURATED).mean()), 4))
        att = model.attention.steps
        if hasattr(att[0], "w_c"):
            row["w_c"] = round(float(np.mean([s.w_c[m].norm().item() for s in att for m in s.w_c])), 3)
            row["w_h"] = round(float(np.mean([s.w_h[m].norm().item() for s in att for m in s.w_h])), 3)
        row["head_fc2"] = round(float(model.head.fc2.weight.norm().item()), 3)
        self.rows.append(row)
        log.info("epoch %d: %s", row["epoch"], {k: v for k, v in row.items() if k != "epoch"})
        model.train(was_training)


def run(args, params, train_videos, val_videos, modalities, wd: float, seed: int) -> tuple[str, list[dict]]:
    fusion = dataclasses.replace(params.fusion, modalities=tuple(modalities), **dict(args.fusion_overrides))
    train = dataclasses.replace(params.train, weight_decay=wd, seed=seed, epochs=args.epochs, early_stop=0,
                                device="cpu", threads=1, **dict(args.train_overrides))
    probe = Probe(val_videos, fusion, train.batch_size)
    t0 = time.perf_counter()
    trainer.train_model(fusion, train, train_videos, val_videos, ("valence",), on_epoch=probe)
    log.info("%s wd %g seed %d: %.0f s", "+".join(modalities), wd, seed, time.perf_counter() - t0)
    return train.loss, probe.rows


def parse_overrides(items: list[str]) -> list[tuple[str, object]]:
    out = []
    for item in items:
        key, _, value = item.partition("=")
        try:
            out.append((key, json.loads(value)))
        except json.JSONDecodeError:  # a plain string: loss=batch
            out.append((key, value))
    return out


def table(paths: list[Path]) -> str:
    """A markdown table of saved runs (``--out`` files): per run the validation CCC per epoch, the
    best, the last, and the worst epoch from epoch 2 on with its r and std ratio there."""
    lines = ["| modalities | loss | weight decay | seed | val CCC per epoch | best | last | "
             "worst from epoch 2 (r, std ratio) |", "|---|---|---:|---:|---|---:|---:|---|"]
    for path in paths:
        saved = json.loads(Path(path).read_text())
        for run in saved["runs"]:
            rows = run["rows"]
            scores = [r["val_ccc"] for r in rows]
            worst = min(rows[1:] or rows, key=lambda r: r["val_ccc"])
            lines.append(f"| {'+'.join(run['modalities'])} | {run.get('loss', 'window')} | "
                         f"{run['weight_decay']:g} | {run['seed']} | " + " ".join(f"{x:.2f}" for x in scores)
                         + f" | {max(scores):.2f} | {scores[-1]:.2f} | {worst['val_ccc']:.2f} "
                           f"({worst['val_r']:.2f}, {worst['pred_std_ratio']:.2f}) |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--videos", type=int, default=120, help="training videos (validation: a quarter)")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--data-seed", type=int, default=0)
    p.add_argument("--unexplained", type=float, default=0.0,
                   help="weight of a slow words-independent drift in the labels (0: words only)")
    p.add_argument("--weight-decay", type=float, nargs="+", default=[0.0, 1e-3])
    p.add_argument("--modalities", nargs="+", default=["text"], help="'text' or 'audio,visual,text'")
    p.add_argument("--fusion", dest="fusion_overrides", nargs="*", default=[], type=str,
                   help="fusion overrides KEY=JSON, e.g. recursions=1")
    p.add_argument("--train", dest="train_overrides", nargs="*", default=[], type=str,
                   help="train overrides KEY=JSON, e.g. lr=1e-4")
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--out", type=Path, help="write every run's per-epoch rows here (JSON)")
    p.add_argument("--table", type=Path, nargs="+",
                   help="print a markdown table of saved --out files and exit")
    args = p.parse_args(argv)
    if args.table:
        print(table(args.table))
        return 0
    args.fusion_overrides = parse_overrides(args.fusion_overrides)
    args.train_overrides = parse_overrides(args.train_overrides)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    torch.set_num_threads(1)
    params = load_params(args.params)
    train_videos, val_videos, summary = dataset(args.videos, max(2, args.videos // 4), args.data_seed,
                                                params.text, args.unexplained)
    log.info("data: %s", summary)
    results = []
    for mods in args.modalities:
        modalities = mods.split(",")
        for wd in args.weight_decay:
            for seed in args.seeds:
                loss, rows = run(args, params, train_videos, val_videos, modalities, wd, seed)
                results.append({"modalities": modalities, "loss": loss, "weight_decay": wd, "seed": seed,
                                "rows": rows})
                scores = [r["val_ccc"] for r in rows]
                print(f"{'+'.join(modalities):>18} {loss} wd {wd:<6g} seed {seed}: "
                      + " ".join(f"{s:.2f}" for s in scores), flush=True)
                if args.out:
                    args.out.parent.mkdir(parents=True, exist_ok=True)
                    args.out.write_text(json.dumps({"data": summary, "args": sys.argv[1:], "runs": results},
                                                   indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
