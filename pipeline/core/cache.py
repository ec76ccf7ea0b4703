"""Per-video HDF5 feature caches: one file per video per modality.

Layout (docs/caches.md has the full schema): datasets chunked along time and compressed, and attrs

- ``schema`` (int), ``modality`` (audio | visual | text), ``video_id``, ``fps``, ``n_frames``,
- ``extractor`` (name), ``settings`` (JSON of the params that shaped the content),
- ``versions`` (JSON of library versions), ``source_hash`` (content hash of the input),
- ``cache_key``: a hash of everything above (:class:`CacheKey`); a rerun skips a file whose key
  matches.

Writes are atomic (temp + rename) and deterministic: identical inputs give byte-identical files
(h5py stores no timestamps), which DVC needs to deduplicate shared caches.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from pipeline.core.atomic import atomic_path

SCHEMA_VERSION = 1
COMPRESSION = "gzip"
COMPRESSION_LEVEL = 4
CHUNK_BYTES = 256 * 1024  # target bytes per chunk along time


class CacheError(RuntimeError):
    """A cache file that is missing, unreadable or of the wrong kind; the message names it."""


def cache_key(meta: Mapping[str, Any]) -> str:
    """A stable hash of the metadata that determines a cache file's content."""
    blob = json.dumps(meta, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:32]


@dataclass(frozen=True)
class CacheKey:
    """Everything that determines one cache file's content: built once per video by the feature
    code (``audio_cache_key``, ``visual_cache_key``, ``text_cache_key``) and used both to write the
    file and to check whether an existing one is current."""

    modality: str  # audio | visual | text
    video_id: str
    fps: float
    n_frames: int
    extractor: str  # name of the extractor / backbone
    settings: Mapping[str, Any]  # the params that shaped the content
    versions: Mapping[str, Any]  # library and feature-code versions
    source_hash: str  # content hash of the input (video, wav, crops, transcript)

    def meta(self) -> dict[str, Any]:
        """The metadata attrs a cache file records, in the order they are written."""
        return {"schema": SCHEMA_VERSION, "modality": self.modality, "video_id": self.video_id,
                "fps": float(self.fps), "n_frames": int(self.n_frames), "extractor": self.extractor,
                "settings": dict(self.settings), "versions": dict(self.versions),
                "source_hash": self.source_hash}

    @property
    def digest(self) -> str:
        """The ``cache_key`` attr: a hash of :meth:`meta`."""
        return cache_key(self.meta())


def _chunks(arr: np.ndarray) -> tuple[int, ...] | None:
    if arr.ndim == 0 or arr.shape[0] == 0:
        return None
    row = max(1, arr[0].nbytes)
    n = int(max(1, min(arr.shape[0], CHUNK_BYTES // row)))
    return (n,) + arr.shape[1:]


def write_cache(path: str | Path, arrays: Mapping[str, np.ndarray], key: CacheKey,
                attrs: Mapping[str, Any] | None = None) -> Path:
    """Atomically write one video's cache file with its datasets and the metadata attrs of ``key``.

    ``arrays`` maps dataset name → array (string arrays are stored as UTF-8 variable length).
    ``attrs``: extra descriptive attrs derived from the content (e.g. audio ``frame_dataset``);
    they are not part of ``cache_key``. Returns the final path.
    """
    path = Path(path)
    meta = key.meta()
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w", track_order=False) as f:
            for name in sorted(arrays):
                arr = arrays[name]
                if isinstance(arr, (list, tuple)) or (isinstance(arr, np.ndarray) and arr.dtype.kind in "UO"):
                    data = np.asarray([str(s) for s in arr], dtype=object)
                    f.create_dataset(name, data=data, dtype=h5py.string_dtype("utf-8"),
                                     track_times=False)
                    continue
                arr = np.ascontiguousarray(arr)
                if arr.dtype.kind not in "biuf":
                    raise TypeError(f"{path}: dataset {name!r} has unsupported dtype {arr.dtype}")
                chunks = _chunks(arr)
                kw = dict(chunks=chunks, compression=COMPRESSION,
                          compression_opts=COMPRESSION_LEVEL, shuffle=True) if chunks else {}
                f.create_dataset(name, data=arr, track_times=False, **kw)
            for k, v in meta.items():
                f.attrs[k] = json.dumps(v, sort_keys=True) if isinstance(v, dict) else v
            for k in sorted(attrs or {}):
                if k in meta or k == "cache_key":
                    raise ValueError(f"extra attr {k!r} would overwrite a metadata attr")
                f.attrs[k] = attrs[k]
            f.attrs["cache_key"] = key.digest
    return path


def read_attrs(path: str | Path) -> dict[str, Any]:
    """The metadata attrs of a cache file (``settings``/``versions`` decoded from JSON)."""
    path = Path(path)
    try:
        with h5py.File(path, "r") as f:
            attrs = dict(f.attrs)
    except (OSError, KeyError) as e:
        raise CacheError(f"{path}: not a readable HDF5 cache ({e})") from e
    out: dict[str, Any] = {}
    for k, v in attrs.items():
        if isinstance(v, bytes):
            v = v.decode()
        if isinstance(v, np.generic):
            v = v.item()
        if k in ("settings", "versions") and isinstance(v, str):
            v = json.loads(v)
        out[k] = v
    return out


def is_current(path: str | Path, key: CacheKey) -> bool:
    """True when ``path`` is a complete cache written for exactly ``key``."""
    path = Path(path)
    if not path.is_file():
        return False
    try:
        return read_attrs(path).get("cache_key") == key.digest
    except CacheError:
        return False


def read_arrays(path: str | Path, names: list[str] | None = None) -> dict[str, np.ndarray]:
    """Read datasets (all, or ``names``) of a cache file into memory; strings decoded to str."""
    path = Path(path)
    try:
        with h5py.File(path, "r") as f:
            out = {}
            for name in names if names is not None else list(f.keys()):
                if name not in f:
                    raise CacheError(f"{path}: dataset {name!r} missing (has {sorted(f.keys())})")
                ds = f[name]
                if h5py.check_string_dtype(ds.dtype) is not None:
                    out[name] = np.asarray(ds.asstr()[()], dtype=object)
                else:
                    out[name] = ds[()]
            return out
    except OSError as e:
        raise CacheError(f"{path}: not a readable HDF5 cache ({e})") from e
