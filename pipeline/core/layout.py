"""Where every stage reads and writes, relative to the project root (see docs/architecture.md).

One function per kind of file so that stages, the trainer, the report and tests agree on paths.
"""

from __future__ import annotations

from pathlib import Path

DATA = Path("data")
RESULTS = Path("results")
MODALITIES = ("audio", "visual", "text")

# the files of a run folder (train_dir) written by stages.train, read by the report and predict
CHECKPOINT = "checkpoint.pt"  # state dicts + resolved config and dims (fusion.checkpoint)
METRICS = "metrics.json"  # validation CCC of the best epoch (also the report folder's metrics)
CURVES_CSV = "curves.csv"  # one row per epoch (fusion.curves)
CURVES_JSON = "curves.json"
CURVES_PNG = "curves.png"
PREDICTIONS = "predictions"  # folder: <video>.csv per validation video


def manifest_dir(root: Path = DATA) -> Path:
    """``data/manifest``: videos.json, shards/<shard>.json, labels.h5, folds.json."""
    return root / "manifest"


def shard_file(shard: int, root: Path = DATA) -> Path:
    return manifest_dir(root) / "shards" / f"{shard}.json"


def labels_file(root: Path = DATA) -> Path:
    return manifest_dir(root) / "labels.h5"


def folds_file(root: Path = DATA) -> Path:
    return manifest_dir(root) / "folds.json"


def wav_path(shard: int, video_id: str, root: Path = DATA) -> Path:
    return root / "interim" / "wav" / str(shard) / f"{video_id}.wav"


def asr_path(shard: int, video_id: str, root: Path = DATA) -> Path:
    return root / "interim" / "asr" / str(shard) / f"{video_id}.json"


def transcript_path(shard: int, video_id: str, root: Path = DATA) -> Path:
    return root / "interim" / "transcripts" / str(shard) / f"{video_id}.json"


def feature_dir(modality: str, root: Path = DATA) -> Path:
    """``data/features/<modality>``; per-shard subfolders hold ``<video_id>.h5``."""
    if modality not in MODALITIES:
        raise ValueError(f"unknown modality {modality!r}; expected one of {MODALITIES}")
    return root / "features" / modality


def feature_path(modality: str, shard: int, video_id: str, root: Path = DATA) -> Path:
    return feature_dir(modality, root) / str(shard) / f"{video_id}.h5"


def train_dir(fold: int, target: str, root: Path = RESULTS) -> Path:
    """``results/train/<fold>-<target>``: CHECKPOINT, CURVES_*, PREDICTIONS/, METRICS."""
    return root / "train" / f"{fold}-{target}"


def report_dir(root: Path = RESULTS) -> Path:
    return root / "report"
