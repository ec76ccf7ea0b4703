"""Atomic writes of files and directories: build beside the target under a temporary name, then rename.

An interrupted stage therefore never leaves a half-written file or run folder that a rerun would
trust. Temporary names are ``.tmp-<8 hex>-<target name>`` in the target's own folder (same file
system, so the rename is atomic; the target's extension is kept, which ffmpeg and matplotlib read
the format from). A crash (kill -9, power loss) can leave one behind, so every write first removes
the stale temporaries *of its own target* (:func:`clean_stale`; one writer per target is the rule
of every stage), and a stage may clear a whole output folder of them at start. ``.dvcignore``
lists the pattern, so a leftover never changes a DVC hash in the meantime.

Files and directories get the usual mode (``0666`` / ``0777`` less the umask), as if created with
``open`` / ``mkdir``, never the private ``0600`` / ``0700`` of :mod:`tempfile`.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

TMP_PREFIX = ".tmp-"  # every temporary name starts with it (.dvcignore: .tmp-*)
_TMP_RE = re.compile(r"\.tmp-[0-9a-f]{8}-(?P<name>.+)")


def temp_name(target: Path) -> Path:
    """A fresh temporary path beside ``target``: ``<folder>/.tmp-<8 hex>-<name>``."""
    return target.with_name(f"{TMP_PREFIX}{secrets.token_hex(4)}-{target.name}")


def is_temp(path: str | Path, name: str | None = None) -> bool:
    """True when ``path``'s name is a temporary of this module (of target ``name`` when given)."""
    m = _TMP_RE.fullmatch(Path(path).name)
    return m is not None and (name is None or m["name"] == name)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def clean_stale(folder: str | Path, name: str | None = None) -> list[Path]:
    """Remove the temporaries left in ``folder`` by a crash (only target ``name``'s when given).

    Returns what was removed. Call it only where no other process writes the same target(s).
    """
    folder = Path(folder)
    try:
        entries = list(folder.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return []
    stale = sorted(p for p in entries if is_temp(p, name))
    for p in stale:
        _remove(p)
    return stale


def _new_file(target: Path) -> Path:
    while True:
        tmp = temp_name(target)
        try:
            os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))  # umask applies
            return tmp
        except FileExistsError:
            continue


def _new_dir(target: Path) -> Path:
    while True:
        tmp = temp_name(target)
        try:
            tmp.mkdir(0o777)  # umask applies (mkdtemp would give 0700)
            return tmp
        except FileExistsError:
            continue


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary file path beside ``target``; on success rename it to ``target``.

    The parent folder is created if needed and ``target``'s stale temporaries are removed first.
    On an exception the temporary file is removed and ``target`` is left as it was.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(target.parent, target.name)
    tmp = _new_file(target)
    try:
        yield tmp
        os.replace(tmp, target)
    except BaseException:
        _remove(tmp)
        raise


def json_safe(obj: Any) -> Any:
    """``obj`` for strict JSON: NaN floats (an undefined CCC) become None (null), numpy scalars
    Python numbers; dicts, lists and tuples converted item by item."""
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and math.isnan(obj):
        return None
    return obj


@contextlib.contextmanager
def atomic_dir(target: str | Path) -> Iterator[Path]:
    """Yield an empty temporary directory beside ``target``; on success swap it in as ``target``.

    An existing ``target`` is replaced only once the new one is complete (it is renamed aside,
    the new one renamed in, then the old one removed). On an exception the temporary directory is
    removed and ``target`` is left as it was. Stale temporaries of ``target`` are removed first.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(target.parent, target.name)
    tmp = _new_dir(target)
    try:
        yield tmp
        old = None
        if target.exists():
            old = temp_name(target)
            target.rename(old)
        tmp.rename(target)
    except BaseException:
        _remove(tmp)
        raise
    if old is not None:
        _remove(old)


def write_text(target: str | Path, text: str) -> None:
    """Atomically write ``text`` to ``target``."""
    with atomic_path(target) as tmp:
        tmp.write_text(text)


def write_json(target: str | Path, obj: Any) -> None:
    """Atomically write ``obj`` as indented, key-sorted JSON (deterministic bytes)."""
    write_text(target, json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
