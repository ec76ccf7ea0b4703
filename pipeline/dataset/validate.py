"""Checking a dataset root before any expensive stage runs.

:func:`validate` scans the root as the manifest stage would (without hashing the videos) and also
checks that the folds can be made, returning every :class:`~pipeline.dataset.scan.Problem`:

errors (the manifest stage would leave the file out, or cannot run):
  labels without a video; label rows vs video frames off by more than ``data.label_tolerance``;
  unreadable label files (non-numeric rows, values outside [-1, 1]); unreadable / corrupt video
  files; video or annotation ids that collide; an empty dataset; too few labeled videos for
  ``data.folds``.
warnings (handled, but worth knowing):
  label rows off by at most the tolerance (padded with NaN / trimmed); videos without an audio
  track (silent audio features); frame counts that had to be decoded; face-crop folders without a
  video, without ``00001.jpg``-style names or beyond the video's frames; annotation files outside
  a Train_Set / Validation_Set folder; annotation files with no labelled row for a target (all -5).
"""

from __future__ import annotations

from collections import Counter

from pipeline.core.params import Params
from pipeline.dataset.folds import FoldsError, make_folds
from pipeline.dataset.lists import ListError, trial_order
from pipeline.dataset.scan import Problem, Scan, scan


def validate(params: Params, progress: bool = True) -> Scan:
    """Scan ``params.data.root`` (no hashing) and check the folds; problems in ``.problems``."""
    result = scan(params.data.root, params.data, params.asr.transcripts_dir, hash_files=False,
                  progress=progress)
    try:
        make_folds(result.entries, params.data.folds, params.data.fold_scheme,
                   trial_order(params.data.trial_order), params.data.trial_order)
    except (FoldsError, ListError) as e:
        result.problems.append(Problem(params.data.root, str(e)))
    return result


def report(result: Scan, root: str) -> str:
    """A human-readable report: one line per problem, then a summary line."""
    lines = [p.line() for p in result.problems]
    parts = Counter(e.partition for e in result.entries)
    summary = (f"{root} ({result.layout} layout): {len(result.entries)} usable videos "
               f"({parts['train']} train, {parts['validation']} validation, {parts['test']} test), "
               f"{len(result.errors)} error(s), {len(result.warnings)} warning(s)")
    return "\n".join([*lines, summary])
