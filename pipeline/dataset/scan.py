"""Reading a dataset root: which videos, labels, face crops and transcripts there are.

Two layouts (``data.layout``; ``auto`` picks ``affwild2`` when the root has ``annotations/`` or
``cropped_aligned/``, else ``folder``):

- ``affwild2``: videos (any container ffmpeg reads: ``.mp4``, ``.avi``, ``.mkv``, ``.mov``, ``.webm``,
  ``.m4v``, ``.mpg`` …, :data:`VIDEO_EXTENSIONS`; any other unknown file is skipped with a warning
  naming it) anywhere under the root (e.g. ``videos/``);
  ``cropped_aligned/<id>/00001.jpg …`` (1-based frame numbers, a missing file = no face);
  ``annotations/<...>/Train_Set/<id>.txt`` and ``…/Validation_Set/<id>.txt`` (header
  ``valence,arousal``, one row per frame, −5 = unlabeled; folders named ``AU_*``/``EXPR_*`` — the
  other Aff-Wild2 challenges — are ignored); an annotation ``<x>_left`` / ``<x>_right`` is one person
  of the two-person video ``<x>.mp4``. A video without annotations is in the test partition (as
  ``<x>_left`` / ``<x>_right`` when such crops folders exist), and so is an unannotated person
  ``<x>_right`` (crops folder) of a video whose ``<x>_left`` is annotated.
- ``folder``: every video under the root is one test-partition entry (no labels, no crops).

Either way an optional ``<transcripts_dir>/<id>.json|csv`` (or ``<source id>.json|csv``) is a
word-level transcript the user provides.

:func:`plan` pairs the files without opening any video (cheap); :func:`scan` then probes each
source video once, hashes it, reads and length-checks the labels, and returns the manifest entries
with every problem found (:class:`Problem`, naming the file). Nothing here raises for a bad file:
a bad video or label file becomes an error problem and its entries are left out.
"""

from __future__ import annotations

import logging
import os
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from pipeline.core.layout import CROP_NAME, find_transcript
from pipeline.core.manifest import VideoEntry, crops_fingerprint, file_hash, shard_of
from pipeline.core.media import MediaError, VideoInfo, probe
from pipeline.core.params import LAYOUTS, DataParams
from pipeline.dataset.labels import LabelError, Labels, fit_length, parse_annotation

# containers ffmpeg reads with a video stream (lower case; a file's extension is compared lower-cased)
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv",
                    ".3gp", ".ogv", ".ts", ".mts", ".m2ts", ".vob", ".mxf", ".qt")
# files that are clearly not videos (labels, crops, transcripts, audio, notes): skipped silently;
# any other file is skipped with a warning naming it (a video in a container not listed above?)
NOT_VIDEO_EXTENSIONS = (".txt", ".csv", ".json", ".jsonl", ".tsv", ".xml", ".yaml", ".yml", ".md", ".rst",
                        ".pdf", ".html", ".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff",
                        ".webp", ".wav", ".mp3", ".flac", ".m4a", ".aac", ".ogg", ".opus", ".h5",
                        ".npy", ".npz", ".pkl", ".pt", ".pth", ".zip", ".tar", ".gz", ".dvc", ".py",
                        ".sh", ".log", ".srt", ".vtt", ".lock", "")
PERSON_SUFFIXES = ("_left", "_right")
CROPS_DIR = "cropped_aligned"
ANNOTATIONS_DIR = "annotations"
IGNORED_ANNOTATION_PREFIXES = ("au_", "expr_")  # Aff-Wild2's other challenges' annotations
PARTITION_WORDS = (("train", "train"), ("valid", "validation"), ("test", "test"))  # dir name → partition
CROP_NAME_RE = re.compile(r"^(\d+)\.(?:jpg|jpeg|png)$", re.IGNORECASE)  # any numbered image

log = logging.getLogger("rjcma.dataset")


@dataclass(frozen=True)
class Problem:
    """Something wrong with the dataset, naming the file. ``level``: error | warning."""

    path: str
    message: str
    level: str = "error"

    def line(self) -> str:
        return f"{self.level}: {self.path}: {self.message}"

    def to_dict(self) -> dict:
        return {"level": self.level, "path": self.path, "message": self.message}


@dataclass(frozen=True)
class Planned:
    """One future manifest entry, before its video is opened."""

    id: str
    source: str  # video path (POSIX, as under the given root)
    source_id: str  # stem of the video file
    partition: str = "test"
    label_file: str = ""
    crops_dir: str = ""
    transcript_file: str = ""


@dataclass
class Scan:
    """What :func:`scan` found: entries (sorted by id), their labels, and every problem."""

    layout: str
    entries: list[VideoEntry] = field(default_factory=list)
    labels: dict[str, Labels] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    infos: dict[str, VideoInfo] = field(default_factory=dict)  # by source path

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.level == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.level == "warning"]


def _posix(p: Path) -> str:
    return p.as_posix()


def _files(top: Path, skip: tuple[str, ...] = ()) -> list[Path]:
    """Every file under ``top``, sorted, following symlinked folders (a ``videos -> /srv/..`` link
    works), skipping hidden folders and, directly under ``top``, the folders named in ``skip``."""
    out = []
    for dirpath, dirnames, filenames in os.walk(top, followlinks=True):
        here = Path(dirpath)
        dirnames[:] = [d for d in dirnames if not d.startswith(".")
                       and not (here == top and d in skip)]
        out += [here / f for f in filenames if not f.startswith(".")]
    return sorted(out)


def _strip_path(message: str, path: str) -> str:
    """An exception message without its leading ``path: `` (Problem carries the path)."""
    return message[len(path) + 2:] if message.startswith(f"{path}: ") else message


def detect_layout(root: Path, layout: str = "auto") -> str:
    """``affwild2`` or ``folder`` (``auto``: affwild2 when annotations/ or cropped_aligned/ exist)."""
    if layout not in LAYOUTS:
        raise ValueError(f"data.layout must be one of {LAYOUTS}, got {layout!r}")
    if layout != "auto":
        return layout
    return "affwild2" if (root / ANNOTATIONS_DIR).is_dir() or (root / CROPS_DIR).is_dir() else "folder"


def find_videos(root: Path, skip: tuple[str, ...] = ()) -> tuple[dict[str, Path], list[Problem]]:
    """``{stem: path}`` of the video files under ``root`` (not under ``skip`` dirs or hidden dirs).

    Two files with the same stem (e.g. ``a/x.mp4`` and ``b/x.avi``) are an error naming both; both
    are left out, since either could be the one the labels mean.
    """
    by_stem: dict[str, list[Path]] = defaultdict(list)
    problems = []
    for p in _files(root, skip):
        ext = p.suffix.lower()
        if ext in VIDEO_EXTENSIONS:
            by_stem[p.stem].append(p)
        elif ext not in NOT_VIDEO_EXTENSIONS:
            problems.append(Problem(_posix(p), f"skipped: {ext} is not a known video container "
                                    f"({' '.join(VIDEO_EXTENSIONS)}); convert or rename it if it "
                                    "is a video", "warning"))
    videos = {}
    for stem, paths in sorted(by_stem.items()):
        if len(paths) > 1:
            for p in paths:
                others = ", ".join(_posix(o) for o in paths if o != p)
                problems.append(Problem(_posix(p), f"video id {stem!r} collides with {others}; "
                                        "rename one (both left out)"))
            continue
        videos[stem] = paths[0]
    return videos, problems


def partition_of(annotation: Path, annotations_root: Path) -> str | None:
    """train | validation | test from the nearest folder name (``Train_Set`` …), else None."""
    for part in reversed(annotation.relative_to(annotations_root).parts[:-1]):
        low = part.lower()
        for word, partition in PARTITION_WORDS:
            if word in low:
                return partition
    return None


def find_annotations(root: Path) -> tuple[dict[str, tuple[Path, str]], list[Problem]]:
    """``{id: (file, partition)}`` of the VA annotation files under ``root/annotations``."""
    ann_root = root / ANNOTATIONS_DIR
    found: dict[str, list[tuple[Path, str]]] = defaultdict(list)
    problems: list[Problem] = []
    if not ann_root.is_dir():
        return {}, problems
    for p in _files(ann_root):
        rel = p.relative_to(ann_root).parts
        if p.suffix != ".txt" or any(part.lower().startswith(IGNORED_ANNOTATION_PREFIXES)
                                     for part in rel[:-1]):
            continue
        partition = partition_of(p, ann_root)
        if partition is None:
            partition = "train"
            problems.append(Problem(_posix(p), "not under a Train_Set/Validation_Set folder; "
                                    "taken as train", "warning"))
        found[p.stem].append((p, partition))
    annotations = {}
    for vid, hits in sorted(found.items()):
        if len(hits) > 1:
            for p, _ in hits:
                others = ", ".join(_posix(o) for o, _ in hits if o != p)
                problems.append(Problem(_posix(p), f"annotation id {vid!r} also in {others} "
                                        "(both left out)"))
            continue
        annotations[vid] = hits[0]
    return annotations, problems


def _transcript(root: Path, transcripts_dir: str, *ids: str) -> str:
    path = find_transcript(root / transcripts_dir, *ids)
    return _posix(path) if path is not None else ""


def plan(root: str | Path, layout: str = "auto",
         transcripts_dir: str = "transcripts") -> tuple[str, list[Planned], list[Problem]]:
    """Pair videos, annotations, crops folders and transcripts without opening any video.

    Returns ``(layout, planned entries sorted by id, problems)``.
    """
    root = Path(root)
    if not root.is_dir():
        return layout, [], [Problem(_posix(root), "dataset root is not a directory (data.root)")]
    layout = detect_layout(root, layout)
    skip = (CROPS_DIR, ANNOTATIONS_DIR, transcripts_dir) if layout == "affwild2" else (transcripts_dir,)
    videos, problems = find_videos(root, skip)
    if not videos and not any(p.level == "error" for p in problems):
        problems.append(Problem(_posix(root), "no video files "
                                "(.mp4/.mkv/.avi/.mov/.webm/... any video container) found"))
    planned: list[Planned] = []

    def add(vid: str, stem: str, partition: str = "test", label: Path | None = None) -> None:
        crops = root / CROPS_DIR / vid
        planned.append(Planned(
            id=vid, source=_posix(videos[stem]), source_id=stem, partition=partition,
            label_file=_posix(label) if label else "",
            crops_dir=_posix(crops) if layout == "affwild2" and crops.is_dir() else "",
            transcript_file=_transcript(root, transcripts_dir, vid, stem)))

    if layout == "folder":
        for stem in videos:
            add(stem, stem)
    else:
        annotations, ann_problems = find_annotations(root)
        problems += ann_problems
        used: set[str] = set()
        for vid, (label, partition) in annotations.items():
            stem = vid if vid in videos else _person_source(vid)
            if stem not in videos:
                problems.append(Problem(_posix(label), f"labels without a video: no {vid}"
                                        ".mp4/.mkv/..."
                                        + (f" or {stem}.mp4/.mkv/..." if stem and stem != vid else "")
                                        + " under the dataset root"))
                continue
            add(vid, stem, partition, label)
            used.add(stem)
        crops_root = root / CROPS_DIR
        crops = sorted(p.name for p in crops_root.iterdir() if p.is_dir()) if crops_root.is_dir() else []
        for stem in videos:  # unannotated people: the test partition
            persons = [f"{stem}{s}" for s in PERSON_SUFFIXES
                       if f"{stem}{s}" in crops and f"{stem}{s}" not in annotations]
            for vid in persons or ([] if stem in used else [stem]):
                add(vid, stem)
        ids = {p.id for p in planned}
        for name in crops:
            if name not in ids and name not in videos:
                problems.append(Problem(_posix(crops_root / name), "face crops without a video "
                                        "(ignored)", "warning"))
    planned.sort(key=lambda p: p.id)
    return layout, planned, problems


def _person_source(vid: str) -> str:
    """``x`` for ``x_left`` / ``x_right``, else ""."""
    for s in PERSON_SUFFIXES:
        if vid.endswith(s) and len(vid) > len(s):
            return vid[: -len(s)]
    return ""


def check_crops(crops_dir: str, n_frames: int, tolerance: int) -> list[Problem]:
    """Warnings for a crops folder that cannot line up with its video: no ``00001.jpg``-style
    files, or frame numbers beyond the video's last frame by more than ``tolerance``."""
    numbered = [(f, int(m[1])) for f in os.listdir(crops_dir) if (m := CROP_NAME_RE.match(f))]
    numbers = [n for f, n in numbered if f == CROP_NAME.format(n)]  # the names the visual stage reads
    if not numbers:
        other = ""
        if numbered:  # numbered images that the visual stage would not find (1.jpg, 00001.png)
            other = f" (found e.g. {min(f for f, _ in numbered)}, which the visual stage does not read)"
        return [Problem(crops_dir, "no face crops named like 00001.jpg (1-based frame numbers)"
                        f"{other}; the frames will be treated as faceless", "warning")]
    if max(numbers) > n_frames + tolerance:
        return [Problem(crops_dir, f"crop {max(numbers):05d} is beyond the video's {n_frames} "
                        "frames (crops of another video?)", "warning")]
    return []


def scan(root: str | Path, data: DataParams, transcripts_dir: str = "transcripts",
         hash_files: bool = True, progress: bool = True) -> Scan:
    """Plan, then probe (and hash) each source video once and read each label file.

    A video that cannot be probed drops all its entries (error problem); a label file that cannot
    be parsed, or whose row count is off the video's frame count by more than
    ``data.label_tolerance``, drops its entry (error problem); a smaller difference is padded with
    NaN / trimmed (warning problem).
    """
    layout, planned, problems = plan(root, data.layout, transcripts_dir)
    result = Scan(layout=layout, problems=problems)
    sources = sorted({p.source for p in planned})
    hashes: dict[str, str] = {}
    for src in tqdm(sources, desc="probe videos", unit="video", disable=None if progress else True):
        try:
            result.infos[src] = probe(src, data.count_frames)
            if hash_files:
                hashes[src] = file_hash(src)
        except (MediaError, OSError) as e:
            result.problems.append(Problem(src, _strip_path(str(e), src)))
    for p in planned:
        info = result.infos.get(p.source)
        if info is None:
            continue
        if p.label_file:
            try:
                raw = parse_annotation(p.label_file)
                n_rows = len(raw["valence"])
                labels = fit_length(raw, info.n_frames, data.label_tolerance, p.label_file,
                                    warn=False)
            except LabelError as e:
                result.problems.append(Problem(p.label_file, _strip_path(str(e), p.label_file)))
                continue
            unlabelled = [t for t, v in raw.items() if np.isnan(v).all()]  # every row -5
            if unlabelled:
                what = " or ".join(sorted(unlabelled))
                result.problems.append(Problem(
                    p.label_file, f"no labelled {what} frame (every row is -5): the video adds "
                    f"nothing to training or validation of {what}", "warning"))
            if n_rows != info.n_frames:
                result.problems.append(Problem(
                    p.label_file, f"{n_rows} label rows for {info.n_frames} video frames of "
                    f"{p.source}; {'trimmed' if n_rows > info.n_frames else 'padded with NaN'}",
                    "warning"))
            result.labels[p.id] = labels
        result.entries.append(VideoEntry(
            id=p.id, source=p.source, source_id=p.source_id, content_hash=hashes.get(p.source, ""),
            fps=info.fps, n_frames=info.n_frames, duration=info.duration, has_audio=info.has_audio,
            partition=p.partition, label_file=p.label_file, crops_dir=p.crops_dir,
            transcript_file=p.transcript_file, shard=shard_of(p.id, data.shards),
            crops_hash=crops_fingerprint(p.crops_dir) if p.crops_dir else "",
            transcript_hash=file_hash(p.transcript_file) if p.transcript_file else ""))
        if p.crops_dir:
            result.problems += check_crops(p.crops_dir, info.n_frames, data.label_tolerance)
        if info.frame_count == "decoded" and info.n_frames != info.header_frames:
            result.problems.append(Problem(p.source, f"the container says {info.header_frames} "
                                           f"frames but {info.n_frames} decode (truncated or "
                                           f"damaged?); using {info.n_frames}", "warning"))
        if not info.has_audio:
            result.problems.append(Problem(p.source, "no audio track: audio features will be "
                                           "silence", "warning"))
    if planned and not result.entries:
        result.problems.append(Problem(_posix(Path(root)), "no usable videos (see the errors above)"))
    result.problems = _dedupe(result.problems)
    return result


def _dedupe(problems: list[Problem]) -> list[Problem]:
    """Unique problems, errors first, then by path (deterministic report order)."""
    seen = dict.fromkeys(problems)
    return sorted(seen, key=lambda p: (p.level != "error", p.path, p.message))
