"""The trainer's streaming reader on real HDF5 caches: features, labels, normalisation, windows,
batches, the fine-tuning input kinds (faces, log-mel patches), workers and file handles."""

import pickle

import h5py
import numpy as np
import pytest
import torch

from fusion import data as fdata
from fusion.data import ArrayVideo, DataError, FileCache, Normalizer, WindowDataset, make_loader, open_videos
from pipeline.audio.patches import SILENCE, patches, read_patches
from pipeline.core import layout
from pipeline.core.cache import CacheKey, write_cache
from pipeline.core.frames import frame_features
from pipeline.core.manifest import read_manifest
from pipeline.dataset.labels import read_labels
from tests.synthetic import FACE_SIZE, write_dataset

RAW = {"audio": "logmel", "visual": "faces", "text": "embedding"}

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
    videos = open_videos(ids["train"], MODS, ("valence", "arousal"), root)
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
        open_videos(ids["test"], MODS, ("valence",), root)
    (video,) = open_videos(ids["test"], MODS, ("valence",), root, require_labels=False)
    assert video.labels.shape == (71, 1) and np.isnan(video.labels).all()


def test_feature_rows_differing_from_labels_name_the_file(dataset, tmp_path):
    root, ids = dataset
    entry = next(e for e in read_manifest(root) if e.id == ids["train"][1])
    path = layout.feature_path("visual", entry.shard, entry.id, root)
    backup = path.read_bytes()
    try:
        write_cache(path, {"embedding": np.zeros((entry.n_frames + 4, 6), np.float32)},
                    CacheKey("visual", entry.id, 30.0, entry.n_frames + 4, "x", {}, {}, "x"))
        with pytest.raises(DataError, match=str(path.name)):
            open_videos([entry.id], ("visual",), ("valence",), root)
        with pytest.raises(DataError, match="disagree"):
            open_videos([entry.id], MODS, ("valence",), root)
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
            open_videos([entry.id], MODS, ("valence",), root)
    finally:
        moved.rename(path)


def test_normalizer_uses_training_statistics_only(dataset):
    root, ids = dataset
    train = open_videos(ids["train"], MODS, ("valence",), root)
    val = open_videos(ids["validation"], MODS, ("valence",), root)
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
    const = []
    for v in train:
        feats = v.features
        feats["audio"][:, 0] = 1.0
        const.append(ArrayVideo.from_frames(feats, v.id))
    fitted = Normalizer.fit(const, MODS)
    assert fitted.std["audio"][0] == 1.0 and fitted.mean["audio"][0] == 1.0


def test_streamed_statistics_equal_the_two_pass_ones(dataset, monkeypatch):
    """One streaming pass in blocks (here of 7 rows, so blocks straddle videos' ends) gives the
    mean and population std of all training frames concatenated."""
    root, ids = dataset
    train = open_videos(ids["train"], MODS, ("valence",), root)
    monkeypatch.setattr(fdata, "STATS_BLOCK_ROWS", 7)
    norm = Normalizer.fit(train, MODS)
    for m in MODS:
        x = np.concatenate([frame_features(v.paths[m]) for v in train]).astype(np.float64)
        np.testing.assert_allclose(norm.mean[m], x.mean(0), rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(norm.std[m], x.std(0), rtol=1e-6)


def test_window_dataset_items(dataset):
    root, ids = dataset
    videos = open_videos(ids["train"], MODS, ("valence", "arousal"), root)
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
    videos = open_videos(ids["train"], MODS, ("valence",), root)
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


def test_windows_read_only_their_rows_and_equal_whole_video_slices(dataset):
    root, ids = dataset
    videos = open_videos(ids["train"], MODS, ("valence", "arousal"), root)
    assert all(not hasattr(v, "arrays") for v in videos) and videos[0].dims == DIMS
    ds = WindowDataset(videos, window=16, stride=8)
    whole = [v.features for v in videos]
    for i in range(len(ds)):
        item = ds[i]
        vi, start = ds.index[i]
        n = int(item["mask"].sum())
        for m in MODS:
            np.testing.assert_array_equal(item["features"][m][:n].numpy(), whole[vi][m][start:start + n])
        np.testing.assert_array_equal(item["target"][:n].numpy(), videos[vi].labels[start:start + n])


@pytest.fixture(scope="module")
def raw_dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("raw")
    ids = write_dataset(root, {"train": 2}, n_frames=[45, 20], dims=DIMS, seed=4, raw=True)
    return root, ids


def test_finetuning_inputs_faces_and_logmel_patches(raw_dataset):
    """Input kinds ``faces`` and ``logmel``: the window's faces and face_present rows, and each
    frame's 0.96 s log-mel patch exactly as extraction cuts it from the whole cached log-mel."""
    root, ids = raw_dataset
    videos = open_videos(ids["train"], MODS, ("valence",), root, inputs=RAW)
    ds = WindowDataset(videos, window=32, stride=16, inputs=RAW)
    assert ds.index == [(0, 0), (0, 13), (1, 0)]
    for i, (vi, start) in enumerate(ds.index):
        item = ds[i]
        video = videos[vi]
        n = int(item["mask"].sum())
        with h5py.File(video.paths["visual"]) as f:
            faces, present = f["faces"][()], f["face_present"][()]
        with h5py.File(video.paths["audio"]) as f:
            logmel, fps, rate = f["logmel"][()], float(f.attrs["fps"]), float(f.attrs["rows_per_second"])
        x, a = item["features"]["visual"], item["features"]["audio"]
        assert x.shape == (32, FACE_SIZE, FACE_SIZE, 3) and x.dtype == torch.uint8
        assert a.shape == (32, 96, 64) and a.dtype == torch.float32
        assert item["features"]["text"].shape == (32, DIMS["text"])
        np.testing.assert_array_equal(x[:n].numpy(), faces[start:start + n])
        present_w = item["face_present"]
        np.testing.assert_array_equal(present_w[:n].numpy(), present[start:start + n])
        np.testing.assert_array_equal(a[:n].numpy(), patches(logmel, np.arange(start, start + n), fps, rate))
        # padding: black faces without a face, the log-mel of silence
        assert not present_w[n:].any() and (x[n:] == 0).all() and (a[n:] == SILENCE).all()
    assert not ds[2]["face_present"].all()  # frames without a face stay flagged
    batch = next(iter(make_loader(ds, batch_size=2, shuffle=False)))
    assert batch["features"]["visual"].shape == (2, 32, FACE_SIZE, FACE_SIZE, 3)
    assert batch["face_present"].shape == (2, 32)


def test_read_patches_reads_a_row_range_equal_to_extraction():
    rng = np.random.default_rng(0)
    logmel = rng.normal(size=(250, 64)).astype(np.float32)
    for frames in (np.arange(0, 10), np.arange(55, 75), np.arange(70, 90), np.arange(200, 230)):
        np.testing.assert_array_equal(read_patches(logmel, frames, 25.0), patches(logmel, frames, 25.0))
    assert (read_patches(logmel[:0], np.arange(3), 25.0) == SILENCE).all()


def test_input_kinds_are_checked(dataset, raw_dataset):
    root, ids = dataset
    with pytest.raises(DataError, match="faces"):  # a cache without the raw inputs
        open_videos(ids["train"], MODS, ("valence",), root, inputs={"visual": "faces"})
    with pytest.raises(DataError, match="unknown input kind"):
        open_videos(ids["train"], MODS, ("valence",), root, inputs={"text": "logmel"})


def test_workers_stream_the_same_batches_in_the_same_order(dataset):
    """Two reader processes (each opening its own files) give the batches of the in-process
    reader, in the seeded order; the dataset pickles without open file handles."""
    root, ids = dataset
    ds = WindowDataset(open_videos(ids["train"], MODS, ("valence",), root), window=8, stride=4)
    ds[0]  # opens files in this process
    assert pickle.loads(pickle.dumps(ds)).files._files == {}

    def epochs(workers):
        loader = make_loader(ds, batch_size=5, shuffle=True, seed=3, num_workers=workers)
        return [[{k: (v if k != "features" else {m: x.clone() for m, x in v.items()})
                  for k, v in b.items()} for b in loader] for _ in range(2)]

    a, b = epochs(0), epochs(2)
    for ea, eb in zip(a, b):
        assert len(ea) == len(eb)
        for x, y in zip(ea, eb):
            assert torch.equal(x["video"], y["video"]) and torch.equal(x["start"], y["start"])
            assert all(torch.equal(x["features"][m], y["features"][m]) for m in MODS)
            assert torch.equal(x["target"].nan_to_num(9), y["target"].nan_to_num(9))


def test_file_cache_bounds_open_files(dataset, monkeypatch):
    root, ids = dataset
    videos = open_videos(ids["train"], MODS, ("valence",), root)
    monkeypatch.setattr(fdata, "MAX_OPEN_FILES", 2)
    with FileCache() as files:
        handles = [files.get(v.paths["audio"]) for v in videos]
        assert len(files._files) == 2 and not handles[0].file.id.valid and handles[2].file.id.valid
        assert files.get(videos[0].paths["audio"]).file.id.valid  # reopened on demand


def test_epoch_orders_are_those_of_the_in_memory_reader(dataset):
    """The shuffled orders equal those of a plain seeded ``DataLoader(shuffle=True)`` (the reader
    before streaming), epoch after epoch: a seeded run sees its windows in the same order."""
    root, ids = dataset
    ds = WindowDataset(open_videos(ids["train"], MODS, ("valence",), root), window=8, stride=4)
    ours = make_loader(ds, batch_size=4, shuffle=True, seed=11)
    plain = torch.utils.data.DataLoader(range(len(ds)), batch_size=4, shuffle=True,
                                        generator=torch.Generator().manual_seed(11))
    for _ in range(3):
        got = [i for b in ours for i in zip(b["video"].tolist(), b["start"].tolist())]
        assert got == [ds.index[i] for b in plain for i in b.tolist()]
