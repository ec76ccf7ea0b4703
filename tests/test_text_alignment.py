"""Frame → word alignment on hand-made transcripts with known frames."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.text.features import frame_word_index

# fps 10: frame i at i/10 s. Words (time order): A [0, .25) B [.25, .5) C [1.0, 1.05)
# D [1.2, 1.2) (zero length) E [1.5, 3.0) (runs past the video's 2 s)
START = [0.0, 0.25, 1.0, 1.2, 1.5]
END = [0.25, 0.5, 1.05, 1.2, 3.0]
ZEROS = [0, 0, 0, 1, 1, -1, -1, -1, -1, -1, 2, -1, -1, -1, -1, 4, 4, 4, 4, 4]
HOLD = [0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 3, 3, 4, 4, 4, 4, 4]


def test_known_frames_zeros():
    idx = frame_word_index(START, END, fps=10.0, n_frames=20, gap="zeros")
    assert idx.dtype == np.int32 and idx.tolist() == ZEROS


def test_known_frames_hold():
    assert frame_word_index(START, END, 10.0, 20, gap="hold").tolist() == HOLD


def test_boundaries_start_inclusive_end_exclusive_at_30fps():
    # frame 30 is at exactly 1.0 s, frame 45 at exactly 1.5 s
    idx = frame_word_index([1.0], [1.5], fps=30.0, n_frames=60)
    assert np.flatnonzero(idx >= 0).tolist() == list(range(30, 45))


def test_overlapping_words_first_wins_and_frames_before_first_word():
    idx = frame_word_index([0.2, 0.5], [1.0, 0.8], fps=10.0, n_frames=12)
    assert idx.tolist() == [-1, -1, 0, 0, 0, 0, 0, 0, 0, 0, -1, -1]
    held = frame_word_index([0.2, 0.5], [1.0, 0.8], fps=10.0, n_frames=12, gap="hold")
    assert held.tolist() == [-1, -1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1]  # frames before any word: none


def test_no_words_and_no_frames():
    assert frame_word_index([], [], 25.0, 7).tolist() == [-1] * 7
    assert frame_word_index([], [], 25.0, 7, gap="hold").tolist() == [-1] * 7
    assert frame_word_index(START, END, 10.0, 0).shape == (0,)


def test_speech_rate_coverage():
    """2.5 words/s of 0.3 s words at 30 fps: 75% of frames are covered by words."""
    start = np.arange(0, 60, 0.4)
    idx = frame_word_index(start, start + 0.3, 30.0, 1800)
    assert np.mean(idx >= 0) == pytest.approx(0.75, abs=0.01)
    assert set(np.unique(idx[idx >= 0])) == set(range(len(start)))


def test_bad_settings():
    with pytest.raises(ValueError, match="text.gap"):
        frame_word_index(START, END, 10.0, 20, gap="nearest")
    with pytest.raises(ValueError, match="fps"):
        frame_word_index(START, END, 0.0, 20)
