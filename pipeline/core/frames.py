"""Per-frame feature matrices from the per-video caches: what the trainer and ``predict`` consume.

Each modality stores what is compact (see docs/caches.md) and is expanded here to
``[n_frames, D]`` float32, indexable by video frame (0-based):

- audio:  the dataset named by the file's ``frame_dataset`` attr (``vggish`` or ``logmel_mean``);
- visual: ``embedding``;
- text:   ``embedding[frame_word]`` with zeros where ``frame_word == -1``.

:func:`frame_rows` expands any run of frames ``[start, stop)`` from an open cache, reading only
the rows it needs (the trainer streams windows this way); :func:`frame_features` is the whole
video. ``f`` may be an open ``h5py.File`` or anything with the same ``f[name][a:b]``, ``name in f``
and ``f.attrs`` (e.g. :class:`fusion.data.MemoryCache`).
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from pipeline.core.cache import CacheError


def _audio_dataset(f) -> str:
    return f.attrs.get("frame_dataset", "vggish" if "vggish" in f else "logmel_mean")


def _per_frame_dataset(f, path) -> str:
    """The dataset whose rows are the video's frames (text: ``frame_word``)."""
    modality = f.attrs.get("modality")
    if modality == "audio":
        return _audio_dataset(f)
    if modality == "visual":
        return "embedding"
    if modality == "text":
        return "frame_word"
    raise CacheError(f"{path}: unknown modality attr {modality!r}")


def frame_count(f, path: str | Path = "") -> int:
    """Rows of the per-frame features of an open cache, checked against its ``n_frames`` attr."""
    try:
        rows = len(f[_per_frame_dataset(f, path)])
        n_frames = int(f.attrs["n_frames"])
    except KeyError as e:
        raise CacheError(f"{path}: cannot read per-frame features ({e})") from e
    if rows != n_frames:
        raise CacheError(f"{path}: {rows} feature rows but n_frames = {n_frames}")
    return rows


def frame_dim(f, path: str | Path = "") -> int:
    """``D`` of an open cache's per-frame features."""
    try:
        modality = f.attrs.get("modality")
        if modality == "text":
            emb = f["embedding"]
            return int(emb.shape[1]) if len(emb.shape) == 2 else int(f.attrs["dim"])
        return int(f[_per_frame_dataset(f, path)].shape[1])
    except KeyError as e:
        raise CacheError(f"{path}: cannot read per-frame features ({e})") from e


def frame_rows(f, start: int, stop: int, path: str | Path = "") -> np.ndarray:
    """``[stop - start, D]`` float32 per-frame features of frames ``[start, stop)`` of an open cache.

    Reads only those rows (text: those frames' ``frame_word`` and the span of words they use).
    """
    try:
        modality = f.attrs.get("modality")
        if modality == "text":
            idx = np.asarray(f["frame_word"][start:stop], np.int64)
            x = np.zeros((len(idx), frame_dim(f, path)), np.float32)
            hit = idx >= 0
            if hit.any():
                lo, hi = int(idx[hit].min()), int(idx[hit].max()) + 1
                emb = np.asarray(f["embedding"][lo:hi], np.float32)  # [hi - lo, D]
                x[hit] = emb[idx[hit] - lo]
            return x
        return np.asarray(f[_per_frame_dataset(f, path)][start:stop], np.float32)
    except (OSError, KeyError) as e:
        raise CacheError(f"{path}: cannot read per-frame features ({e})") from e


def frame_features(path: str | Path) -> np.ndarray:
    """``[n_frames, D]`` float32 per-frame features of one cache file."""
    path = Path(path)
    try:
        with h5py.File(path, "r") as f:
            return frame_rows(f, 0, frame_count(f, path), path)
    except OSError as e:
        raise CacheError(f"{path}: cannot read per-frame features ({e})") from e
