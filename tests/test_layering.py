"""The import rules of the project's layers, checked by walking every module's imports (the walker
is :mod:`stages.deps`; imports inside functions count too):

- ``pipeline.core`` imports nothing of the project but ``pipeline.core``;
- a modality package (``pipeline.dataset``, ``pipeline.audio``, ``pipeline.visual``,
  ``pipeline.text``) imports only itself and ``pipeline.core``, never another modality;
- nothing in ``pipeline/`` or ``fusion/`` imports the application (``rjcma``) or the DVC stages;
  ``stages/`` never imports ``rjcma``;
- no import cycle among the project's modules.

Doctored copies of the project show each rule fails.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from stages.deps import PACKAGES, ROOT, import_graph

CORE = "pipeline.core"
MODALITIES = ("pipeline.dataset", "pipeline.audio", "pipeline.visual", "pipeline.text")
APP = "rjcma"


def room(module: str) -> str:
    """The package a module belongs to: ``pipeline.<room>`` inside pipeline/, else its top level."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "pipeline" and len(parts) > 1 else parts[0]


def allowed(src: str, dst: str) -> bool:
    """Whether module ``src`` may import module ``dst`` (both project modules)."""
    a, b = room(src), room(dst)
    if a == b or b == "pipeline":  # its own room; the empty top-level package
        return True
    if a == CORE:
        return False
    if a in MODALITIES:
        return b == CORE
    if a in ("pipeline", "fusion"):
        return b.startswith("pipeline")
    if a == "stages":
        return b != APP
    return True  # rjcma: the application sits on top of everything


def violations(root: Path) -> list[str]:
    """Every import that breaks a layering rule, as ``src -> dst (rule)`` lines."""
    out = []
    for src, targets in sorted(import_graph(root).items()):
        for dst in sorted(targets):
            if not allowed(src, dst):
                out.append(f"{src} -> {dst} ({room(src)} may not import {room(dst)})")
    return out


def cycles(root: Path) -> list[list[str]]:
    """The import cycles: strongly connected groups of more than one module (or a self-import)."""
    graph = import_graph(root)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's algorithm
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1 or v in graph.get(v, ()):
                found.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_every_import_follows_the_layers():
    assert violations(ROOT) == []


def test_no_import_cycles():
    assert cycles(ROOT) == []


def test_the_walk_sees_every_package_and_the_layers_they_import():
    graph = import_graph(ROOT)
    rooms = {room(m) for m in graph}
    assert set(MODALITIES) | {CORE, "fusion", "stages", APP} <= rooms
    assert "pipeline.core.media" in graph["pipeline.audio.features"]  # top-level import
    assert "pipeline.text.asr" in graph["stages.transcribe"]  # an import inside a function


def _copy(tmp_path: Path) -> Path:
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def _append(path: Path, line: str) -> None:
    path.write_text(path.read_text() + f"\n\n{line}  # noqa: E402\n")


def test_a_modality_importing_another_modality_fails(tmp_path):
    root = _copy(tmp_path)
    assert violations(root) == []
    _append(root / "pipeline" / "visual" / "faces.py", "from pipeline.dataset import scan")
    assert violations(root) == ["pipeline.visual.faces -> pipeline.dataset (pipeline.visual may not "
                                "import pipeline.dataset)",
                                "pipeline.visual.faces -> pipeline.dataset.scan (pipeline.visual may "
                                "not import pipeline.dataset)"]


FORBIDDEN_EDITS = {  # case -> [(file, appended import, the violation it must be reported as)]
    "a modality importing fusion, core importing a modality": [
        ("pipeline/text/bert.py", "import fusion.ccc", "pipeline.text.bert -> fusion.ccc"),
        ("pipeline/core/cache.py", "import pipeline.audio.features",
         "pipeline.core.cache -> pipeline.audio.features"),
    ],
    "the library importing the application": [
        ("fusion/report.py", "from rjcma.predict import Predictor", "fusion.report -> rjcma.predict"),
        ("pipeline/core/stage.py", "import rjcma.cli", "pipeline.core.stage -> rjcma.cli"),
    ],
}


@pytest.mark.parametrize("case", sorted(FORBIDDEN_EDITS))
def test_a_forbidden_import_fails(tmp_path, case):
    root = _copy(tmp_path)
    for file, line, _ in FORBIDDEN_EDITS[case]:
        _append(root / file, line)
    found = violations(root)
    for _, _, expected in FORBIDDEN_EDITS[case]:
        assert any(v.startswith(expected) for v in found), found


def test_an_import_cycle_fails(tmp_path):
    root = _copy(tmp_path)
    assert cycles(root) == []
    _append(root / "pipeline" / "core" / "layout.py", "from pipeline.core import cache")
    _append(root / "pipeline" / "core" / "cache.py", "def _late():\n    from pipeline.core import layout")
    assert violations(root) == []  # inside one room: only the cycle rule catches it
    assert cycles(root) == [["pipeline.core.cache", "pipeline.core.layout"]]
