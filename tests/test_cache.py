"""Per-video HDF5 caches: round trips, skip-if-current, atomicity and deterministic bytes."""

import dataclasses

import h5py
import numpy as np
import pytest

from pipeline.core.cache import CacheError, CacheKey, is_current, read_arrays, read_attrs, write_cache
from pipeline.core.frames import frame_features

KEY = CacheKey(modality="visual", video_id="v1", fps=30.0, n_frames=5, extractor="pixels",
               settings={"size": 16}, versions={"numpy": np.__version__}, source_hash="abc")


def _write(path, **over):
    emb = np.arange(5 * 3, dtype=np.float32).reshape(5, 3)
    return write_cache(path, {"embedding": emb, "face_present": np.ones(5, bool)},
                       dataclasses.replace(KEY, **over))


def test_round_trip_and_attrs(tmp_path):
    p = _write(tmp_path / "a" / "v1.h5")
    arrays = read_arrays(p)
    assert arrays["embedding"].shape == (5, 3)
    attrs = read_attrs(p)
    assert attrs["video_id"] == "v1" and attrs["settings"] == {"size": 16}
    assert attrs["n_frames"] == 5
    np.testing.assert_array_equal(frame_features(p), arrays["embedding"])


def test_identical_inputs_give_identical_bytes(tmp_path):
    a, b = _write(tmp_path / "a.h5"), _write(tmp_path / "b.h5")
    assert a.read_bytes() == b.read_bytes()


def test_is_current_tracks_settings_and_source(tmp_path):
    p = _write(tmp_path / "v1.h5")
    assert is_current(p, KEY)
    assert read_attrs(p)["cache_key"] == KEY.digest  # the key written is the key checked
    assert not is_current(p, dataclasses.replace(KEY, settings={"size": 32}))
    assert not is_current(p, dataclasses.replace(KEY, source_hash="other"))
    assert not is_current(tmp_path / "missing.h5", KEY)
    (tmp_path / "junk.h5").write_bytes(b"not hdf5")
    assert not is_current(tmp_path / "junk.h5", KEY)


def test_failed_write_leaves_previous_file_intact(tmp_path):
    p = _write(tmp_path / "v1.h5")
    before = p.read_bytes()
    with pytest.raises(TypeError):
        write_cache(p, {"embedding": object()}, KEY)  # not storable
    assert p.read_bytes() == before
    assert [f.name for f in tmp_path.iterdir()] == ["v1.h5"]  # no temp file left behind


def test_text_frames_expand_word_table(tmp_path):
    emb = np.array([[1, 1], [2, 2]], np.float16)
    p = write_cache(tmp_path / "t.h5", {"embedding": emb, "frame_word": np.array([-1, 0, 0, 1], np.int32),
                                        "words": np.array(["hi", "there"], dtype=object)},
                    dataclasses.replace(KEY, modality="text", n_frames=4))
    x = frame_features(p)
    np.testing.assert_array_equal(x, [[0, 0], [1, 1], [1, 1], [2, 2]])
    assert read_arrays(p, ["words"])["words"].tolist() == ["hi", "there"]


def test_unreadable_cache_names_the_file(tmp_path):
    bad = tmp_path / "broken.h5"
    bad.write_bytes(b"garbage")
    with pytest.raises(CacheError, match="broken.h5"):
        frame_features(bad)
    with h5py.File(tmp_path / "short.h5", "w") as f:
        f.attrs["modality"] = "visual"
        f.attrs["n_frames"] = 3
        f["embedding"] = np.zeros((2, 4), np.float32)
    with pytest.raises(CacheError, match="n_frames = 3"):
        frame_features(tmp_path / "short.h5")


def test_atomic_files_get_the_usual_permissions(tmp_path):
    import os

    from pipeline.core.atomic import write_text

    write_text(tmp_path / "x.txt", "hi")
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "x.txt").stat().st_mode & 0o777 == 0o666 & ~mask
