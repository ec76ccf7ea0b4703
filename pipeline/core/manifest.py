"""The dataset manifest: one :class:`VideoEntry` per annotated person-video, grouped in shards.

Written by ``python -m stages.manifest`` into ``data/manifest`` (see :mod:`pipeline.core.layout`);
read by every per-shard stage, the trainer and ``predict``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from pipeline.core import layout
from pipeline.core.atomic import write_json

PARTITIONS = ("train", "validation", "test")


@dataclass(frozen=True)
class VideoEntry:
    """One video (or one annotated person of a two-person video) as the stages see it."""

    id: str  # unique id; `<source>_left` / `<source>_right` for two-person videos
    source: str  # path of the video file
    source_id: str  # id of the underlying video (shared by _left/_right); folds never split it
    content_hash: str  # sha256 prefix of the video file's bytes
    fps: float
    n_frames: int
    duration: float  # seconds
    has_audio: bool
    partition: str = "test"  # train | validation | test (no labels)
    label_file: str = ""  # annotation file, "" when unlabeled
    crops_dir: str = ""  # cropped_aligned/<id> when the dataset has face crops
    transcript_file: str = ""  # a user-provided word-level transcript, "" if none
    shard: int = 0
    crops_hash: str = ""  # crops_fingerprint(crops_dir): an edited crops folder re-runs its shard
    transcript_hash: str = ""  # file_hash(transcript_file): an edited transcript re-runs its shard

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> VideoEntry:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def shard_of(video_id: str, n_shards: int) -> int:
    """A stable shard for ``video_id``: sha1 of the id modulo the shard count."""
    if n_shards < 1:
        raise ValueError(f"shards must be >= 1, got {n_shards}")
    return int(hashlib.sha1(video_id.encode()).hexdigest(), 16) % n_shards


def file_hash(path: str | Path, chunk: int = 1 << 20) -> str:
    """sha256 prefix (16 hex digits) of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()[:16]


def crops_fingerprint(crops_dir: str | Path) -> str:
    """A cheap, clone-independent fingerprint of a crops folder: sha256 of its file names and sizes.

    (Reading every crop of Aff-Wild2, ~3 M files, on each manifest run would cost minutes; an edit
    that keeps a JPEG's size exactly is not noticed.)
    """
    h = hashlib.sha256()
    with os.scandir(crops_dir) as it:
        for name, size in sorted((e.name, e.stat().st_size) for e in it if e.is_file()):
            h.update(f"{name}\t{size}\n".encode())
    return h.hexdigest()[:16]


def write_shards(entries: list[VideoEntry], n_shards: int, root: Path = layout.DATA) -> None:
    """Write ``videos.json`` and one ``shards/<k>.json`` per shard (empty shards included)."""
    entries = sorted(entries, key=lambda e: e.id)
    write_json(layout.manifest_dir(root) / "videos.json", [e.to_dict() for e in entries])
    for k in range(n_shards):
        write_json(layout.shard_file(k, root), [e.to_dict() for e in entries if e.shard == k])


def read_shard(shard: int, root: Path = layout.DATA) -> list[VideoEntry]:
    """The entries of one shard; a clear error when the manifest stage has not run."""
    path = layout.shard_file(shard, root)
    if not path.exists():
        n = len(list(path.parent.glob("*.json"))) if path.parent.is_dir() else 0
        if n:
            raise FileNotFoundError(f"{path}: no shard {shard}; the manifest has shards 0..{n - 1} "
                                    "(data.shards)")
        raise FileNotFoundError(f"{path}: shard list missing; run `python -m stages.manifest` first")
    return [VideoEntry.from_dict(d) for d in json.loads(path.read_text())]


def read_manifest(root: Path = layout.DATA) -> list[VideoEntry]:
    """All entries of the manifest."""
    path = layout.manifest_dir(root) / "videos.json"
    if not path.exists():
        raise FileNotFoundError(f"{path}: manifest missing; run `python -m stages.manifest` first")
    return [VideoEntry.from_dict(d) for d in json.loads(path.read_text())]
