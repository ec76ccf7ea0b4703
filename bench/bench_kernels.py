"""Micro-benchmarks behind the CPU training step's kernel choices (docs/benchmarks.md, "Training step").

Each row times two ways of computing the same thing, interleaved (A, B, A, B, ...) in this one process,
and prints the medians and the median of the per-pair ratios A / B:

- ``causal conv``: one TCN convolution, forward + backward (input and weight gradients; the weight
  gradient only for a first level, whose input is a cached feature), as ``conv1d`` on ``[B, C, K]``
  (A) against ``conv2d`` on the channels-last ``[B, C, 1, K]`` that ``fusion.tcn.causal_conv`` runs
  (B), both left-padded, at the Aff-Wild2 preset's sizes (batch 12, K = 300, kernel 5);
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
CONV_LEVELS = [(512, 256, 1), (768, 128, 1), (256, 256, 2), (256, 256, 8), (128, 128, 4)]  # TCN convs:
# (in, out, dilation) of the visual and text first levels and of later levels
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


def conv_pair(c_in: int, c_out: int, dilation: int, input_grad: bool):
    """(conv1d on [B, C, K], conv2d on channels-last [B, C, 1, K]) forward + backward of one causal
    TCN convolution, and the relative difference of their weight gradients."""
    pad = (KERNEL - 1) * dilation
    x = torch.randn(BATCH, c_in, WINDOW).requires_grad_(input_grad)
    x_cl = x.detach().unsqueeze(2).contiguous(memory_format=torch.channels_last).requires_grad_(input_grad)
    w = torch.randn(c_out, c_in, KERNEL, requires_grad=True)
    grad = torch.randn(BATCH, c_out, WINDOW)
    grad_cl = grad.unsqueeze(2).contiguous(memory_format=torch.channels_last)

    def ncw():
        w.grad = None
        F.conv1d(F.pad(x, (pad, 0)), w, dilation=dilation).backward(grad)
        return w.grad

    def channels_last():
        w.grad = None
        F.conv2d(F.pad(x_cl, (pad, 0)), w.unsqueeze(2), dilation=(1, dilation)).backward(grad_cl)
        return w.grad

    ref = ncw().clone()
    return ncw, channels_last, ((ref - channels_last()).abs().max() / ref.abs().max()).item()


def conv_rows(pairs: int) -> list[tuple[str, tuple[float, float, float]]]:
    rows = []
    for c_in, c_out, dilation in CONV_LEVELS:
        first = c_in != c_out  # a first level: its input (a cached feature) needs no gradient
        ncw, channels_last, err = conv_pair(c_in, c_out, dilation, input_grad=not first)
        rows.append((f"causal conv {c_in}->{c_out}, dilation {dilation}{', no input grad' if first else ''} "
                     f"(rel. diff {err:.0e})", ab(ncw, channels_last, pairs)))
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
