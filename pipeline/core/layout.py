"""Where every stage reads and writes, relative to the project root (see docs/architecture.md).

One function per kind of file so that stages, the trainer, the report and tests agree on paths.
"""

from __future__ import annotations

from pathlib import Path

DATA = Path("data")
RESULTS = Path("results")
# the dataset's lists that shape evaluation (data.trial_order, report.submission_list): files in
# this folder, which the stages reading them list as a DVC dependency (pipeline/dataset/lists.py)
LISTS = Path("conf/lists")
MODALITIES = ("audio", "visual", "text")

# dataset files read by more than one room (dataset scanning, faces, transcripts, predict)
CROP_NAME = "{:05d}.jpg"  # cropped_aligned/<id>/00001.jpg = video frame 0 (Aff-Wild2's 1-based numbers)
TRANSCRIPT_EXTENSIONS = (".json", ".csv")  # a user's word-level transcript <name>.json | <name>.csv

# the files of a run folder (train_dir) written by stages.train, read by the report and predict
CHECKPOINT = "checkpoint.pt"  # state dicts + resolved config and dims (fusion.checkpoint)
METRICS = "metrics.json"  # validation CCC of the best epoch (also the report folder's metrics)
CURVES_CSV = "curves.csv"  # one row per epoch (fusion.curves)
CURVES_JSON = "curves.json"
CURVES_PNG = "curves.png"
PREDICTIONS = "predictions"  # folder: <video>.csv per validation video


def crop_path(crops_dir: str | Path, frame: int) -> Path:
    """The crop image of 0-based video frame ``frame`` in a ``cropped_aligned/<id>`` folder."""
    return Path(crops_dir) / CROP_NAME.format(frame + 1)


def transcript_candidates(folder: str | Path, *names: str) -> list[Path]:
    """``<folder>/<name>.json|csv`` for each non-empty, distinct name, in the order they are tried."""
    return [Path(folder) / f"{name}{ext}" for name in dict.fromkeys(n for n in names if n)
            for ext in TRANSCRIPT_EXTENSIONS]


def find_transcript(folder: str | Path, *names: str) -> Path | None:
    """The first existing transcript :func:`transcript_candidates` lists, or None."""
    return next((p for p in transcript_candidates(folder, *names) if p.is_file()), None)


def manifest_dir(root: Path = DATA) -> Path:
    """``data/manifest``: videos.json, shards/<shard>.json, labels.h5, folds.json."""
    return root / "manifest"


def shard_file(shard: int, root: Path = DATA) -> Path:
    return manifest_dir(root) / "shards" / f"{shard}.json"


def labels_file(root: Path = DATA) -> Path:
    return manifest_dir(root) / "labels.h5"


def folds_file(root: Path = DATA) -> Path:
    return manifest_dir(root) / "folds.json"


def uses_file(chain: str, root: Path = DATA) -> Path:
    """``data/uses/<chain>.json``: whether the configuration uses a chain (pipeline/core/uses.py)."""
    return root / "uses" / f"{chain}.json"


def wav_dir(shard: int, root: Path = DATA) -> Path:
    return root / "interim" / "wav" / str(shard)


def wav_path(shard: int, video_id: str, root: Path = DATA) -> Path:
    return wav_dir(shard, root) / f"{video_id}.wav"


def asr_dir(shard: int, root: Path = DATA) -> Path:
    return root / "interim" / "asr" / str(shard)


def asr_path(shard: int, video_id: str, root: Path = DATA) -> Path:
    return asr_dir(shard, root) / f"{video_id}.json"


def transcript_dir(shard: int, root: Path = DATA) -> Path:
    return root / "interim" / "transcripts" / str(shard)


def transcript_path(shard: int, video_id: str, root: Path = DATA) -> Path:
    return transcript_dir(shard, root) / f"{video_id}.json"


def feature_dir(modality: str, root: Path = DATA) -> Path:
    """``data/features/<modality>``; per-shard subfolders hold ``<video_id>.h5``."""
    if modality not in MODALITIES:
        raise ValueError(f"unknown modality {modality!r}; expected one of {MODALITIES}")
    return root / "features" / modality


def feature_shard_dir(modality: str, shard: int, root: Path = DATA) -> Path:
    return feature_dir(modality, root) / str(shard)


def feature_path(modality: str, shard: int, video_id: str, root: Path = DATA) -> Path:
    return feature_shard_dir(modality, shard, root) / f"{video_id}.h5"


def train_dir(fold: int, target: str, root: Path = RESULTS) -> Path:
    """``results/train/<fold>-<target>``: CHECKPOINT, CURVES_*, PREDICTIONS/, METRICS."""
    return root / "train" / f"{fold}-{target}"


def report_dir(root: Path = RESULTS) -> Path:
    return root / "report"
