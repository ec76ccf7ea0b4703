"""The trainer's reader on real HDF5 caches: features, labels, normalisation, windows, batches."""

import numpy as np
import pytest
import torch

from fusion.data import DataError, Normalizer, WindowDataset, load_videos, make_loader
from pipeline.core import layout
from pipeline.core.cache import write_cache
from pipeline.core.manifest import read_manifest
from pipeline.dataset.labels import read_labels
from tests.synthetic import write_dataset

MODS = ("audio", "visual", "text")
DIMS = {"audio": 4, "visual": 6, "text": 5}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    ids = write_dataset(root, {"train": 3, "validation": 2, "test": 1}, n_frames=[50, 23, 71],
                        dims=DIMS, seed=3, unlabeled_fraction=0.2)
    return root, ids


def test_load_videos_reads_every_modality_and_labels(dataset):
    root, ids = dataset
    videos = load_videos(ids["train"], MODS, ("valence", "arousal"), root)
    assert [v.id for v in videos] == ids["train"]
    assert [v.n_frames for v in videos] == [50, 23, 71]
    labels = read_labels(layout.labels_file(root), ids["train"])
    for v in videos:
        for m in MODS:
            assert v.features[m].shape == (v.n_frames, DIMS[m]) and v.features[m].dtype == np.float32
        np.testing.assert_array_equal(v.labels[:, 0], labels[v.id]["valence"])
        np.testing.assert_array_equal(v.labels[:, 1], labels[v.id]["arousal"])
        assert np.isnan(v.labels).any()  # unlabeled frames stay in place as NaN
    # text features are expanded from the word table: zero rows where no word covers the frame
    assert (np.abs(videos[0].features["text"]).sum(1) == 0).any()


def test_unlabeled_videos_only_when_allowed(dataset):
    root, ids = dataset
    with pytest.raises(ValueError, match="labels.h5"):
        load_videos(ids["test"], MODS, ("valence",), root)
    (video,) = load_videos(ids["test"], MODS, ("valence",), root, require_labels=False)
    assert video.labels.shape == (71, 1) and np.isnan(video.labels).all()


def test_feature_rows_differing_from_labels_name_the_file(dataset, tmp_path):
    root, ids = dataset
    entry = next(e for e in read_manifest(root) if e.id == ids["train"][1])
    path = layout.feature_path("visual", entry.shard, entry.id, root)
    backup = path.read_bytes()
    try:
        write_cache(path, {"embedding": np.zeros((entry.n_frames + 4, 6), np.float32)},
                    modality="visual", video_id=entry.id, fps=30.0, n_frames=entry.n_frames + 4,
                    extractor="x", settings={}, versions={}, source_hash="x")
        with pytest.raises(DataError, match=str(path.name)):
            load_videos([entry.id], ("visual",), ("valence",), root)
        with pytest.raises(DataError, match="disagree"):
            load_videos([entry.id], MODS, ("valence",), root)
    finally:
        path.write_bytes(backup)


def test_missing_cache_names_the_file_and_stage(dataset):
    root, ids = dataset
    entry = next(e for e in read_manifest(root) if e.id == ids["validation"][0])
    path = layout.feature_path("text", entry.shard, entry.id, root)
    moved = path.with_suffix(".bak")
    path.rename(moved)
    try:
        with pytest.raises(DataError, match="text_features"):
            load_videos([entry.id], MODS, ("valence",), root)
    finally:
        moved.rename(path)


def test_normalizer_uses_training_statistics_only(dataset):
    root, ids = dataset
    train = load_videos(ids["train"], MODS, ("valence",), root)
    val = load_videos(ids["validation"], MODS, ("valence",), root)
    norm = Normalizer.fit(train, MODS)
    for m in MODS:
        x = np.concatenate([norm.apply(m, v.features[m]) for v in train])
        np.testing.assert_allclose(x.mean(0), 0, atol=1e-5)
        np.testing.assert_allclose(x.std(0), 1, atol=1e-4)
    # validation is transformed with the training statistics, not its own
    xv = np.concatenate([v.features["audio"] for v in val])
    np.testing.assert_allclose(norm.apply("audio", xv), (xv - norm.mean["audio"]) / norm.std["audio"],
                               rtol=1e-6)
    assert not np.allclose(norm.apply("audio", xv).mean(0), 0, atol=1e-3)
    # a constant feature dimension is centred, never divided by zero
    train[0].features["audio"][:, 0] = 1.0
    for v in train[1:]:
        v.features["audio"][:, 0] = 1.0
    assert Normalizer.fit(train, MODS).std["audio"][0] == 1.0


def test_window_dataset_items(dataset):
    root, ids = dataset
    videos = load_videos(ids["train"], MODS, ("valence", "arousal"), root)
    pad = {m: np.full(DIMS[m], 0.5, np.float32) for m in MODS}
    ds = WindowDataset(videos, window=32, stride=16, pad=pad)
    # 50 frames: 0, 16, 18; 23 frames: one padded window; 71 frames: 0, 16, 32, 39
    assert [(v, s) for v, s in ds.index] == [(0, 0), (0, 16), (0, 18), (1, 0),
                                             (2, 0), (2, 16), (2, 32), (2, 39)]
    item = ds[3]
    assert item["features"]["visual"].shape == (32, 6) and item["target"].shape == (32, 2)
    assert item["mask"].tolist() == [True] * 23 + [False] * 9
    assert torch.isnan(item["target"][23:]).all() and (item["features"]["audio"][23:] == 0.5).all()
    np.testing.assert_array_equal(item["features"]["text"][:23].numpy(), videos[1].features["text"])
    item = ds[6]
    np.testing.assert_array_equal(item["target"].numpy(), videos[2].labels[32:64])


def test_loader_reshuffles_each_epoch_and_repeats_with_seed(dataset):
    root, ids = dataset
    videos = load_videos(ids["train"], MODS, ("valence",), root)
    ds = WindowDataset(videos, window=8, stride=4)

    def epochs(seed):
        loader = make_loader(ds, batch_size=5, shuffle=True, seed=seed)
        return [[(int(v), int(s)) for b in loader for v, s in zip(b["video"], b["start"])]
                for _ in range(3)]

    a, b = epochs(7), epochs(7)
    assert a == b
    assert a[0] != a[1] and a[1] != a[2]
    assert sorted(a[0]) == sorted(a[1]) == sorted((v, s) for v, s in ds.index)
    assert epochs(8) != a
    batch = next(iter(make_loader(ds, batch_size=5, shuffle=False)))
    assert batch["features"]["audio"].shape == (5, 8, 4) and batch["target"].shape == (5, 8, 1)
