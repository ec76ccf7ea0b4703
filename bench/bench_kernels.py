"""Micro-benchmarks behind the CPU training step's kernel choices (docs/benchmarks.md, "Training step").

Each row times two ways of computing the same thing, interleaved (A, B, A, B, ...) in this one process,
and prints the medians and the median of the per-pair ratios A / B:

- ``conv input grad``: a TCN level's input gradient by oneDNN's backward-data kernel (A) against a
  forward convolution of the right-padded output gradient with the flipped kernel (B, what
  ``fusion.tcn.CausalConv`` does), at the Aff-Wild2 preset's sizes (batch 12, K = 300, kernel 5);
- ``mm K=300 vs 304``: the paper attention's ``[N, K] x [K, K]`` time mixing at K = 300 (A) and at the
  padded K = 304 (B) that ``fusion.attention`` runs (B does 3 % more work);
- ``Adam``: one step over 8.27 M parameters of the paper model's shapes, multi-tensor (A) against
  fused (B, ``fusion.unfreeze.adam``).

    python bench/bench_kernels.py --threads 1
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

BATCH, WINDOW, KERNEL = 12, 300, 5  # the Aff-Wild2 preset's batch, K and TCN kernel
PADDED_WINDOW = 304  # K rounded up to fusion.attention.TIME_ALIGN
CONV_LEVELS = [(256, 1), (256, 2), (256, 8), (128, 4)]  # (channels, dilation) of TCN levels
MIX_COLUMNS = [1536, 3072]  # B * d_m of the text/audio (128) and visual (256) modalities
ADAM_SHAPES = ([(300, 300)] * 18 + [(512, 512)] * 6 + [(256, 256, 5)] * 8 + [(128, 128, 5)] * 16
               + [(256, 512, 5), (128, 768, 5)])


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def ab(fa, fb, pairs: int) -> tuple[float, float, float]:
    """Medians of A and B and the median per-pair ratio A / B, after one untimed call of each."""
    fa()
    fb()
    ta, tb = [], []
    for _ in range(pairs):
        ta.append(timed(fa))
        tb.append(timed(fb))
    return statistics.median(ta), statistics.median(tb), statistics.median(a / b for a, b in zip(ta, tb))


def conv_pair(channels: int, dilation: int):
    """(oneDNN backward-data, flipped forward conv) for one TCN level, and their relative difference."""
    pad = (KERNEL - 1) * dilation
    x = torch.randn(BATCH, channels, WINDOW + pad)
    w = torch.randn(channels, channels, KERNEL)
    grad = torch.randn(BATCH, channels, WINDOW)

    def onednn():
        mask = [True, False, False]  # the input gradient only
        out = torch.ops.aten.convolution_backward(grad, x, w, None, [1], [0], [dilation], False, [0], 1, mask)
        return out[0]

    def flipped():
        return F.conv1d(F.pad(grad, (0, pad)), w.flip(-1).transpose(0, 1), dilation=dilation)

    ref = onednn()[:, :, pad:]  # the gradient of the unpadded input
    return onednn, flipped, ((ref - flipped()).abs().max() / ref.abs().max()).item()


def conv_rows(pairs: int) -> list[tuple[str, tuple[float, float, float]]]:
    rows = []
    for channels, dilation in CONV_LEVELS:
        onednn, flipped, err = conv_pair(channels, dilation)
        rows.append((f"conv input grad {channels}->{channels}, dilation {dilation} (rel. diff {err:.0e})",
                     ab(onednn, flipped, pairs)))
    return rows


def mm_pair(n: int):
    """(``[n, K] x [K, K]`` at K = WINDOW, the same at K = PADDED_WINDOW)."""
    a, w = torch.randn(n, WINDOW), torch.randn(WINDOW, WINDOW)
    ap, wp = torch.randn(n, PADDED_WINDOW), torch.randn(PADDED_WINDOW, PADDED_WINDOW)
    return (lambda: a @ w), (lambda: ap @ wp)


def mm_rows(pairs: int) -> list[tuple[str, tuple[float, float, float]]]:
    return [(f"mm [{n}, K] x [K, K], K = {WINDOW} vs {PADDED_WINDOW}", ab(*mm_pair(n), pairs))
            for n in MIX_COLUMNS]


def adam_rows(pairs: int) -> list[tuple[str, tuple[float, float, float]]]:
    def make(**kw):
        torch.manual_seed(0)
        params = [torch.nn.Parameter(torch.randn(*s)) for s in ADAM_SHAPES]
        for p in params:
            p.grad = torch.randn_like(p)
        return torch.optim.Adam(params, lr=1e-3, weight_decay=1e-3, **kw)

    multi, fused = make(), make(fused=True)
    n = sum(p.numel() for p in multi.param_groups[0]["params"])
    return [(f"Adam step, {n / 1e6:.2f} M parameters, multi-tensor vs fused",
             ab(multi.step, fused.step, pairs))]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, required=True, help="torch threads (set explicitly)")
    parser.add_argument("--pairs", type=int, default=9, help="timed A/B pairs per row")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"{args.pairs} interleaved pairs per row\n")
    print("| computation | A (median) | B (median) | A / B per pair (median) |")
    print("|---|---:|---:|---:|")
    for rows in (conv_rows, mm_rows, adam_rows):
        for name, (ta, tb, ratio) in rows(args.pairs):
            print(f"| {name} | {ta * 1e3:.1f} ms | {tb * 1e3:.1f} ms | {ratio:.2f}× |", flush=True)


if __name__ == "__main__":
    main()
