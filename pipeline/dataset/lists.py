"""Lists that come with a dataset and shape its evaluation, read from ``conf/lists/``:

- ``data.trial_order``: the authors' trial order (their preprocessing's dataset info), one trial id
  per line; the official folds (``data.fold_scheme: official``) cut the training trials in this
  order (pipeline/dataset/folds.py). "" = sorted by id;
- ``report.submission_list``: the organisers' test frame list, lines ``<trial>/<NNNNN>.jpg`` (a
  header allowed), the rows of the ABAW submission file (fusion/report.py). "" = every test frame.

Both name a file inside :data:`pipeline.core.layout.LISTS` (``conf/lists``): the stages that read
them (manifest, report) list that folder as a DVC dependency, so a changed list re-runs them. DVC
has no optional dependency (an unset value would be an empty path), and the folder always exists
(its README.md), so an unset list adds nothing; a file elsewhere is an error naming the key, since
DVC would not see it change. Blank lines and lines starting with ``#`` are skipped in both lists.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.core import layout

FRAME_LIST_HEADER = "image_location"  # the first column's name in the organisers' list


class ListError(ValueError):
    """A list file that cannot be used; the message names the file (or the key) and the problem."""


def list_path(value: str, key: str, lists: Path = layout.LISTS) -> Path:
    """The file that the param ``key`` = ``value`` names, checked to be a file inside ``lists``."""
    path = Path(value)
    if not path.resolve().is_relative_to(Path(lists).resolve()):
        raise ListError(f"{key} = {value}: put the file in {lists}/ (the folder DVC tracks for the "
                        "stages that read it; a file elsewhere would not re-run them when it changes)")
    if not path.is_file():
        raise ListError(f"{path}: {key} file not found")
    return path


def _lines(path: Path) -> list[tuple[int, str]]:
    """``(1-based line number, stripped text)`` of the non-blank, non-comment lines."""
    return [(n, t) for n, line in enumerate(path.read_text().splitlines(), 1)
            if (t := line.strip()) and not t.startswith("#")]


def read_trial_order(path: Path) -> list[str]:
    """The trial ids of an order file, in order; a repeated id is a :class:`ListError`."""
    seen: dict[str, int] = {}
    out = []
    for n, trial in _lines(path):
        if trial in seen:
            raise ListError(f"{path}: line {n}: trial {trial!r} already listed on line {seen[trial]}")
        seen[trial] = n
        out.append(trial)
    if not out:
        raise ListError(f"{path}: lists no trial")
    return out


def trial_order(value: str, lists: Path = layout.LISTS) -> list[str] | None:
    """``data.trial_order``'s ids in order, or None when it is unset ("")."""
    return read_trial_order(list_path(value, "data.trial_order", lists)) if value else None


def read_frame_list(path: Path) -> list[tuple[str, int]]:
    """The organisers' list: ``(trial, 1-based frame)`` per line ``<trial>/<NNNNN>.jpg[,...]``."""
    out = []
    for n, line in _lines(path):
        loc = line.split(",")[0].strip()
        if loc == FRAME_LIST_HEADER:
            continue
        trial, _, name = loc.rpartition("/")
        try:
            frame = int(Path(name).stem)
        except ValueError:
            frame = 0
        if not trial or frame < 1:
            raise ListError(f"{path}: line {n}: {loc!r} is not <trial>/<NNNNN>.jpg (1-based)")
        out.append((trial, frame))
    return out


def frame_list(value: str, lists: Path = layout.LISTS) -> list[tuple[str, int]] | None:
    """``report.submission_list``'s frames, or None when it is unset ("")."""
    return read_frame_list(list_path(value, "report.submission_list", lists)) if value else None
