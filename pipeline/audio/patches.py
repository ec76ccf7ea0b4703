"""The geometry of VGGish's 0.96 s log-mel patches over the cached 10 ms log-mel rows.

The audio cache stores the log-mel front end ONCE per video (``logmel`` ``[n_rows, 64]`` float32,
see :mod:`pipeline.audio.features`); video frame i's patch is the 96 rows starting at the row
nearest to i / fps seconds (the paper's hop of 1 / fps), and a patch that runs past the last row
repeats the last row (edge padding). Extraction (VGGish embeddings, ``logmel_mean``) and the
fine-tuning data path (:mod:`fusion.data`, input kind ``logmel``) both cut patches here, so they
are identical by construction.

- :func:`patches` cuts from an in-memory ``[n_rows, 64]`` array;
- :func:`read_patches` reads only the rows a run of frames needs from anything that slices like an
  array (an open HDF5 dataset), then cuts with the same indexing.
"""

from __future__ import annotations

import numpy as np
from torchvggish import vggish_params

N_MELS = vggish_params.NUM_MEL_BINS  # 64 mel bands
PATCH_ROWS = vggish_params.NUM_FRAMES  # 96 rows of 10 ms = one 0.96 s VGGish patch
SILENCE = float(np.log(vggish_params.LOG_OFFSET))  # log-mel value of digital silence, log(0.01)


def patch_starts(frames: np.ndarray, fps: float, rate: float = 100.0) -> np.ndarray:
    """First log-mel row of each video frame's patch: the row nearest to i / fps seconds.

    frames: ``[n]`` 0-based video frame indices; rate: log-mel rows per second. Returns ``[n]`` int64.
    """
    if fps <= 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    return np.floor(np.asarray(frames, np.float64) * (rate / fps) + 0.5).astype(np.int64)


def patches_at(logmel: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Patches of ``PATCH_ROWS`` rows starting at rows ``starts`` ``[n]``: ``[n, 96, 64]`` float32.

    logmel: ``[n_rows, 64]``. Rows past the end repeat the last row (edge padding); with no rows
    at all the patch is silence.
    """
    starts = np.asarray(starts, np.int64)
    if len(logmel) == 0:
        return np.full((len(starts), PATCH_ROWS, N_MELS), SILENCE, np.float32)
    idx = np.minimum(starts[:, None] + np.arange(PATCH_ROWS), len(logmel) - 1)  # [n, 96]
    return np.asarray(logmel, np.float32)[idx]


def patches(logmel: np.ndarray, frames: np.ndarray, fps: float, rate: float = 100.0) -> np.ndarray:
    """The 0.96 s patches of video frames ``frames``: ``[n, 96, 64]`` float32.

    logmel: ``[n_rows, 64]``. Rows past the end repeat the last row (edge padding); with no rows
    at all the patch is silence.
    """
    return patches_at(logmel, patch_starts(frames, fps, rate))


def patch(logmel: np.ndarray, i: int, fps: float, rate: float = 100.0) -> np.ndarray:
    """Video frame ``i``'s 0.96 s log-mel patch ``[96, 64]`` float32, starting at i / fps."""
    return patches(logmel, np.array([i]), fps, rate)[0]


def read_patches(rows, frames: np.ndarray, fps: float, rate: float = 100.0) -> np.ndarray:
    """:func:`patches` of ``frames`` ``[n]`` (ascending), reading only the rows they cover.

    rows: ``[n_rows, 64]``, anything with ``len`` and slicing (``h5py.Dataset``, ``np.ndarray``).
    Reads rows ``[first start, last start + 96)`` (clipped to the rows that exist) and returns
    ``[n, 96, 64]`` float32 equal to ``patches(rows[:], frames, fps, rate)``.
    """
    starts = patch_starts(frames, fps, rate)
    n_rows = len(rows)
    if n_rows == 0 or len(starts) == 0:
        return patches_at(np.zeros((0, N_MELS), np.float32), starts)
    lo = min(int(starts.min()), n_rows - 1)  # a patch wholly past the end repeats the last row
    hi = min(int(starts.max()) + PATCH_ROWS, n_rows)
    block = np.asarray(rows[lo:hi], np.float32)  # [hi - lo, 64]
    return patches_at(block, starts - lo)
