"""Aff-Wild2 annotation parsing, length fitting and the labels.h5 round trip."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from pipeline.dataset.labels import LabelError, fit_length, parse_annotation, read_labels, write_labels


def write(path, text):
    path.write_text(text)
    return path


def test_unlabeled_frames_stay_in_place_as_nan(tmp_path):
    f = write(tmp_path / "a.txt", "valence,arousal\n0.5,0.1\n-5,-5\n-5,-5\n-0.25,0.75\n1,-1\n")
    lab = parse_annotation(f)
    assert set(lab) == {"valence", "arousal"}
    assert lab["valence"].dtype == np.float32 and lab["valence"].shape == (5,)
    np.testing.assert_array_equal(np.isnan(lab["valence"]), [False, True, True, False, False])
    np.testing.assert_allclose(lab["valence"][[0, 3, 4]], [0.5, -0.25, 1.0])
    np.testing.assert_allclose(lab["arousal"][[0, 3, 4]], [0.1, 0.75, -1.0])


def test_header_order_and_missing_header(tmp_path):
    swapped = parse_annotation(write(tmp_path / "s.txt", "arousal,valence\n0.2,0.9\n"))
    assert swapped["valence"][0] == pytest.approx(0.9) and swapped["arousal"][0] == pytest.approx(0.2)
    bare = parse_annotation(write(tmp_path / "b.txt", "0.3,0.4\n0.1,-5\n\n"))
    assert bare["valence"][0] == pytest.approx(0.3) and np.isnan(bare["arousal"][1])


@pytest.mark.parametrize("text, words", [
    ("valence,arousal\n0.1,0.2\n0.1,abc\n", ["line 3", "not a number"]),
    ("valence,arousal\n0.1\n", ["line 2", "1 values"]),
    ("valence,arousal\n0.1,3.0\n", ["line 2", "arousal 3 outside"]),
    ("valence,arousal\nnan,0.1\n", ["line 2", "NaN"]),
    ("happy,sad\n0.1,0.1\n", ["line 1", "header"]),
    ("valence,arousal\n", ["no label rows"]),
])
def test_bad_annotation_names_file_and_line(tmp_path, text, words):
    f = write(tmp_path / "bad.txt", text)
    with pytest.raises(LabelError) as e:
        parse_annotation(f)
    msg = str(e.value)
    assert str(f) in msg
    for w in words:
        assert w in msg


def test_fit_length_pads_trims_and_rejects(caplog):
    lab = {"valence": np.arange(10, dtype=np.float32), "arousal": np.zeros(10, np.float32)}
    with caplog.at_level(logging.WARNING):
        padded = fit_length(lab, 12, tolerance=3, source="x.txt")
    assert "x.txt" in caplog.text
    assert padded["valence"].shape == (12,) and np.isnan(padded["valence"][10:]).all()
    np.testing.assert_array_equal(padded["valence"][:10], lab["valence"])
    trimmed = fit_length(lab, 8, tolerance=3, source="x.txt")
    np.testing.assert_array_equal(trimmed["valence"], lab["valence"][:8])
    assert fit_length(lab, 10, tolerance=0) is lab
    with pytest.raises(LabelError, match=r"x.txt: 10 label rows but the video has 20 frames"):
        fit_length(lab, 20, tolerance=3, source="x.txt")


def test_labels_h5_round_trip_is_deterministic(tmp_path):
    labels = {
        "vid_right": {"valence": np.array([0.1, np.nan, 0.3], np.float32),
                      "arousal": np.array([np.nan, 0.2, 0.3], np.float32)},
        "vid_left": {"valence": np.zeros(4, np.float32), "arousal": np.ones(4, np.float32)},
    }
    a = write_labels(tmp_path / "a" / "labels.h5", labels)
    b = write_labels(tmp_path / "b.h5", dict(reversed(list(labels.items()))))
    assert a.read_bytes() == b.read_bytes()
    back = read_labels(a)
    assert sorted(back) == ["vid_left", "vid_right"]
    for vid in labels:
        for t in ("valence", "arousal"):
            assert back[vid][t].dtype == np.float32
            np.testing.assert_array_equal(back[vid][t], labels[vid][t])  # NaN positions equal too
    assert list(read_labels(a, ["vid_right"])) == ["vid_right"]
    with pytest.raises(LabelError, match="no labels for video"):
        read_labels(a, ["nope"])
    with pytest.raises(LabelError, match="labels file missing"):
        read_labels(tmp_path / "missing.h5")
    assert not list(tmp_path.glob("**/*.tmp"))
