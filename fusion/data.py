"""The trainer's reader: per-frame features from the per-video caches, labels, windows, batches.

- :func:`load_videos` reads, for a set of video ids, each configured modality's per-frame features
  (``pipeline.core.frames.frame_features`` of ``data/features/<modality>/<shard>/<id>.h5``) and the
  labels of ``data/manifest/labels.h5`` (NaN = unlabeled frame) into :class:`Video` records.
- :class:`Normalizer` holds per-dimension statistics of the TRAINING videos only (the official code
  normalises validation data with its own statistics, which leaks); the model applies them and
  carries them in its state dict, so evaluation and ``predict`` apply the same transform.
- :class:`WindowDataset` serves windows of K frames (see :mod:`fusion.windows`); :func:`make_loader`
  batches them, reshuffled every epoch from a seeded generator (same seed, same batch order).

Features are held in memory as float32, ``sum(D_m) * 4`` bytes per frame (Aff-Wild2 at the paper's
sizes, 512 + 128 + 768 dims over ~2.9 M frames: ~16 GB); windows are sliced on the fly.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from fusion.windows import window_starts
from pipeline.core import layout
from pipeline.core.cache import CacheError
from pipeline.core.frames import frame_features
from pipeline.core.manifest import VideoEntry, read_manifest
from pipeline.dataset.labels import read_labels

STD_FLOOR = 1e-6  # a feature dimension with a smaller std (e.g. constant) is only centred

log = logging.getLogger("rjcma.data")


class DataError(ValueError):
    """Features or labels that cannot be used together; the message names the file."""


@dataclass
class Video:
    """One video's per-frame inputs and labels, all ``T`` frames long."""

    id: str
    features: dict[str, np.ndarray]  # modality -> [T, D_m] float32
    labels: np.ndarray  # [T, C] float32 (C = targets), NaN = unlabeled

    @property
    def n_frames(self) -> int:
        return int(self.labels.shape[0])


def load_video(entry: VideoEntry, modalities: Sequence[str], targets: Sequence[str],
               data_root: Path, labels: dict[str, np.ndarray] | None) -> Video:
    """Read one video's features (each modality's cache) and attach ``labels`` (target -> [T]).

    ``labels`` None (an unlabeled video) gives all-NaN labels. Feature files whose frame counts
    disagree with each other or with the labels raise :class:`DataError` naming the files.
    """
    feats: dict[str, np.ndarray] = {}
    paths: dict[str, Path] = {}
    for m in modalities:
        path = layout.feature_path(m, entry.shard, entry.id, data_root)
        if not path.is_file():
            raise DataError(f"{path}: {m} features of video {entry.id} missing; "
                            f"run the {m}_features stage for shard {entry.shard}")
        try:
            feats[m] = frame_features(path)
        except CacheError as e:
            raise DataError(str(e)) from e
        paths[m] = path
    lengths = {m: x.shape[0] for m, x in feats.items()}
    if len(set(lengths.values())) > 1:
        detail = ", ".join(f"{paths[m]}: {n} rows" for m, n in lengths.items())
        raise DataError(f"video {entry.id}: modalities disagree on the frame count ({detail})")
    n = next(iter(lengths.values()))
    if labels is None:
        y = np.full((n, len(targets)), np.nan, dtype=np.float32)
    else:
        for t in targets:
            if t not in labels:
                raise DataError(f"{layout.labels_file(data_root)}: video {entry.id} has no {t!r} labels")
            if len(labels[t]) != n:
                raise DataError(f"{paths[modalities[0]]}: {n} feature rows but "
                                f"{layout.labels_file(data_root)} has {len(labels[t])} {t} labels "
                                f"for video {entry.id}; re-run the feature stages after the manifest")
        y = np.stack([np.asarray(labels[t], dtype=np.float32) for t in targets], axis=1)
    return Video(id=entry.id, features=feats, labels=y)


def load_videos(ids: Sequence[str], modalities: Sequence[str], targets: Sequence[str],
                data_root: Path = layout.DATA, require_labels: bool = True,
                desc: str = "load") -> list[Video]:
    """Read the videos ``ids`` (manifest order is kept as given) with a progress bar.

    ``require_labels``: every id must have labels in ``labels.h5`` (training / validation);
    otherwise unlabeled videos get NaN labels (test partition, prediction).
    """
    entries = {e.id: e for e in read_manifest(data_root)}
    unknown = [v for v in ids if v not in entries]
    if unknown:
        raise DataError(f"{layout.manifest_dir(data_root) / 'videos.json'}: unknown video id(s) "
                        f"{unknown[:5]}{' ...' if len(unknown) > 5 else ''}")
    labels_path = layout.labels_file(data_root)
    if require_labels:
        all_labels = read_labels(labels_path, ids)
    else:
        labelled = _labelled_ids(labels_path)
        all_labels = read_labels(labels_path, [v for v in ids if v in labelled]) if labelled else {}
    return [load_video(entries[v], modalities, targets, data_root, all_labels.get(v))
            for v in tqdm(ids, desc=desc, unit="video", disable=None)]


def _labelled_ids(path: Path) -> set[str]:
    """The video ids that ``labels.h5`` has labels for (empty when the file does not exist)."""
    if not path.exists():
        return set()
    with h5py.File(path, "r") as f:
        return set(f.keys())


@dataclass
class Normalizer:
    """Per-dimension feature statistics of the training videos: ``x -> (x - mean) / std``.

    The trainer hands them to the model (``RJCMA.set_input_stats``), whose input buffers apply the
    transform and carry it inside the checkpoint's state dict, so evaluation and ``predict`` feed raw
    cached features.
    """

    mean: dict[str, np.ndarray]  # modality -> [D_m] float32
    std: dict[str, np.ndarray]  # modality -> [D_m] float32 (>= STD_FLOOR, else 1)

    @classmethod
    def fit(cls, videos: Sequence[Video], modalities: Sequence[str]) -> Normalizer:
        """Statistics over all frames of ``videos`` (the training partition only), float64 sums."""
        if not videos:
            raise DataError("cannot fit feature statistics on zero training videos")
        mean, std = {}, {}
        n = sum(v.n_frames for v in videos)
        for m in modalities:
            mu = sum(v.features[m].sum(0, dtype=np.float64) for v in videos) / n
            var = sum(((v.features[m] - mu) ** 2).sum(0, dtype=np.float64) for v in videos) / n
            sd = np.sqrt(var)
            mean[m] = mu.astype(np.float32)
            std[m] = np.where(sd < STD_FLOOR, 1.0, sd).astype(np.float32)
        return cls(mean, std)

    @classmethod
    def identity(cls, dims: dict[str, int]) -> Normalizer:
        """No-op statistics (``fusion.normalize: false``)."""
        return cls({m: np.zeros(d, np.float32) for m, d in dims.items()},
                   {m: np.ones(d, np.float32) for m, d in dims.items()})

    def apply(self, modality: str, x: np.ndarray) -> np.ndarray:
        """``[..., D_m]`` → standardised float32 ``[..., D_m]``."""
        return ((x - self.mean[modality]) / self.std[modality]).astype(np.float32, copy=False)


def feature_dims(videos: Sequence[Video]) -> dict[str, int]:
    """``{modality: D_m}``, checked to agree across videos."""
    dims: dict[str, int] = {}
    for v in videos:
        for m, x in v.features.items():
            if dims.setdefault(m, x.shape[1]) != x.shape[1]:
                raise DataError(f"video {v.id}: {m} features have {x.shape[1]} dims, others {dims[m]}")
    return dims


class WindowDataset(Dataset):
    """Windows of ``window`` frames (stride ``stride``) over ``videos``.

    Item ``i`` is a dict: ``features`` {modality: ``[K, D_m]`` float32, raw cached values, padded
    past the video's end with ``pad[modality]`` ``[D_m]`` (zeros when None; the trainer pads with the
    training mean, which the model's input standardisation maps to 0)}, ``target`` ``[K, C]``
    float32 (NaN on unlabeled and padded frames), ``mask`` ``[K]`` bool (False on padding),
    ``video`` (index into ``videos``) and ``start`` (first frame).
    """

    def __init__(self, videos: Sequence[Video], window: int, stride: int,
                 pad: dict[str, np.ndarray] | None = None):
        self.videos = list(videos)
        self.window = window
        self.pad = pad or {}
        self.index = [(i, int(s)) for i, v in enumerate(self.videos)
                      for s in window_starts(v.n_frames, window, stride)]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> dict:
        vi, start = self.index[i]
        video = self.videos[vi]
        n = min(self.window, video.n_frames - start)
        feats = {}
        for m, x in video.features.items():
            w = np.empty((self.window, x.shape[1]), np.float32)
            w[:n] = x[start:start + n]
            w[n:] = self.pad.get(m, 0.0)
            feats[m] = torch.from_numpy(w)
        target = np.full((self.window, video.labels.shape[1]), np.nan, np.float32)
        target[:n] = video.labels[start:start + n]
        mask = np.zeros(self.window, bool)
        mask[:n] = True
        return {"features": feats, "target": torch.from_numpy(target), "mask": torch.from_numpy(mask),
                "video": vi, "start": start}


def make_loader(dataset: WindowDataset, batch_size: int, shuffle: bool, seed: int = 0,
                num_workers: int = 0) -> DataLoader:
    """Batches of windows. ``shuffle``: a new order every epoch, drawn from a generator seeded
    with ``seed`` (two loaders with the same seed give the same sequence of epochs)."""
    generator = torch.Generator().manual_seed(seed) if shuffle else None
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=generator,
                      num_workers=num_workers, drop_last=False,
                      persistent_workers=num_workers > 0)
