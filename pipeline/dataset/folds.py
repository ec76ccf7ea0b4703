"""Cross-validation folds over the labeled videos, written to ``data/manifest/folds.json``.

``{"folds": [{"train": [ids], "validation": [ids]}, ...], "test": [ids]}`` (ids sorted):

- fold 0 is the official split: the train and validation partitions as the dataset gives them;
- folds 1 .. n-1 rotate chunks of train ∪ validation: the labeled *source* videos, sorted by id,
  are cut into n contiguous chunks of near-equal size; fold k validates on chunk k and trains on
  the other n-1 chunks (chunk 0 is validated by no fold when fold 0 is the official split).
  Grouping by source keeps the two people of a ``_left``/``_right`` video in one chunk (they
  share the audio and the scene), so they never straddle train and validation;
- ``test`` lists the test-partition videos (no labels), kept for prediction.

If the dataset has no validation (or no train) partition, fold 0 is not official but chunk 0's fold.
Deterministic: the same entries give the same file.

``data.fold_scheme: official`` reproduces the authors' partition instead (:func:`official_folds`):
the training trials in order (the authors' order from ``data.trial_order``, a file in conf/lists
with one trial id per line, see pipeline/dataset/lists.py; unset: sorted by id) are cut into
``n - 1`` consecutive chunks at ``floor(i * n_train / (n - 1))`` (Aff-Wild2's 356 training trials:
[0, 71), [71, 142), [142, 213), [213, 284), [284, 356)), the official validation set is the last
chunk, and fold k rolls the list of chunks by k (``np.roll``): the last chunk after rolling
validates, the others train.
Fold 0 is the official split. Two people of one source video can land on both sides.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from pipeline.core.atomic import write_json
from pipeline.core.manifest import VideoEntry

LABELED = ("train", "validation")

log = logging.getLogger("rjcma.folds")

Folds = dict  # {"folds": [{"train": [...], "validation": [...]}], "test": [...]}


class FoldsError(ValueError):
    """Folds that cannot be made from the given videos (too few sources for the fold count)."""


def _rotate(sources: list[str], members: dict[str, list[str]], n_chunks: int) -> list[dict]:
    """``n_chunks`` folds: fold k validates on chunk k of the sorted sources, trains on the rest."""
    chunks = np.array_split(np.arange(len(sources)), n_chunks)
    folds = []
    for chunk in chunks:
        val_sources = {sources[i] for i in chunk}
        val = sorted(v for s in val_sources for v in members[s])
        train = sorted(v for s in sources if s not in val_sources for v in members[s])
        folds.append({"train": train, "validation": val})
    return folds


def official_folds(train_ids: list[str], val_ids: list[str], n_folds: int) -> list[dict]:
    """The authors' folds (module docstring) of the training trials ``train_ids`` in their order
    and the official validation trials ``val_ids``."""
    if n_folds < 2:
        return [{"train": sorted(train_ids), "validation": sorted(val_ids)}]
    n = len(train_ids)
    k = n_folds - 1
    if n < k:
        raise FoldsError(f"data.fold_scheme = official with data.folds = {n_folds} needs at least "
                         f"{k} training trials, found {n}")
    bounds = [i * n // k for i in range(k + 1)]
    chunks = [train_ids[bounds[i]:bounds[i + 1]] for i in range(k)] + [list(val_ids)]
    folds = []
    for fold in range(n_folds):
        rolled = chunks[-fold:] + chunks[:-fold] if fold else chunks  # np.roll(chunks, fold)
        folds.append({"train": sorted(v for c in rolled[:-1] for v in c),
                      "validation": sorted(rolled[-1])})
    return folds


def ordered_trials(train_ids: Sequence[str], known: set[str], order: Sequence[str],
                   where: str) -> list[str]:
    """``train_ids`` in the order of ``order`` (the authors' list, read from ``where``).

    ``order`` may also list the dataset's other trials (validation, test: ``known``), which are
    skipped; an id the dataset does not have, or a training trial the list lacks, is a
    :class:`FoldsError` naming ``where``.
    """
    unknown = [t for t in order if t not in known]
    if unknown:
        raise FoldsError(f"{where}: {len(unknown)} trial id(s) not in the dataset: "
                         f"{', '.join(unknown[:5])}{' ...' if len(unknown) > 5 else ''}")
    listed = set(order)
    missing = sorted(t for t in train_ids if t not in listed)
    if missing:
        raise FoldsError(f"{where}: lacks {len(missing)} training trial(s): "
                         f"{', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")
    train = set(train_ids)
    return [t for t in order if t in train]


def make_folds(entries: Iterable[VideoEntry], n_folds: int, scheme: str = "source-safe",
               order: Sequence[str] | None = None, order_file: str = "data.trial_order") -> Folds:
    """The fold dict for ``entries`` (see the module docstring).

    ``order``: the authors' trial order for the ``official`` scheme (read from ``order_file``,
    :func:`ordered_trials`); None = sorted by id. A dataset without labeled videos gives no folds
    (prediction only). Fewer labeled source videos than folds is a :class:`FoldsError` naming
    ``data.folds``.
    """
    if n_folds < 1:
        raise FoldsError(f"data.folds must be >= 1, got {n_folds}")
    entries = sorted(entries, key=lambda e: e.id)
    test = [e.id for e in entries if e.partition not in LABELED]
    labeled = [e for e in entries if e.partition in LABELED]
    if not labeled:
        log.info("no labeled videos: no folds (%d test videos)", len(test))
        return {"folds": [], "test": test}
    members: dict[str, list[str]] = {}
    for e in labeled:
        members.setdefault(e.source_id, []).append(e.id)
    sources = sorted(members)
    official_train = [e.id for e in labeled if e.partition == "train"]
    official_val = [e.id for e in labeled if e.partition == "validation"]
    straddle = sorted({e.source_id for e in labeled if e.partition == "validation"}
                      & {e.source_id for e in labeled if e.partition == "train"})
    if straddle:
        log.warning("official split puts people of one source video in train and validation: %s "
                    "(kept in fold 0; folds 1.. keep them together)", ", ".join(straddle))
    official = bool(official_val and official_train)
    if scheme == "official":
        if not official:
            raise FoldsError("data.fold_scheme = official needs an official train and validation "
                             f"partition; the dataset has {len(official_train)} train and "
                             f"{len(official_val)} validation videos")
        if order is not None:
            official_train = ordered_trials(official_train, {e.id for e in entries}, order, order_file)
        return {"folds": official_folds(official_train, official_val, n_folds), "test": test}
    if not official:
        log.warning("no official %s partition: fold 0 is a rotated chunk like the others",
                    "validation" if official_train else "train")
        if n_folds < 2:
            raise FoldsError(f"data.folds = 1 needs an official train and validation partition; "
                             f"the dataset has {len(official_train)} train and {len(official_val)} "
                             "validation videos")
    if n_folds > 1 and n_folds > len(sources):
        raise FoldsError(f"data.folds = {n_folds} needs at least {n_folds} labeled source videos to "
                         f"rotate, found {len(sources)}; lower data.folds")
    rotated = _rotate(sources, members, n_folds) if n_folds > 1 else []
    folds = [{"train": official_train, "validation": official_val} if official else rotated[0]]
    folds += rotated[1:]
    return {"folds": folds, "test": test}


def write_folds(path: str | Path, folds: Folds) -> None:
    """Atomically write ``folds.json`` (sorted keys, deterministic)."""
    write_json(path, folds)


def read_folds(path: str | Path) -> Folds:
    """Read ``folds.json``; a clear error when the manifest stage has not run."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: folds file missing; run `python -m stages.manifest` first")
    return json.loads(path.read_text())


def fold_split(path: str | Path, fold: int) -> tuple[list[str], list[str]]:
    """``(train ids, validation ids)`` of ``fold`` in ``folds.json``; clear errors naming the file."""
    folds = read_folds(path).get("folds", [])
    if not 0 <= fold < len(folds):
        raise ValueError(f"{path}: fold {fold} requested but the file has {len(folds)} fold(s)")
    split = folds[fold]
    if not split.get("train") or not split.get("validation"):
        raise ValueError(f"{path}: fold {fold} needs non-empty 'train' and 'validation' lists")
    return list(split["train"]), list(split["validation"])
