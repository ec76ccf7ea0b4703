"""Per-frame valence/arousal labels: Aff-Wild2 annotation files in, ``data/manifest/labels.h5`` out.

An Aff-Wild2 VA annotation file is plain text: a header ``valence,arousal`` and one row per video
frame (row i = frame i, 0-based). ``-5`` marks a frame that was not annotated. Such frames become
NaN and stay in place (a frame-level mask, never deletion: deleting them, as the official code does,
shifts every later face, audio patch and label out of step).

``labels.h5`` holds one group per video id with float32 datasets ``valence`` and ``arousal`` of
shape ``[n_frames]`` (the manifest's frame count). Writes are atomic and deterministic.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping
from pathlib import Path

import h5py
import numpy as np

from pipeline.core.atomic import atomic_path

TARGETS = ("valence", "arousal")
UNLABELED = -5.0  # the annotation's "no label for this frame" value
VALUE_RANGE = (-1.0, 1.0)

log = logging.getLogger("rjcma.labels")

Labels = dict[str, np.ndarray]  # target -> [n_frames] float32, NaN = unlabeled


class LabelError(ValueError):
    """An annotation or labels file that cannot be used; the message names the file and line."""


def parse_annotation(path: str | Path) -> Labels:
    """Read one annotation file → ``{"valence": [n_rows], "arousal": [n_rows]}`` float32, NaN for -5.

    The header (``valence,arousal`` in either order) is optional; without it the columns are
    valence, arousal. Blank lines at the end are ignored. A non-numeric value, a wrong number of
    columns or a value outside [-1, 1] (other than -5) is a :class:`LabelError` naming the line.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise LabelError(f"{path}: cannot read annotation file: {e}") from e
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    columns = list(TARGETS)
    start = 0
    if lines and not _is_numeric_row(lines[0]):
        header = [c.strip().lower() for c in lines[0].split(",")]
        if sorted(header) != sorted(TARGETS):
            raise LabelError(f"{path}: line 1: header {lines[0].strip()!r}; expected 'valence,arousal'")
        columns, start = header, 1
    values = np.empty((len(lines) - start, len(columns)), dtype=np.float32)
    for i, line in enumerate(lines[start:]):
        lineno = start + i + 1
        cells = line.split(",")
        if len(cells) != len(columns):
            raise LabelError(f"{path}: line {lineno}: {len(cells)} values, expected {len(columns)} "
                             f"({','.join(columns)}): {line.strip()!r}")
        try:
            row = [float(c) for c in cells]
        except ValueError:
            raise LabelError(f"{path}: line {lineno}: not a number: {line.strip()!r}") from None
        for name, v in zip(columns, row):
            if math.isnan(v):
                raise LabelError(f"{path}: line {lineno}: {name} is NaN; use -5 for unlabeled frames")
            if v != UNLABELED and not (VALUE_RANGE[0] <= v <= VALUE_RANGE[1]):
                raise LabelError(f"{path}: line {lineno}: {name} {v:g} outside [-1, 1] "
                                 f"(and not {UNLABELED:g}, the unlabeled mark)")
        values[i] = row
    if len(values) == 0:
        raise LabelError(f"{path}: no label rows")
    values[values == UNLABELED] = np.nan
    return {name: np.ascontiguousarray(values[:, j]) for j, name in enumerate(columns)}


def _is_numeric_row(line: str) -> bool:
    try:
        [float(c) for c in line.split(",")]
    except ValueError:
        return False
    return True


def fit_length(labels: Labels, n_frames: int, tolerance: int, source: str = "",
               warn: bool = True) -> Labels:
    """Pad with NaN or trim ``labels`` to ``n_frames`` rows.

    A difference of up to ``tolerance`` frames is logged as a warning (unless ``warn`` is False:
    the caller reports it; Aff-Wild2 files are often a frame or two off the decoded frame count);
    more is a :class:`LabelError` naming ``source``.
    """
    n_rows = len(next(iter(labels.values())))
    diff = n_rows - n_frames
    if diff == 0:
        return labels
    if abs(diff) > tolerance:
        raise LabelError(f"{source}: {n_rows} label rows but the video has {n_frames} frames "
                         f"(off by {diff:+d}; data.label_tolerance = {tolerance})")
    if warn:
        log.warning("%s: %d label rows for %d video frames; %s", source, n_rows, n_frames,
                    "trimmed" if diff > 0 else "padded with NaN (unlabeled)")
    out = {}
    for k, v in labels.items():
        if diff > 0:
            out[k] = np.ascontiguousarray(v[:n_frames])
        else:
            out[k] = np.concatenate([v, np.full(-diff, np.nan, dtype=np.float32)])
    return out


def write_labels(path: str | Path, labels: Mapping[str, Mapping[str, np.ndarray]]) -> Path:
    """Atomically write ``{video_id: {target: [n_frames]}}`` to an HDF5 file (groups sorted by id).

    Identical input gives byte-identical files (no timestamps, fixed order).
    """
    path = Path(path)
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w", track_order=False) as f:
            f.attrs["targets"] = ",".join(TARGETS)
            f.attrs["unlabeled"] = "NaN (annotation value -5)"
            for vid in sorted(labels):
                g = f.create_group(vid, track_order=False)
                for target in sorted(labels[vid]):
                    arr = np.asarray(labels[vid][target], dtype=np.float32)
                    if arr.ndim != 1:
                        raise LabelError(f"{path}: {vid}/{target}: expected shape [n_frames], "
                                         f"got {arr.shape}")
                    g.create_dataset(target, data=arr, track_times=False)
    return path


def read_labels(path: str | Path, ids: Iterable[str] | None = None) -> dict[str, Labels]:
    """Read ``{video_id: {target: [n_frames] float32}}`` from ``labels.h5`` (all ids, or ``ids``).

    NaN marks unlabeled frames. An id missing from the file is a :class:`LabelError`.
    """
    path = Path(path)
    if not path.exists():
        raise LabelError(f"{path}: labels file missing; run `python -m stages.manifest` first")
    try:
        with h5py.File(path, "r") as f:
            wanted = sorted(f.keys()) if ids is None else list(ids)
            missing = [v for v in wanted if v not in f]
            if missing:
                raise LabelError(f"{path}: no labels for video(s) {missing[:5]}"
                                 f"{' ...' if len(missing) > 5 else ''} (unlabeled / test videos "
                                 "have no entry)")
            return {v: {t: f[v][t][()].astype(np.float32, copy=False) for t in f[v]} for v in wanted}
    except OSError as e:
        raise LabelError(f"{path}: cannot read labels file: {e}") from e
