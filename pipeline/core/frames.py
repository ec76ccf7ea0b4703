"""Per-frame feature matrices from the per-video caches: what the trainer and ``predict`` consume.

Each modality stores what is compact (see docs/caches.md) and is expanded here to
``[n_frames, D]`` float32, indexable by video frame (0-based):

- audio:  the dataset named by the file's ``frame_dataset`` attr (``vggish`` or ``logmel_mean``);
- visual: ``embedding``;
- text:   ``embedding[frame_word]`` with zeros where ``frame_word == -1``.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from pipeline.core.cache import CacheError


def frame_features(path: str | Path) -> np.ndarray:
    """``[n_frames, D]`` float32 per-frame features of one cache file."""
    path = Path(path)
    try:
        with h5py.File(path, "r") as f:
            modality = f.attrs.get("modality")
            n_frames = int(f.attrs["n_frames"])
            if modality == "audio":
                name = f.attrs.get("frame_dataset", "vggish" if "vggish" in f else "logmel_mean")
                x = f[name][()].astype(np.float32)
            elif modality == "visual":
                x = f["embedding"][()].astype(np.float32)
            elif modality == "text":
                emb = f["embedding"][()].astype(np.float32)
                idx = f["frame_word"][()].astype(np.int64)
                x = np.zeros((len(idx), emb.shape[1] if emb.ndim == 2 else int(f.attrs["dim"])),
                             np.float32)
                hit = idx >= 0
                x[hit] = emb[idx[hit]]
            else:
                raise CacheError(f"{path}: unknown modality attr {modality!r}")
    except (OSError, KeyError) as e:
        raise CacheError(f"{path}: cannot read per-frame features ({e})") from e
    if x.shape[0] != n_frames:
        raise CacheError(f"{path}: {x.shape[0]} feature rows but n_frames = {n_frames}")
    return x
