"""Shared pytest fixtures: real media and a tiny Aff-Wild2-style dataset (see tests/media_fixtures.py).

Tests may also import the plain functions: ``from tests.media_fixtures import make_video``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `pytest` (not `python -m pytest`) without an installed package
    sys.path.insert(0, str(ROOT))

from tests import media_fixtures  # noqa: E402


@pytest.fixture
def make_video():
    """Factory: ``make_video(path, n_frames=20, fps=10.0, size=(96, 72), with_audio=True, face=None)``."""
    return media_fixtures.make_video


@pytest.fixture
def make_affwild2():
    """Factory: ``make_affwild2(root, n_frames=20, fps=10.0)`` → a tiny Aff-Wild2-layout dataset root."""
    return media_fixtures.make_affwild2


@pytest.fixture(scope="session")
def affwild2_root(tmp_path_factory) -> Path:
    """One shared tiny Aff-Wild2-layout dataset (read-only: copy it before changing anything)."""
    return media_fixtures.make_affwild2(tmp_path_factory.mktemp("affwild2"))
