"""Time one training step of the RJCMA fusion model: forward + backward (1 - CCC loss) + Adam step.

Defaults follow the paper's sizes: batch 12, K = 300, inputs visual 512, audio 128, text 768, the
default TCN channels and l = 3 recursions from ``pipeline.core.params.FusionParams``; both attention
variants. Prints a Markdown table (paste into docs/benchmarks.md, section "Training step").

    python bench/bench_train_step.py                 # both variants, 5 timed steps each
    python bench/bench_train_step.py --steps 10 --threads 2 --variants paper
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from any directory

from fusion.ccc import ccc_loss  # noqa: E402
from fusion.model import RJCMA  # noqa: E402
from pipeline.core.params import FusionParams, TrainParams  # noqa: E402

INPUT_DIMS = {"visual": 512, "audio": 128, "text": 768}  # the paper's backbones: IR-50, VGGish, BERT
WARMUP_STEPS = 2


def time_variant(variant: str, batch: int, window: int, recursions: int, steps: int, seed: int) -> dict:
    """Median seconds per training step and per forward-only (eval, no grad) pass."""
    torch.manual_seed(seed)
    fusion = dataclasses.replace(FusionParams(), variant=variant, window=window, recursions=recursions)
    train = TrainParams()
    model = RJCMA(fusion, INPUT_DIMS, n_outputs=1)
    optimizer = torch.optim.Adam(model.parameters(), lr=train.lr, weight_decay=train.weight_decay)
    inputs = {m: torch.randn(batch, window, d) for m, d in INPUT_DIMS.items()}
    target = torch.tanh(torch.randn(batch, window, 1))
    target[:, : window // 10] = float("nan")  # some unlabelled frames, as in Aff-Wild2

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss = ccc_loss(model(inputs), target)
        loss.backward()
        optimizer.step()

    model.train()
    train_times, cpu_times = [], []
    for i in range(WARMUP_STEPS + steps):
        start, cpu_start = time.perf_counter(), time.process_time()
        step()
        if i >= WARMUP_STEPS:
            train_times.append(time.perf_counter() - start)
            cpu_times.append(time.process_time() - cpu_start)
    model.eval()
    forward_times = []
    with torch.no_grad():
        for i in range(WARMUP_STEPS + steps):
            start = time.perf_counter()
            model(inputs)
            if i >= WARMUP_STEPS:
                forward_times.append(time.perf_counter() - start)
    step_s = statistics.median(train_times)
    return {
        "variant": variant,
        "params": sum(p.numel() for p in model.parameters()),
        "step_s": step_s,
        "step_min_s": min(train_times),
        "step_cpu_s": statistics.median(cpu_times),  # CPU seconds of all threads: robust to a busy machine
        "forward_s": statistics.median(forward_times),
        "windows_per_s": batch / step_s,
        "frames_per_s": batch * window / step_s,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--variants", nargs="+", default=["paper", "official"], choices=["paper", "official"])
    parser.add_argument("--batch", type=int, default=TrainParams().batch_size)
    parser.add_argument("--window", type=int, default=FusionParams().window)
    parser.add_argument("--recursions", type=int, default=FusionParams().recursions)
    parser.add_argument(
        "--steps", type=int, default=5, help="timed steps per variant (after 2 warm-up steps)"
    )
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.machine()}; "
        f"batch {args.batch}, K = {args.window}, l = {args.recursions}, inputs {INPUT_DIMS}, "
        f"TCN channels {dict(FusionParams().tcn_channels)}"
    )
    print()
    print(
        "| variant | parameters | train step (median) | train step (min) | CPU s / step "
        "| forward only (eval) | windows/s | frames/s |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for variant in args.variants:
        r = time_variant(variant, args.batch, args.window, args.recursions, args.steps, args.seed)
        print(
            f"| {r['variant']} | {r['params'] / 1e6:.2f} M | {r['step_s'] * 1e3:.0f} ms "
            f"| {r['step_min_s'] * 1e3:.0f} ms | {r['step_cpu_s']:.1f} "
            f"| {r['forward_s'] * 1e3:.0f} ms | {r['windows_per_s']:.1f} | {r['frames_per_s']:.0f} |"
        )


if __name__ == "__main__":
    main()
