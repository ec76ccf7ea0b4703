"""Windows over videos and stitching of overlapping window predictions."""

import numpy as np
import pytest

from fusion.windows import cut_windows, stitch, window_starts


def test_paper_windows_last_one_right_aligned():
    assert window_starts(1000, 300, 200).tolist() == [0, 200, 400, 600, 700]
    assert window_starts(301, 300, 200).tolist() == [0, 1]


def test_exact_multiples_add_no_extra_window():
    assert window_starts(500, 300, 200).tolist() == [0, 200]
    assert window_starts(300, 300, 200).tolist() == [0]
    assert window_starts(12, 4, 4).tolist() == [0, 4, 8]


@pytest.mark.parametrize("n", [1, 7, 31, 32, 33, 64, 100, 257, 1000])
@pytest.mark.parametrize("window,stride", [(32, 16), (32, 32), (32, 7), (300, 200)])
def test_every_frame_covered_and_windows_in_range(n, window, stride):
    starts = window_starts(n, window, stride)
    covered = np.zeros(n, bool)
    for s in starts:
        covered[s:s + window] = True
        assert s >= 0 and (s + window <= n or n < window)
    assert covered.all()
    assert (np.diff(starts) > 0).all() and (np.diff(starts) <= stride).all()


def test_cut_windows_content_and_mask():
    x = np.arange(10 * 2, dtype=np.float32).reshape(10, 2)
    w, mask, starts = cut_windows(x, 4, 3)
    assert starts.tolist() == [0, 3, 6]
    assert w.shape == (3, 4, 2) and mask.shape == (3, 4) and mask.all()
    np.testing.assert_array_equal(w[2], x[6:10])


def test_short_video_padded_and_masked():
    x = np.ones((5, 3), np.float32)
    w, mask, starts = cut_windows(x, 8, 4)
    assert w.shape == (1, 8, 3) and starts.tolist() == [0]
    assert mask[0].tolist() == [True] * 5 + [False] * 3
    assert (w[0, 5:] == 0).all() and (w[0, :5] == 1).all()


def test_stitch_roundtrip_identity():
    rng = np.random.default_rng(0)
    for n in (3, 50, 64, 65, 333):
        y = rng.normal(size=(n, 2)).astype(np.float32)
        w, _, starts = cut_windows(y, 32, 12)
        np.testing.assert_allclose(stitch(w, starts, n), y, rtol=0, atol=1e-6)


def test_stitch_averages_overlaps():
    # windows of 4, stride 2 over 6 frames: starts 0, 2; frames 2, 3 are covered twice
    starts = window_starts(6, 4, 2)
    assert starts.tolist() == [0, 2]
    preds = np.array([[1.0, 1, 1, 1], [3.0, 3, 3, 3]])[..., None]
    out = stitch(preds, starts, 6)
    assert out.shape == (6, 1)
    np.testing.assert_allclose(out[:, 0], [1, 1, 2, 2, 3, 3])


def test_stitch_ignores_padding_and_rejects_gaps():
    preds = np.full((1, 8), 5.0)
    np.testing.assert_allclose(stitch(preds, np.array([0]), 3), [5, 5, 5])
    with pytest.raises(ValueError, match="not covered"):
        stitch(np.zeros((1, 4)), np.array([0]), 6)


def test_invalid_arguments():
    with pytest.raises(ValueError):
        window_starts(10, 4, 5)
    with pytest.raises(ValueError):
        window_starts(0, 4, 2)
