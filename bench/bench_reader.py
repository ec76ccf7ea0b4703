"""Throughput of the trainer's streaming cache reader vs. the training step that consumes its batches.

Writes real per-video HDF5 caches at the paper's sizes with ``tests/synthetic.py`` (visual
``embedding`` 512-d float32 + ``faces`` 48x48x3 uint8, audio ``vggish`` 128-d float32 + the 10 ms
``logmel``, text 768-d float16 word table + ``frame_word``) with ``pipeline.core.cache.write_cache``,
then times

1. opening: ``fusion.data.open_videos`` (metadata checks of every cache + labels.h5) and the
   one-pass normaliser (``Normalizer.fit``) — paid once per run, before the first epoch;
2. streaming: one epoch of ``make_loader(WindowDataset(K=300, stride=200), batch 12, shuffled)``
   that reads every window from the caches — paid every epoch — for the frozen inputs (embeddings)
   and for the fine-tuning inputs (log-mel patches, faces, text embedding);
3. a training step of the model on such a batch (forward + backward + Adam, paper variant, l = 3,
   default TCN channels), on CPU.

The reader must feed batches at least 5x faster than a step consumes them. Prints a Markdown table.

    python bench/bench_reader.py [--videos 6] [--frames 3000] [--steps 3] [--threads 2] [--workers 0]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from any directory

from fusion.ccc import ccc_loss  # noqa: E402
from fusion.data import Normalizer, WindowDataset, make_loader, open_videos  # noqa: E402
from fusion.model import RJCMA  # noqa: E402
from pipeline.core.params import FusionParams, TrainParams  # noqa: E402
from tests.synthetic import write_dataset  # noqa: E402

PAPER_DIMS = {"audio": 128, "visual": 512, "text": 768}
MODS = ("audio", "visual", "text")
RAW = {"audio": "logmel", "visual": "faces", "text": "embedding"}
REQUIRED_RATIO = 5.0


def timed(fn):
    """(result, wall seconds, process CPU seconds) of ``fn()``."""
    t, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - t, time.process_time() - c


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--videos", type=int, default=6)
    p.add_argument("--frames", type=int, default=3000, help="frames per video")
    p.add_argument("--steps", type=int, default=3, help="timed training steps")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")
    p.add_argument("--workers", type=int, default=0, help="reader worker processes (train.num_workers)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    fusion, train = FusionParams(), TrainParams()
    K, stride, batch = fusion.window, fusion.stride, train.batch_size

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        ids, write_s, _ = timed(lambda: write_dataset(root, {"train": args.videos}, args.frames,
                                                      dims=PAPER_DIMS, seed=0, raw=True))
        cache_mb = sum(f.stat().st_size for f in (root / "features").rglob("*.h5")) / 2**20
        videos, open_s, open_cpu = timed(lambda: open_videos(ids["train"], MODS, ("valence",), root,
                                                             inputs=RAW))
        _, stats_s, stats_cpu = timed(lambda: Normalizer.fit(videos, MODS))
        n_frames = sum(v.n_frames for v in videos)
        loaders = {kind: make_loader(WindowDataset(videos, K, stride, inputs=inputs), batch, shuffle=True,
                                     seed=0, num_workers=args.workers)
                   for kind, inputs in (("frozen", None), ("finetune", RAW))}
        epochs = {kind: timed(lambda lo=lo: sum(1 for _ in lo)) for kind, lo in loaders.items()}
        example = next(iter(loaders["frozen"]))
        del loaders
    n_windows = len(WindowDataset(videos, K, stride))
    batches = -(-n_windows // batch)

    torch.manual_seed(0)
    model = RJCMA(fusion, PAPER_DIMS, 1).train()
    opt = torch.optim.Adam(model.parameters(), lr=train.lr, weight_decay=train.weight_decay)

    def step():
        loss = ccc_loss(model(example["features"]), example["target"])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()  # warm-up
    runs = [timed(step) for _ in range(args.steps)]
    step_s = statistics.median(r[1] for r in runs)
    step_cpu = statistics.median(r[2] for r in runs)

    print(f"machine: {platform.machine()}, {torch.get_num_threads()} torch threads, "
          f"torch {torch.__version__}, {args.workers} reader workers")
    print(f"{args.videos} videos x {args.frames} frames = {n_frames} frames, {n_windows} windows "
          f"(K={K}, stride {stride}), {batches} batches of {batch}; caches {cache_mb:.1f} MB "
          f"(written in {write_s:.1f} s)\n")
    print("| step | wall | CPU (this process) | throughput |")
    print("|---|---:|---:|---|")
    print(f"| open caches (`open_videos`, once per run) | {open_s:.2f} s | {open_cpu:.2f} s | "
          f"{args.videos / open_s:,.0f} videos/s |")
    print(f"| normaliser pass (`Normalizer.fit`, once per run) | {stats_s:.2f} s | {stats_cpu:.2f} s | "
          f"{n_frames / stats_s:,.0f} frames/s |")
    for kind, (_, s, c) in epochs.items():
        print(f"| stream an epoch, {kind} inputs | {s:.3f} s | {c:.3f} s | "
              f"{n_windows / s:,.0f} windows/s, {s / batches * 1e3:.1f} ms/batch |")
    print(f"| training step (batch {batch}, K={K}, paper, l={fusion.recursions}) | {step_s:.3f} s | "
          f"{step_cpu:.3f} s | {batch / step_s:,.1f} windows/s |")
    batch_s = epochs["frozen"][1] / batches
    batch_cpu = epochs["frozen"][2] / batches
    first_epoch_batch_s = (open_s + stats_s + epochs["frozen"][1]) / batches  # once-per-run costs, 1 epoch
    print(f"\nreader vs. step, frozen inputs, steady state: {step_s / batch_s:,.1f}x (wall), "
          f"{step_cpu / batch_cpu:,.1f}x (CPU)")
    print(f"reader vs. step, first epoch incl. opening and the normaliser: "
          f"{step_s / first_epoch_batch_s:,.1f}x (wall)")
    print(f"fine-tuning inputs: {epochs['finetune'][1] / batches * 1e3:.0f} ms/batch of data "
          f"(the step then runs IR-50 and VGGish on {batch * K} faces and patches)")
    ok = min(step_s / batch_s, step_s / first_epoch_batch_s) >= REQUIRED_RATIO
    print(f"requirement >= {REQUIRED_RATIO:.0f}x: {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()
