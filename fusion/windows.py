"""Windows over per-video sequences, and stitching window predictions back into frames.

A video of T frames is cut into windows of K frames with stride s (the paper: K = 300, s = 200).
Starts are 0, s, 2s, ... while the window fits; when the frames after the last fitting window are
not covered, one more window is right-aligned to end exactly at T (start T - K). A video shorter
than K gives one window padded at the end, with a mask that is False on the padding.

Stitching is the inverse: every frame's prediction is the mean over the windows that cover it.
All functions are pure and work on numpy arrays.
"""

from __future__ import annotations

import numpy as np


def window_starts(n_frames: int, window: int, stride: int) -> np.ndarray:
    """``[W]`` int64 start frames of the windows of a video of ``n_frames`` frames.

    ``0, stride, 2*stride, ...`` while ``start + window <= n_frames``, plus a right-aligned last
    window ``n_frames - window`` when frames would otherwise be left uncovered. A video with
    ``n_frames <= window`` has the single start 0.
    """
    if window < 1 or stride < 1:
        raise ValueError(f"window and stride must be >= 1, got window={window}, stride={stride}")
    if stride > window:
        raise ValueError(f"stride {stride} > window {window} would leave frames uncovered")
    if n_frames < 1:
        raise ValueError(f"a video needs at least one frame, got n_frames={n_frames}")
    if n_frames <= window:
        return np.zeros(1, dtype=np.int64)
    starts = list(range(0, n_frames - window + 1, stride))
    if starts[-1] + window < n_frames:
        starts.append(n_frames - window)
    return np.asarray(starts, dtype=np.int64)


def cut_window(x: np.ndarray, start: int, window: int) -> tuple[np.ndarray, np.ndarray]:
    """One window of ``x`` ``[T, ...]``: (``[window, ...]`` zero-padded, mask ``[window]`` bool).

    ``mask[k]`` is True where frame ``start + k`` exists (False on the padding past the end).
    """
    n = max(0, min(window, x.shape[0] - start))
    out = np.zeros((window,) + x.shape[1:], dtype=x.dtype)
    out[:n] = x[start:start + n]
    mask = np.zeros(window, dtype=bool)
    mask[:n] = True
    return out, mask


def cut_windows(x: np.ndarray, window: int, stride: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cut ``x`` ``[T, ...]`` into windows.

    Returns ``(windows [W, window, ...], mask [W, window] bool, starts [W] int64)``; padded frames
    (videos shorter than ``window``) are zeros with ``mask`` False.
    """
    starts = window_starts(x.shape[0], window, stride)
    pieces = [cut_window(x, int(s), window) for s in starts]
    return (np.stack([p[0] for p in pieces]), np.stack([p[1] for p in pieces]), starts)


def stitch(preds: np.ndarray, starts: np.ndarray, n_frames: int) -> np.ndarray:
    """Average overlapping window predictions back into frames.

    ``preds`` ``[W, window, C]`` (or ``[W, window]``) for windows starting at ``starts`` ``[W]``
    → ``[n_frames, C]`` (or ``[n_frames]``) float32: each frame's mean over the windows covering
    it. Window positions past ``n_frames`` (padding) are ignored. Every frame must be covered.
    """
    preds = np.asarray(preds, dtype=np.float64)
    if preds.shape[0] != len(starts):
        raise ValueError(f"{preds.shape[0]} window predictions for {len(starts)} starts")
    window = preds.shape[1]
    total = np.zeros((n_frames,) + preds.shape[2:], dtype=np.float64)
    count = np.zeros(n_frames, dtype=np.int64)
    for p, s in zip(preds, starts):
        s = int(s)
        n = max(0, min(window, n_frames - s))
        total[s:s + n] += p[:n]
        count[s:s + n] += 1
    if (count == 0).any():
        raise ValueError(f"frames {np.flatnonzero(count == 0)[:5].tolist()}... not covered by any window")
    return (total / count.reshape((-1,) + (1,) * (total.ndim - 1))).astype(np.float32)
