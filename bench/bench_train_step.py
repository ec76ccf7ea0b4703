"""Time one training step of the RJCMA fusion model against the frozen baseline, side by side.

One step: forward + backward (1 - CCC loss) + Adam step. Sizes default to the paper's: batch 12,
K = 300, inputs visual 512, audio 128, text 768, l = 3, the TCN channels of
conf/dataset/affwild2.yaml, both attention variants. The baseline is ``bench/baseline/`` (a frozen
copy of fusion/{tcn,attention,head,model}.py before the speed-ups); both models get the same state
dict, their eval outputs are compared (max |diff|), then training steps alternate
baseline, current, baseline, current, ... in this one process, so machine load hits both alike.
Prints a Markdown table (medians and the per-pair ratio baseline / current); ``--profile`` adds
torch.profiler's top ops of a few steps of each.

    python bench/bench_train_step.py --threads 1                       # both variants, 8 pairs
    python bench/bench_train_step.py --threads 2 --pairs 12 --variants paper --profile
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
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from any directory

from bench.baseline.model import RJCMA as BaselineRJCMA  # noqa: E402
from fusion.ccc import ccc_loss  # noqa: E402
from fusion.model import RJCMA  # noqa: E402
from fusion.unfreeze import adam  # noqa: E402
from pipeline.core.params import FusionParams, TrainParams  # noqa: E402

INPUT_DIMS = {"visual": 512, "audio": 128, "text": 768}  # the paper's backbones: IR-50, VGGish, BERT
PRESET = ROOT / "conf" / "dataset" / "affwild2.yaml"  # TCN channels of the paper preset
WARMUP_STEPS = 2
PROFILE_STEPS = 2
PROFILE_ROWS = 12


def preset_channels() -> dict[str, tuple[int, ...]]:
    raw = yaml.safe_load(PRESET.read_text())
    return {m: tuple(c) for m, c in raw["fusion"]["tcn_channels"].items()}


class Runner:
    """One model + Adam + fixed inputs; ``step()`` runs one timed training step."""

    def __init__(self, cls, fusion: FusionParams, state: dict | None, batch: int, seed: int):
        torch.manual_seed(seed)
        self.model = cls(fusion, INPUT_DIMS, n_outputs=1)
        if state is not None:
            self.model.load_state_dict(state)
        train = TrainParams()
        if cls is BaselineRJCMA:  # the trainer's optimiser before the change: multi-tensor Adam
            self.optimizer = torch.optim.Adam(self.model.parameters(), lr=train.lr,
                                              weight_decay=train.weight_decay)
        else:  # the trainer's optimiser now
            self.optimizer = adam(list(self.model.parameters()), train)
        g = torch.Generator().manual_seed(seed)
        self.inputs = {m: torch.randn(batch, fusion.window, d, generator=g) for m, d in INPUT_DIMS.items()}
        self.target = torch.tanh(torch.randn(batch, fusion.window, 1, generator=g))
        self.target[:, : fusion.window // 10] = float("nan")  # some unlabelled frames, as in Aff-Wild2

    def step(self) -> float:
        self.model.train()
        start = time.perf_counter()
        self.optimizer.zero_grad(set_to_none=True)
        loss = ccc_loss(self.model(self.inputs), self.target)
        loss.backward()
        self.optimizer.step()
        return time.perf_counter() - start

    @torch.no_grad()
    def forward_eval(self) -> torch.Tensor:
        self.model.eval()
        return self.model(self.inputs)


def profile_table(runner: Runner) -> str:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(PROFILE_STEPS):
            runner.step()
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=PROFILE_ROWS)


def compare(variant: str, batch: int, window: int, recursions: int, pairs: int, seed: int,
            profile: bool) -> dict:
    fusion = dataclasses.replace(FusionParams(), variant=variant, window=window, recursions=recursions,
                                 tcn_channels=preset_channels())
    base = Runner(BaselineRJCMA, fusion, None, batch, seed)
    new = Runner(RJCMA, fusion, base.model.state_dict(), batch, seed)
    for _ in range(WARMUP_STEPS):  # BatchNorm running stats move: compare eval outputs after a sync
        base.step()
        new.step()
    new.model.load_state_dict(base.model.state_dict())
    diff = (base.forward_eval() - new.forward_eval()).abs().max().item()
    base_t, new_t = [], []
    for _ in range(pairs):
        base_t.append(base.step())
        new_t.append(new.step())
    ratios = [b / n for b, n in zip(base_t, new_t)]
    out = {"variant": variant, "params": sum(p.numel() for p in new.model.parameters()), "max_diff": diff,
           "base_s": statistics.median(base_t), "new_s": statistics.median(new_t),
           "ratio_median": statistics.median(ratios), "ratio_min": min(ratios), "ratio_max": max(ratios),
           "ratio_of_medians": statistics.median(base_t) / statistics.median(new_t)}
    if profile:
        out["profile_base"] = profile_table(base)
        out["profile_new"] = profile_table(new)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", nargs="+", default=["paper", "official"], choices=["paper", "official"])
    parser.add_argument("--batch", type=int, default=12)
    parser.add_argument("--window", type=int, default=300)
    parser.add_argument("--recursions", type=int, default=3)
    parser.add_argument("--pairs", type=int, default=8, help="timed baseline/current step pairs per variant")
    parser.add_argument("--threads", type=int, required=True, help="torch threads (set explicitly)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--profile", action="store_true", help="also print torch.profiler top ops")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.machine()}; "
          f"batch {args.batch}, K = {args.window}, l = {args.recursions}, inputs {INPUT_DIMS}, "
          f"TCN channels {preset_channels()}; {args.pairs} interleaved pairs after {WARMUP_STEPS} warm-up")
    print()
    print("| variant | parameters | eval max abs diff | baseline step (median) | current step (median) "
          "| ratio per pair: median (min–max) | ratio of medians |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    results = []
    for variant in args.variants:
        r = compare(variant, args.batch, args.window, args.recursions, args.pairs, args.seed, args.profile)
        results.append(r)
        print(f"| {r['variant']} | {r['params'] / 1e6:.2f} M | {r['max_diff']:.1e} | {r['base_s']:.2f} s "
              f"| {r['new_s']:.2f} s | {r['ratio_median']:.2f}× ({r['ratio_min']:.2f}–{r['ratio_max']:.2f}) "
              f"| {r['ratio_of_medians']:.2f}× |", flush=True)
    for r in results:
        if "profile_base" in r:
            print(f"\n### {r['variant']}: baseline, {PROFILE_STEPS} steps\n\n```\n{r['profile_base']}```")
            print(f"\n### {r['variant']}: current, {PROFILE_STEPS} steps\n\n```\n{r['profile_new']}```")


if __name__ == "__main__":
    main()
