"""Cross-validation folds: fold 0 official, rotated chunks, _left/_right kept together."""

from __future__ import annotations

import random

import pytest

from pipeline.core.manifest import VideoEntry
from pipeline.dataset.folds import FoldsError, make_folds, read_folds, write_folds


def entry(vid: str, partition: str, source: str | None = None) -> VideoEntry:
    return VideoEntry(id=vid, source=f"videos/{source or vid}.mp4", source_id=source or vid,
                      content_hash="0", fps=30.0, n_frames=10, duration=1 / 3, has_audio=True,
                      partition=partition)


def dataset(n_train: int = 14, n_val: int = 4, n_test: int = 3) -> list[VideoEntry]:
    """Train/validation/test videos; every 4th train video is a two-person video (x_left, x_right)."""
    out = []
    for i in range(n_train):
        if i % 4 == 0:
            out += [entry(f"t{i:02d}_left", "train", f"t{i:02d}"),
                    entry(f"t{i:02d}_right", "train", f"t{i:02d}")]
        else:
            out.append(entry(f"t{i:02d}", "train"))
    out += [entry(f"v{i}", "validation") for i in range(n_val)]
    out += [entry("v9_left", "validation", "v9"), entry("v9_right", "validation", "v9")]
    out += [entry(f"x{i}", "test") for i in range(n_test)]
    return out


def source(vid: str) -> str:
    return vid.rsplit("_", 1)[0] if vid.endswith(("_left", "_right")) else vid


@pytest.mark.parametrize("n", [1, 2, 3, 6])
def test_folds_official_then_rotated_chunks(n):
    entries = dataset()
    labeled = sorted(e.id for e in entries if e.partition != "test")
    out = make_folds(entries, n)
    assert out["test"] == ["x0", "x1", "x2"]
    folds = out["folds"]
    assert len(folds) == n
    assert folds[0]["train"] == sorted(e.id for e in entries if e.partition == "train")
    assert folds[0]["validation"] == sorted(e.id for e in entries if e.partition == "validation")
    val_sets = []
    for f in folds:
        assert f["train"] == sorted(f["train"]) and f["validation"] == sorted(f["validation"])
        assert sorted(f["train"] + f["validation"]) == labeled  # a partition of the labeled videos
        assert f["validation"], "every fold validates on something"
        assert not {source(v) for v in f["train"]} & {source(v) for v in f["validation"]}
        val_sets.append(set(f["validation"]))
    for i in range(1, n):  # rotated chunks are disjoint
        for j in range(i + 1, n):
            assert not val_sets[i] & val_sets[j]
    if n > 1:  # chunks are of near-equal size (in source videos)
        sizes = [len({source(v) for v in f["validation"]}) for f in folds[1:]]
        assert max(sizes) - min(sizes) <= 1


def test_folds_are_deterministic_whatever_the_input_order():
    entries = dataset()
    shuffled = entries[:]
    random.Random(3).shuffle(shuffled)
    assert make_folds(entries, 6) == make_folds(shuffled, 6)


def test_people_of_one_video_never_straddle_even_at_chunk_edges():
    # many two-person videos so that chunk boundaries fall next to them
    entries = [entry(f"s{i:02d}_{side}", "train" if i < 10 else "validation", f"s{i:02d}")
               for i in range(13) for side in ("left", "right")]
    for n in range(2, 8):
        for f in make_folds(entries, n)["folds"][1:]:
            assert not {source(v) for v in f["train"]} & {source(v) for v in f["validation"]}
            assert all(f"{source(v)}_left" in f["validation"] and f"{source(v)}_right" in f["validation"]
                       for v in f["validation"])


def test_demo_sized_dataset_six_folds():
    entries = [entry(f"d{i}", "train") for i in range(8)] + [entry("e0", "validation"),
                                                              entry("e1", "validation")]
    folds = make_folds(entries, 6)["folds"]
    assert len(folds) == 6 and all(f["validation"] and f["train"] for f in folds)


def test_too_few_sources_is_a_clear_error():
    entries = [entry("a", "train"), entry("b", "train"), entry("c", "validation")]
    with pytest.raises(FoldsError, match=r"data.folds = 6 needs at least 6 labeled source videos.*found 3"):
        make_folds(entries, 6)
    assert len(make_folds(entries, 1)["folds"]) == 1
    assert len(make_folds(entries, 3)["folds"]) == 3


def test_without_official_validation_all_folds_rotate():
    entries = [entry(f"a{i}", "train") for i in range(7)] + [entry("z", "test")]
    folds = make_folds(entries, 3)["folds"]
    assert len(folds) == 3
    vals = [set(f["validation"]) for f in folds]
    assert set().union(*vals) == {f"a{i}" for i in range(7)}  # every video validated exactly once
    assert sum(len(v) for v in vals) == 7
    with pytest.raises(FoldsError, match="data.folds = 1 needs an official train and validation"):
        make_folds(entries, 1)


def test_unlabeled_dataset_has_no_folds_only_test():
    out = make_folds([entry("b", "test"), entry("a", "test")], 6)
    assert out == {"folds": [], "test": ["a", "b"]}


def test_folds_json_round_trip(tmp_path):
    out = make_folds(dataset(), 4)
    write_folds(tmp_path / "m" / "folds.json", out)
    assert read_folds(tmp_path / "m" / "folds.json") == out
    first = (tmp_path / "m" / "folds.json").read_bytes()
    write_folds(tmp_path / "m" / "folds.json", make_folds(dataset(), 4))
    assert (tmp_path / "m" / "folds.json").read_bytes() == first
    with pytest.raises(FileNotFoundError, match="stages.manifest"):
        read_folds(tmp_path / "nope.json")


def test_official_scheme_gives_the_authors_chunks_of_432_trials():
    """ABAW6's 356 training + 76 validation trials: chunks [0,71) [71,142) [142,213) [213,284)
    [284,356) + the validation set, rolled by the fold number (fold 0 = the official split)."""
    train = [entry(f"trial{i:03d}", "train") for i in range(356)]
    val = [entry(f"val{i:03d}", "validation") for i in range(76)]
    test = [entry(f"x{i}", "test") for i in range(3)]
    out = make_folds(train + val + test, 6, scheme="official")
    ids = [e.id for e in train]
    chunks = [ids[0:71], ids[71:142], ids[142:213], ids[213:284], ids[284:356], [e.id for e in val]]
    assert out["test"] == ["x0", "x1", "x2"]
    assert len(out["folds"]) == 6
    for k, fold in enumerate(out["folds"]):
        rolled = chunks[-k:] + chunks[:-k] if k else chunks  # np.roll(chunks, k)
        assert fold["validation"] == sorted(rolled[-1])
        assert fold["train"] == sorted(v for c in rolled[:-1] for v in c)
    assert out["folds"][0]["validation"] == sorted(e.id for e in val)  # the official split
    assert out["folds"][1]["validation"] == ids[284:356]
    assert out["folds"][5]["validation"] == ids[0:71]
    with pytest.raises(FoldsError, match="official"):
        make_folds(train + test, 6, scheme="official")


def test_the_authors_trial_order_file_orders_the_official_chunks(tmp_path):
    """data.trial_order (a file in conf/lists, one id per line): the 356 training trials of a
    432-trial list in a shuffled order give the authors' chunks [0,71) ... [284,356) of THAT order."""
    from pipeline.dataset.lists import ListError, trial_order

    train = [entry(f"trial{i:03d}", "train") for i in range(356)]
    val = [entry(f"val{i:03d}", "validation") for i in range(76)]
    test = [entry(f"x{i}", "test") for i in range(3)]
    order = [e.id for e in train + val]
    random.Random(0).shuffle(order)  # the validation ids may be listed too: they are skipped
    lists = tmp_path / "conf" / "lists"
    lists.mkdir(parents=True)
    path = lists / "order.txt"
    path.write_text("# the authors' dataset info order\n" + "\n".join(order) + "\n\n")
    got = trial_order(str(path), lists)
    assert got == order
    out = make_folds(train + val + test, 6, "official", got, str(path))
    ids = [t for t in order if t.startswith("trial")]
    chunks = [ids[0:71], ids[71:142], ids[142:213], ids[213:284], ids[284:356], [e.id for e in val]]
    for k, fold in enumerate(out["folds"]):
        rolled = chunks[-k:] + chunks[:-k] if k else chunks  # np.roll(chunks, k)
        assert fold["validation"] == sorted(rolled[-1])
        assert fold["train"] == sorted(v for c in rolled[:-1] for v in c)
    assert out["folds"][1]["validation"] == sorted(ids[284:356])
    by_id = make_folds(train + val + test, 6, "official")  # data.trial_order '' = sorted by id
    assert out["folds"][1]["validation"] != by_id["folds"][1]["validation"]
    # unknown and missing ids, repeated ids, a file outside conf/lists: errors naming the file
    with pytest.raises(FoldsError, match=r"order\.txt: 1 trial id\(s\) not in the dataset: nobody"):
        make_folds(train + val + test, 6, "official", got + ["nobody"], str(path))
    with pytest.raises(FoldsError, match=r"order\.txt: lacks 1 training trial\(s\): trial007"):
        make_folds(train + val + test, 6, "official", [t for t in got if t != "trial007"], str(path))
    path.write_text("trial001\ntrial002\ntrial001\n")
    with pytest.raises(ListError, match=r"order\.txt: line 3: trial 'trial001' already listed on line 1"):
        trial_order(str(path), lists)
    outside = tmp_path / "order.txt"
    outside.write_text("trial001\n")
    with pytest.raises(ListError, match="data.trial_order = .*order.txt: put the file in"):
        trial_order(str(outside), lists)
    with pytest.raises(ListError, match="missing.txt: data.trial_order file not found"):
        trial_order(str(lists / "missing.txt"), lists)
    assert trial_order("", lists) is None


def test_a_trial_order_needs_the_official_scheme():
    from pipeline.core.params import ParamsError, params_from_dict

    with pytest.raises(ParamsError, match="data.trial_order .* official folds only"):
        params_from_dict({"data": {"trial_order": "conf/lists/order.txt"}})
    assert params_from_dict({"data": {"trial_order": "conf/lists/o.txt", "fold_scheme": "official"}})
