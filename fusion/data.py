"""The trainer's streaming reader: windows of per-frame inputs and labels, read from the caches.

Nothing here holds a dataset in memory. A :class:`Video` is a reference (cache paths, frame count,
feature dims); every read takes only the rows it needs from the per-video HDF5 files:

- :func:`open_videos` checks a set of videos (every cache present, frame counts agreeing with each
  other and with ``labels.h5``) and returns their :class:`Video` references; no arrays are read.
- :class:`Normalizer` holds per-dimension statistics of the TRAINING videos only (the official code
  normalises validation data with its own statistics, which leaks), computed in ONE streaming pass
  (blocks of ``STATS_BLOCK_ROWS`` rows, Chan's parallel mean/variance in float64); the model applies
  them and carries them in its state dict, so evaluation and ``predict`` apply the same transform.
- :class:`WindowDataset` serves windows of K frames (see :mod:`fusion.windows`), each read with
  chunked HDF5 slice reads of exactly the window's rows; :func:`make_loader` batches them with
  DataLoader workers (``train.num_workers``) and pinned memory on CUDA, reshuffled every epoch from
  a seeded generator (same seed, same batch order, with or without workers).
- Open files live in a per-process :class:`FileCache` (at most ``MAX_OPEN_FILES``, least recently
  used closed first), opened lazily in each DataLoader worker and never pickled.
- Labels are read per window (training) or per video (metrics, CSVs) from ``labels.h5``.

Input kinds (the ``inputs`` argument, ``{modality: kind}``), what a window holds per modality:

====================  =========================================  ====================================
kind                  ``features[modality]`` of one window        read from the cache
====================  =========================================  ====================================
``embedding``         ``[K, D_m]`` float32                        per-frame features
                                                                  (:mod:`pipeline.core.frames`)
``faces`` (visual)    ``[K, S, S, 3]`` uint8 RGB (S = 48), plus   ``faces``, ``face_present``
                      ``face_present`` ``[K]`` bool in the item
``logmel`` (audio)    ``[K, 96, 64]`` float32: each frame's       ``logmel`` (10 ms rows), cut by
                      0.96 s patch exactly as extraction cuts it  :func:`pipeline.audio.patches.read_patches`
====================  =========================================  ====================================

Example (the fine-tuning path: raw backbone inputs for audio and visual, cached BERT for text)::

    videos = open_videos(ids, ["audio", "visual", "text"], ["valence"], data_root,
                         inputs={"audio": "logmel", "visual": "faces", "text": "embedding"})
    ds = WindowDataset(videos, window=300, stride=200,
                       inputs={"audio": "logmel", "visual": "faces", "text": "embedding"})
    loader = make_loader(ds, batch_size=12, shuffle=True, seed=0, num_workers=2, pin_memory=True)
    for batch in loader:
        batch["features"]["audio"]   # [B, K, 96, 64] float32
        batch["features"]["visual"]  # [B, K, 48, 48, 3] uint8
        batch["features"]["text"]    # [B, K, 768] float32
        batch["face_present"]        # [B, K] bool (only with visual "faces")
        batch["target"]              # [B, K, C] float32, NaN = unlabeled or padding
        batch["mask"]                # [B, K] bool, False on padding past a video's end

Padding past a video's end: ``pad[modality]`` when given (the trainer pads embeddings with the
training mean, which the model's input standardisation maps to 0), else zeros for ``embedding``,
black faces with ``face_present`` False for ``faces`` and the log-mel of silence for ``logmel``.
"""

from __future__ import annotations

import logging
import os
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, RandomSampler, Sampler
from tqdm import tqdm

from fusion.windows import window_starts
from pipeline.audio.patches import N_MELS, PATCH_ROWS, SILENCE, read_patches
from pipeline.core import layout
from pipeline.core.cache import CacheError
from pipeline.core.frames import frame_count, frame_dim, frame_features, frame_rows
from pipeline.core.manifest import read_manifest

STD_FLOOR = 1e-6  # a feature dimension with a smaller std (e.g. constant) is only centred
EMBEDDING, FACES, LOGMEL = "embedding", "faces", "logmel"
FACE_PRESENT = "face_present"  # the item's extra key with visual faces: [K] bool, a face was found
INPUT_KINDS = {"audio": (EMBEDDING, LOGMEL), "visual": (EMBEDDING, FACES), "text": (EMBEDDING,)}
KIND_DATASETS = {FACES: ("faces", "face_present"), LOGMEL: ("logmel",)}  # what a kind reads
LOGMEL_RATE = 100.0  # log-mel rows per second when the cache lacks ``rows_per_second``
MAX_OPEN_FILES = 16  # HDF5 files kept open per process (a window touches one per modality + labels)
CHUNK_CACHE_BYTES = 2**20  # HDF5 raw-chunk cache per open dataset (bounded: open files x datasets)
STATS_BLOCK_ROWS = 4096  # rows per read in the normalisation pass

log = logging.getLogger("rjcma.data")


class DataError(ValueError):
    """Features or labels that cannot be used together; the message names the file."""


class OpenFile:
    """An open HDF5 file whose ``attrs`` and dataset handles are looked up once (each lookup costs
    a metadata read; a window reads 4-5 datasets). Reads like ``h5py.File``: ``f[name]``,
    ``name in f``, ``f.keys()``, ``f.attrs`` (a plain dict)."""

    def __init__(self, file: h5py.File):
        self.file = file
        self.attrs = dict(file.attrs)
        self._items: dict[str, object] = {}

    def __getitem__(self, name: str):
        item = self._items.get(name)
        if item is None:
            item = self._items[name] = self.file[name]
        return item

    def __contains__(self, name: str) -> bool:
        return name in self._items or name in self.file

    def keys(self):
        return self.file.keys()

    def close(self) -> None:
        self._items.clear()
        self.file.close()


class FileCache:
    """This process's open HDF5 files, at most ``MAX_OPEN_FILES`` (least recently used closed first).

    Pickles empty (a DataLoader worker starts with no handles and opens what it reads); after a
    fork, handles the parent opened are left alone (kept referenced, never used or closed here).
    """

    def __init__(self) -> None:
        self._pid = os.getpid()
        self._files: OrderedDict[Path, OpenFile] = OrderedDict()
        self._inherited: list[OpenFile] = []

    def __getstate__(self) -> dict:
        return {}

    def __setstate__(self, state: dict) -> None:
        self.__init__()

    def get(self, path: Path) -> OpenFile:
        """The open file ``path`` (opened read-only on first use in this process)."""
        if os.getpid() != self._pid:  # a forked worker: the parent's handles are not ours to use
            self._inherited.extend(self._files.values())
            self._files, self._pid = OrderedDict(), os.getpid()
        f = self._files.get(path)
        if f is not None:
            self._files.move_to_end(path)
            return f
        try:
            f = OpenFile(h5py.File(path, "r", rdcc_nbytes=CHUNK_CACHE_BYTES))
        except OSError as e:
            raise DataError(f"{path}: not a readable HDF5 file ({e})") from e
        self._files[path] = f
        while len(self._files) > MAX_OPEN_FILES:
            self._files.popitem(last=False)[1].close()
        return f

    def close(self) -> None:
        if os.getpid() == self._pid:
            for f in self._files.values():
                f.close()
        self._files.clear()

    def __enter__(self) -> FileCache:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@dataclass(frozen=True)
class Video:
    """One video in the caches: where its inputs and labels are, how long it is; no arrays.

    ``labels_file`` None: an unlabeled video (all labels NaN). :attr:`features` and
    :attr:`labels` read the WHOLE video (one video at a time: ``predict``, CSVs, tests).
    """

    id: str
    n_frames: int
    paths: Mapping[str, Path]  # modality -> cache file
    dims: Mapping[str, int]  # modality -> D_m of its per-frame features
    targets: tuple[str, ...]  # label columns, in order
    labels_file: Path | None = None

    def cache(self, modality: str, files: FileCache):
        """The open cache file of ``modality``."""
        return files.get(self.paths[modality])

    def source(self, modality: str) -> str:
        return str(self.paths[modality])

    def label_rows(self, files: FileCache, start: int, stop: int) -> np.ndarray:
        """``[stop - start, C]`` float32 labels of frames ``[start, stop)`` (NaN = unlabeled)."""
        if self.labels_file is None:
            return np.full((stop - start, len(self.targets)), np.nan, np.float32)
        f = files.get(self.labels_file)
        return np.stack([np.asarray(f[f"{self.id}/{t}"][start:stop], np.float32) for t in self.targets],
                        axis=1)

    @property
    def labels(self) -> np.ndarray:
        """``[T, C]`` float32 labels of the whole video."""
        with FileCache() as files:
            return self.label_rows(files, 0, self.n_frames)

    @property
    def features(self) -> dict[str, np.ndarray]:
        """``{modality: [T, D_m]}`` float32 per-frame features of the whole video."""
        return {m: frame_features(p) for m, p in self.paths.items()}


class MemoryCache(dict):
    """An in-memory stand-in for an open cache file: ``{dataset name: array}`` plus ``attrs``."""

    def __init__(self, arrays: Mapping[str, np.ndarray], attrs: Mapping[str, object]):
        super().__init__(arrays)
        self.attrs = dict(attrs)


@dataclass(frozen=True)
class ArrayVideo:
    """A video whose inputs are in memory (``predict`` on a fresh extraction), read like a cache.

    ``caches``: modality -> :class:`MemoryCache` in the layout of its cache file (docs/caches.md:
    the extraction's arrays, and attrs with at least ``modality`` and ``n_frames``; ``fps`` and
    ``rows_per_second`` for the ``logmel`` kind), so every input kind reads it exactly as it reads
    the file. ``labels_array``: ``[T, C]`` or None (unlabeled).
    """

    id: str
    n_frames: int
    caches: Mapping[str, MemoryCache]
    labels_array: np.ndarray | None = None
    targets: tuple[str, ...] = ()
    dims: Mapping[str, int] = field(default_factory=dict)

    @classmethod
    def from_frames(cls, features: Mapping[str, np.ndarray], video_id: str = "video",
                    labels: np.ndarray | None = None, targets: Sequence[str] = ()) -> ArrayVideo:
        """Per-frame matrices ``{modality: [T, D_m]}`` as a video (the embedding kind), with
        ``labels`` ``[T, C]`` for ``targets`` or none."""
        caches, dims, lengths = {}, {}, set()
        for m, x in features.items():
            x = np.asarray(x, np.float32)
            lengths.add(len(x))
            attrs = {"modality": m, "n_frames": len(x), "fps": 0.0}
            if m == "text":  # one "word" per frame: frame i reads row i
                arrays = {"embedding": x, "frame_word": np.arange(len(x))}
            elif m == "audio":
                arrays, attrs["frame_dataset"] = {"frames": x}, "frames"
            else:
                arrays, attrs["modality"] = {"embedding": x}, "visual"
            caches[m], dims[m] = MemoryCache(arrays, attrs), int(x.shape[1])
        if len(lengths) != 1:
            raise ValueError(f"modalities disagree on the frame count: "
                             f"{ {m: len(x) for m, x in features.items()} }")
        return cls(video_id, lengths.pop(), caches, labels, tuple(targets), dims)

    def cache(self, modality: str, files: FileCache) -> MemoryCache:
        return self.caches[modality]

    def source(self, modality: str) -> str:
        return f"<in-memory {modality} inputs of {self.id}>"

    def label_rows(self, files: FileCache, start: int, stop: int) -> np.ndarray:
        if self.labels_array is None:
            return np.full((stop - start, max(1, len(self.targets))), np.nan, np.float32)
        return np.asarray(self.labels_array[start:stop], np.float32)

    @property
    def labels(self) -> np.ndarray:
        return self.label_rows(FileCache(), 0, self.n_frames)


def open_videos(ids: Sequence[str], modalities: Sequence[str], targets: Sequence[str],
                data_root: Path = layout.DATA, require_labels: bool = True, desc: str = "open",
                inputs: Mapping[str, str] | None = None) -> list[Video]:
    """Check and reference the videos ``ids`` (order kept as given), with a progress bar.

    Reads only metadata (attrs, dataset shapes). ``require_labels``: every id must have labels in
    ``labels.h5`` (training / validation); otherwise unlabeled videos get NaN labels (test
    partition, prediction). ``inputs`` (modality -> kind, default ``embedding``): the datasets each
    kind reads must exist. Missing caches, frame counts that disagree between modalities or with
    the labels raise :class:`DataError` naming the files.
    """
    inputs = _check_inputs(modalities, inputs)
    entries = {e.id: e for e in read_manifest(data_root)}
    unknown = [v for v in ids if v not in entries]
    if unknown:
        raise DataError(f"{layout.manifest_dir(data_root) / 'videos.json'}: unknown video id(s) "
                        f"{unknown[:5]}{' ...' if len(unknown) > 5 else ''}")
    labels_path = layout.labels_file(data_root)
    labelled = _labelled_ids(labels_path)
    if require_labels:
        missing = [v for v in ids if v not in labelled]
        if missing:
            raise DataError(f"{labels_path}: no labels for video(s) {missing[:5]}"
                            f"{' ...' if len(missing) > 5 else ''}")
    videos = []
    with FileCache() as files:
        for vid in tqdm(ids, desc=desc, unit="video", disable=None):
            entry = entries[vid]
            paths = {m: layout.feature_path(m, entry.shard, entry.id, data_root) for m in modalities}
            videos.append(_check_video(vid, paths, inputs, tuple(targets),
                                       labels_path if vid in labelled else None, files))
    return videos


load_videos = open_videos  # the former name (the reader used to load every video into memory)


def _check_inputs(modalities: Sequence[str], inputs: Mapping[str, str] | None) -> dict[str, str]:
    inputs = {m: EMBEDDING for m in modalities} | dict(inputs or {})
    for m, kind in inputs.items():
        if m not in modalities:
            raise DataError(f"input kind given for {m!r}, not among the modalities {list(modalities)}")
        if kind not in INPUT_KINDS.get(m, (EMBEDDING,)):
            raise DataError(f"{m}: unknown input kind {kind!r}; expected one of "
                            f"{list(INPUT_KINDS.get(m, (EMBEDDING,)))}")
    return inputs


def _check_video(vid: str, paths: Mapping[str, Path], inputs: Mapping[str, str],
                 targets: tuple[str, ...], labels_path: Path | None, files: FileCache) -> Video:
    lengths, dims = {}, {}
    for m, path in paths.items():
        if not path.is_file():
            raise DataError(f"{path}: {m} features of video {vid} missing; "
                            f"run the {m}_features stage for its shard")
        f = files.get(path)
        try:
            lengths[m], dims[m] = frame_count(f, path), frame_dim(f, path)
        except CacheError as e:
            raise DataError(str(e)) from e
        for name in KIND_DATASETS.get(inputs[m], ()):
            if name not in f:
                raise DataError(f"{path}: input kind {inputs[m]!r} needs dataset {name!r}, "
                                f"which the {m} cache of video {vid} lacks (has {sorted(f.keys())})")
            if len(f[name]) != lengths[m] and name != "logmel":
                raise DataError(f"{path}: {name} has {len(f[name])} rows but n_frames = {lengths[m]}")
    if len(set(lengths.values())) > 1:
        detail = ", ".join(f"{paths[m]}: {n} rows" for m, n in lengths.items())
        raise DataError(f"video {vid}: modalities disagree on the frame count ({detail})")
    n = next(iter(lengths.values()))
    if labels_path is not None:
        group = files.get(labels_path)[vid]
        first = next(iter(paths.values()))
        for t in targets:
            if t not in group:
                raise DataError(f"{labels_path}: video {vid} has no {t!r} labels")
            if len(group[t]) != n:
                raise DataError(f"{first}: {n} feature rows but {labels_path} has {len(group[t])} "
                                f"{t} labels for video {vid}; re-run the feature stages after the manifest")
    return Video(vid, n, dict(paths), dims, targets, labels_path)


def _labelled_ids(path: Path) -> set[str]:
    """The video ids that ``labels.h5`` has labels for (empty when the file does not exist)."""
    if not path.exists():
        return set()
    with h5py.File(path, "r") as f:
        return set(f.keys())


def feature_dims(videos: Sequence[Video]) -> dict[str, int]:
    """``{modality: D_m}``, checked to agree across videos."""
    dims: dict[str, int] = {}
    for v in videos:
        for m, d in v.dims.items():
            if dims.setdefault(m, d) != d:
                raise DataError(f"{v.source(m)}: {m} features have {d} dims, other videos {dims[m]}")
    return dims


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
        """Population mean and std over all frames of ``videos`` (the training partition only).

        One streaming pass: each video's per-frame features are read in blocks of
        ``STATS_BLOCK_ROWS`` rows and merged with Chan et al.'s parallel update in float64
        (numerically sound; equal to the two-pass result to float rounding).
        """
        if not videos:
            raise DataError("cannot fit feature statistics on zero training videos")
        count = 0
        mean = {m: 0.0 for m in modalities}
        m2 = {m: 0.0 for m in modalities}
        with FileCache() as files:
            for v in tqdm(videos, desc="feature statistics", unit="video", leave=False, disable=None):
                for a in range(0, v.n_frames, STATS_BLOCK_ROWS):
                    b = min(v.n_frames, a + STATS_BLOCK_ROWS)
                    for m in modalities:
                        x = frame_rows(v.cache(m, files), a, b, v.source(m)).astype(np.float64)
                        mean[m], m2[m] = _chan_merge(count, mean[m], m2[m], x)
                    count += b - a
        std = {m: np.sqrt(m2[m] / count) for m in modalities}
        return cls({m: np.asarray(mean[m], np.float32) for m in modalities},
                   {m: np.where(std[m] < STD_FLOOR, 1.0, std[m]).astype(np.float32) for m in modalities})

    @classmethod
    def identity(cls, dims: dict[str, int]) -> Normalizer:
        """No-op statistics (``fusion.normalize: false``)."""
        return cls({m: np.zeros(d, np.float32) for m, d in dims.items()},
                   {m: np.ones(d, np.float32) for m, d in dims.items()})

    def apply(self, modality: str, x: np.ndarray) -> np.ndarray:
        """``[..., D_m]`` → standardised float32 ``[..., D_m]``."""
        return ((x - self.mean[modality]) / self.std[modality]).astype(np.float32, copy=False)


def _chan_merge(n: int, mean, m2, x: np.ndarray):
    """Merge block ``x`` ``[b, D]`` float64 into running (count ``n``, ``mean`` [D], ``m2`` [D])."""
    b = len(x)
    if b == 0:
        return mean, m2
    mean_b = x.mean(0)
    m2_b = ((x - mean_b) ** 2).sum(0)
    delta = mean_b - mean
    total = n + b
    return mean + delta * (b / total), m2 + m2_b + delta * delta * (n * b / total)


def read_window(video, start: int, window: int, inputs: Mapping[str, str],
                pad: Mapping[str, np.ndarray], files: FileCache) -> dict:
    """One window of ``video`` from frame ``start``: the item of :class:`WindowDataset`.

    Returns ``{"features": {modality: tensor}, "target": [K, C] float32, "mask": [K] bool}`` plus
    ``"face_present"`` ``[K]`` bool when visual reads ``faces`` (shapes per kind: module docstring;
    the trainer hands it to the model beside the features). Only the window's rows are read.
    """
    n = min(window, video.n_frames - start)
    stop = start + n
    item: dict = {"features": {}}
    for m, kind in inputs.items():
        f = video.cache(m, files)
        try:
            if kind == EMBEDDING:
                rows = frame_rows(f, start, stop, video.source(m))  # [n, D_m]
                w = np.empty((window, rows.shape[1]), np.float32)
                w[:n] = rows
                w[n:] = pad.get(m, 0.0)
            elif kind == FACES:
                faces = np.asarray(f["faces"][start:stop], np.uint8)  # [n, S, S, 3]
                w = np.zeros((window,) + faces.shape[1:], np.uint8)
                w[:n] = faces
                w[n:] = pad.get(m, 0)
                present = np.zeros(window, bool)
                present[:n] = f["face_present"][start:stop]
                item[FACE_PRESENT] = torch.from_numpy(present)
            elif kind == LOGMEL:
                rate = float(f.attrs.get("rows_per_second", LOGMEL_RATE))
                w = np.empty((window, PATCH_ROWS, N_MELS), np.float32)
                w[:n] = read_patches(f["logmel"], np.arange(start, stop), float(f.attrs["fps"]), rate)
                w[n:] = pad.get(m, SILENCE)
            else:
                raise DataError(f"{m}: unknown input kind {kind!r}")
        except (KeyError, OSError, CacheError) as e:
            raise DataError(f"{video.source(m)}: cannot read the {kind} window at frame {start} ({e})") from e
        item["features"][m] = torch.from_numpy(w)
    target = np.full((window, len(video.targets) or 1), np.nan, np.float32)
    target[:n] = video.label_rows(files, start, stop)
    mask = np.zeros(window, bool)
    mask[:n] = True
    item["target"], item["mask"] = torch.from_numpy(target), torch.from_numpy(mask)
    return item


class WindowDataset(Dataset):
    """Windows of ``window`` frames (stride ``stride``) over ``videos``, read from their caches.

    Item ``i`` is :func:`read_window`'s dict (``features`` per ``inputs`` kind, ``target``
    ``[K, C]`` NaN on unlabeled and padded frames, ``mask`` ``[K]``, maybe ``face_present``) plus
    ``video`` (index into ``videos``) and ``start`` (first frame). ``inputs``: modality -> kind
    (default: ``embedding`` for every modality of the first video); ``pad``: modality -> the
    per-frame padding value (see the module docstring for the defaults). Windows are ordered video
    by video, by start (the order :func:`fusion.windows.window_starts` gives).
    """

    def __init__(self, videos: Sequence[Video], window: int, stride: int,
                 pad: Mapping[str, np.ndarray] | None = None, inputs: Mapping[str, str] | None = None):
        self.videos = list(videos)
        self.window = window
        self.pad = dict(pad or {})
        modalities = list(inputs) if inputs else list(self.videos[0].dims) if self.videos else []
        self.inputs = _check_inputs(modalities, inputs)
        self.index = [(i, int(s)) for i, v in enumerate(self.videos)
                      for s in window_starts(v.n_frames, window, stride)]
        self.files = FileCache()

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> dict:
        vi, start = self.index[i]
        item = read_window(self.videos[vi], start, self.window, self.inputs, self.pad, self.files)
        item["video"], item["start"] = vi, start
        return item


class EpochShuffle(Sampler):
    """A new order of ``n`` windows every epoch, from one generator seeded with ``seed``.

    Each epoch draws one int64 and then torch's ``RandomSampler`` order from that generator:
    exactly the orders of ``DataLoader(shuffle=True, generator=Generator().manual_seed(seed))``
    run in-process (which draws its workers' base seed first), but drawn here, once per epoch,
    whatever ``num_workers`` and however the loader reuses its workers.
    """

    def __init__(self, n: int, seed: int):
        self.generator = torch.Generator().manual_seed(seed)
        self.order = RandomSampler(range(n), generator=self.generator)

    def __len__(self) -> int:
        return len(self.order)

    def __iter__(self):
        torch.empty((), dtype=torch.int64).random_(generator=self.generator)
        yield from self.order


def make_loader(dataset: WindowDataset, batch_size: int, shuffle: bool, seed: int = 0,
                num_workers: int = 0, pin_memory: bool = False) -> DataLoader:
    """Batches of windows. ``shuffle``: a new order every epoch (:class:`EpochShuffle`: two
    loaders with the same seed give the same sequence of epochs, whatever ``num_workers``).
    ``num_workers`` > 0: reading runs in that many worker processes (kept across epochs, each
    with its own file handles); ``pin_memory``: page-locked batches for fast, asynchronous copies
    to CUDA. The global torch RNG is never drawn from (the workers' seeds come from ``seed``)."""
    return DataLoader(dataset, batch_size=batch_size,
                      sampler=EpochShuffle(len(dataset), seed) if shuffle else None,
                      generator=torch.Generator().manual_seed(seed), num_workers=num_workers,
                      drop_last=False, pin_memory=pin_memory, persistent_workers=num_workers > 0)
