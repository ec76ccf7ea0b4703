"""Scanning dataset roots (Aff-Wild2 layout and plain folders) and the manifest stage, on real media."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from pipeline.core import layout
from pipeline.core.manifest import read_manifest, read_shard, shard_of
from pipeline.core.params import DataParams
from pipeline.dataset import scan as dataset
from pipeline.dataset.labels import read_labels
from pipeline.dataset.scan import Problem, check_crops, plan, scan
from pipeline.visual import faces
from pipeline.visual.faces import _crop_items
from stages import manifest as manifest_stage
from tests.media_fixtures import make_affwild2, make_video, va_track, write_annotation, write_crops

IDS = ["duo_left", "duo_right", "test1", "train1", "train2", "val1"]


@pytest.fixture
def root(affwild2_root, tmp_path) -> Path:
    """A private copy of the shared tiny Aff-Wild2 dataset (tests may damage it)."""
    return Path(shutil.copytree(affwild2_root, tmp_path / "aw"))


def params_file(tmp_path: Path, root: Path, **data) -> Path:
    p = tmp_path / "params.yaml"
    fields = {"root": str(root), "shards": 2, "folds": 3, **data}
    p.write_text("data: {" + ", ".join(f"{k}: {json.dumps(v)}" for k, v in fields.items()) + "}\n")
    return p


def test_affwild2_layout_entries(affwild2_root):
    result = scan(affwild2_root, DataParams(shards=3), progress=False)
    assert result.layout == "affwild2"
    by_id = {e.id: e for e in result.entries}
    assert sorted(by_id) == IDS
    assert [p.line() for p in result.problems] == [
        f"warning: {affwild2_root.as_posix()}/videos/val1.avi: no audio track: audio features "
        "will be silence"]
    # partitions from the annotation folders; no annotation = test
    assert {k: e.partition for k, e in by_id.items()} == {
        "duo_left": "train", "duo_right": "train", "test1": "test", "train1": "train",
        "train2": "train", "val1": "validation"}
    # the two people of duo.mp4 share its source, probe and hash
    left, right = by_id["duo_left"], by_id["duo_right"]
    assert left.source == right.source and left.source.endswith("videos/duo.mp4")
    assert left.source_id == right.source_id == "duo"
    assert left.content_hash == right.content_hash
    assert len({e.content_hash for e in result.entries}) == 5
    for e in result.entries:
        assert (e.fps, e.n_frames, e.duration) == (10.0, 20, 2.0)
        assert e.has_audio is (e.id != "val1")
        assert e.shard == shard_of(e.id, 3)
        assert e.transcript_file == ""
    # crops folders where they exist (missing jpgs inside are the visual stage's "no face")
    assert by_id["train1"].crops_dir.endswith("cropped_aligned/train1")
    assert by_id["duo_right"].crops_dir.endswith("cropped_aligned/duo_right")
    assert by_id["train2"].crops_dir == "" and by_id["test1"].label_file == ""
    assert not (Path(by_id["train1"].crops_dir) / "00004.jpg").exists()


def test_gaps_of_minus_five_stay_nan_at_their_frames(affwild2_root):
    labels = scan(affwild2_root, DataParams(), progress=False).labels
    assert sorted(labels) == ["duo_left", "duo_right", "train1", "train2", "val1"]
    v, a = va_track("train2", 20, gap=(5, 10))
    for target, want in (("valence", v), ("arousal", a)):
        got = labels["train2"][target]
        assert got.shape == (20,) and got.dtype == np.float32
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
        np.testing.assert_allclose(got[~np.isnan(got)], want[~np.isnan(want)], atol=1e-3)
    assert np.isnan(labels["duo_right"]["valence"][:3]).all()
    assert not np.isnan(labels["duo_right"]["valence"][3:]).any()


def test_plain_folder_of_videos(tmp_path):
    make_video(tmp_path / "clips" / "a.mp4", n_frames=12)
    make_video(tmp_path / "clips" / "sub" / "b.avi", n_frames=8, with_audio=False)
    (tmp_path / "clips" / "notes.txt").write_text("not a video")
    result = scan(tmp_path / "clips", DataParams(), progress=False)
    assert result.layout == "folder" and not result.errors
    assert [(e.id, e.partition, e.n_frames, e.label_file, e.crops_dir) for e in result.entries] == [
        ("a", "test", 12, "", ""), ("b", "test", 8, "", "")]
    assert result.labels == {}


def test_transcripts_by_id_or_shared_source(root):
    (root / "transcripts").mkdir()
    (root / "transcripts" / "test1.json").write_text("[]")
    (root / "transcripts" / "duo.csv").write_text("word,start,end\n")
    _, planned, _ = plan(root)
    tr = {p.id: p.transcript_file for p in planned}
    assert tr["test1"].endswith("transcripts/test1.json")
    assert tr["duo_left"].endswith("transcripts/duo.csv") and tr["duo_right"] == tr["duo_left"]
    assert tr["train1"] == ""


def test_unlabeled_two_person_video_gives_two_test_entries(root):
    make_video(root / "videos" / "pair.mp4", n_frames=10)
    for side in ("left", "right"):
        (root / "cropped_aligned" / f"pair_{side}").mkdir()
    _, planned, problems = plan(root)
    pair = [(p.id, p.source_id, p.partition) for p in planned if p.source_id == "pair"]
    assert pair == [("pair_left", "pair", "test"), ("pair_right", "pair", "test")]
    assert not problems
    # one annotated person, the other (crops only) is a test entry of the same source
    make_video(root / "videos" / "half.mp4", n_frames=10)
    (root / "cropped_aligned" / "half_right").mkdir()
    write_annotation(root / "annotations" / "Train_Set" / "half_left.txt", *va_track("h", 10))
    _, planned, _ = plan(root)
    half = [(p.id, p.source_id, p.partition) for p in planned if p.source_id == "half"]
    assert half == [("half_left", "half", "train"), ("half_right", "half", "test")]


def test_other_challenge_annotations_are_ignored_and_folder_layout_forced(root):
    write_annotation(root / "annotations" / "EXPR_Set" / "Train_Set" / "train1.txt", [0.0], [0.0])
    (root / "annotations" / "AU_Set").mkdir()
    (root / "annotations" / "AU_Set" / "train2.txt").write_text("AU1,AU2\n0,1\n")
    result = scan(root, DataParams(), progress=False)
    assert sorted(e.id for e in result.entries) == IDS and not result.errors
    forced = scan(root, DataParams(layout="folder"), progress=False)
    assert sorted(e.id for e in forced.entries) == ["duo", "test1", "train1", "train2", "val1"]
    assert all(e.partition == "test" and not e.label_file for e in forced.entries)


def test_bad_inputs_are_named_and_the_others_go_on(root):
    good = root / "videos" / "train1.mp4"
    (root / "videos" / "train2.mp4").write_bytes(good.read_bytes()[:3000])  # truncated mp4
    write_annotation(root / "annotations" / "Train_Set" / "ghost.txt", [0.1], [0.2])  # no video
    bad_rows = root / "annotations" / "Train_Set" / "duo_left.txt"
    bad_rows.write_text("valence,arousal\n" + "0.1,0.2\n" * 40)  # 40 rows, 20 frames
    text = root / "annotations" / "Validation_Set" / "val1.txt"
    text.write_text(text.read_text().replace("\n", "\n0.1,high\n", 3))
    (root / "extra").mkdir()
    shutil.copy(good, root / "extra" / "test1.avi")  # same id as videos/test1.mp4
    (root / "cropped_aligned" / "orphan").mkdir()
    result = scan(root, DataParams(label_tolerance=2), progress=False)
    assert [e.id for e in result.entries] == ["duo_right", "train1"]
    errors = {Path(p.path).name: p.message for p in result.errors}
    assert "moov atom not found" in errors["train2.mp4"]
    assert errors["ghost.txt"].startswith("labels without a video: no ghost.mp4/.mkv/...")
    assert errors["duo_left.txt"].startswith("40 label rows but the video has 20 frames")
    assert "line 2: not a number: '0.1,high'" in errors["val1.txt"]
    assert "collides with" in errors["test1.mp4"] and "extra/test1.avi" in errors["test1.mp4"]
    assert "videos/test1.mp4" in errors["test1.avi"]
    assert [p.message for p in result.warnings if p.path.endswith("orphan")] == [
        "face crops without a video (ignored)"]
    # every problem names an existing file or folder
    assert all(Path(p.path).exists() for p in result.problems)


def test_label_rows_within_tolerance_are_padded_with_nan(root):
    f = root / "annotations" / "Train_Set" / "train1.txt"
    f.write_text("\n".join(f.read_text().splitlines()[:-3]) + "\n")  # 17 rows for 20 frames
    result = scan(root, DataParams(label_tolerance=3), progress=False)
    lab = result.labels["train1"]["valence"]
    assert lab.shape == (20,) and np.isnan(lab[17:]).all() and not np.isnan(lab[:17]).any()
    assert any(p.path == f.as_posix() and p.level == "warning" and "17 label rows" in p.message
               for p in result.problems)


def test_crops_that_cannot_line_up_are_warned(root):
    for f in (root / "cropped_aligned" / "duo_left").iterdir():
        f.rename(f.with_name(f"face_{f.name}"))  # not 00001.jpg-style names
    write_crops(root / "cropped_aligned" / "duo_right", 40)  # 40 crops for a 20-frame video
    result = scan(root, DataParams(label_tolerance=5), progress=False)
    warn = {Path(p.path).name: p.message for p in result.warnings}
    assert warn["duo_left"].startswith("no face crops named like 00001.jpg")
    assert warn["duo_right"].startswith("crop 00040 is beyond the video's 20 frames")
    assert not result.errors



@pytest.mark.parametrize("rename", ["{n}.jpg", "{n:05d}.png", "{n:06d}.jpg"])
def test_crops_the_visual_stage_cannot_read_are_warned(tmp_path, rename):
    """Numbered images named otherwise than 00001.jpg pass no check silently: the visual stage
    (pipeline.visual.faces) reads only 00001.jpg-style names and would find no face at all."""
    crops = write_crops(tmp_path / "crops", 3)
    for f in sorted(crops.iterdir()):
        f.rename(crops / rename.format(n=int(f.stem)))
    assert [ok for _, ok in _crop_items(crops, 3, 48)] == [False] * 3
    (warning,) = check_crops(str(crops), 3, tolerance=2)
    assert warning.level == "warning" and warning.message.startswith("no face crops named like 00001.jpg")
    assert rename.format(n=1) in warning.message
    assert check_crops(str(write_crops(tmp_path / "good", 3)), 3, tolerance=2) == []
    assert dataset.CROP_NAME is layout.CROP_NAME and faces.crop_path is layout.crop_path  # one naming

def test_empty_root_and_missing_root(tmp_path):
    (tmp_path / "empty").mkdir()
    assert [p.message for p in scan(tmp_path / "empty", DataParams(), progress=False).errors] == [
        "no video files (.mp4/.mkv/.avi/.mov/.webm/... any video container) found"]
    missing = scan(tmp_path / "missing", DataParams(), progress=False)
    assert "not a directory" in missing.errors[0].message


def test_manifest_stage_writes_everything_deterministically(root, tmp_path):
    params = params_file(tmp_path, root)
    assert manifest_stage.main(["--params", str(params), "--data", str(tmp_path / "d1")]) == 0
    assert manifest_stage.main(["--params", str(params), "--data", str(tmp_path / "d2")]) == 0
    m1, m2 = layout.manifest_dir(tmp_path / "d1"), layout.manifest_dir(tmp_path / "d2")
    files = sorted(p.relative_to(m1).as_posix() for p in m1.rglob("*") if p.is_file())
    assert files == ["folds.json", "labels.h5", "problems.json", "shards/0.json", "shards/1.json",
                     "videos.json"]
    for f in files:
        assert (m1 / f).read_bytes() == (m2 / f).read_bytes(), f
    entries = read_manifest(tmp_path / "d1")
    assert [e.id for e in entries] == IDS
    assert sorted(e.id for k in (0, 1) for e in read_shard(k, tmp_path / "d1")) == IDS
    labels = read_labels(layout.labels_file(tmp_path / "d1"))
    assert sorted(labels) == ["duo_left", "duo_right", "train1", "train2", "val1"]
    assert all(labels[v]["valence"].shape == (20,) for v in labels)
    folds = json.loads(layout.folds_file(tmp_path / "d1").read_text())
    assert folds["test"] == ["test1"] and len(folds["folds"]) == 3
    assert folds["folds"][0] == {"train": ["duo_left", "duo_right", "train1", "train2"],
                                 "validation": ["val1"]}


def test_manifest_stage_leaves_out_a_corrupt_video(root, tmp_path, caplog):
    (root / "videos" / "test1.mp4").write_bytes(b"\x00" * 1000)
    params = params_file(tmp_path, root)
    data = tmp_path / "d"
    assert manifest_stage.main(["--params", str(params), "--data", str(data)]) == 1
    assert "test1.mp4" in caplog.text
    assert [e.id for e in read_manifest(data)] == [i for i in IDS if i != "test1"]
    problems = json.loads((layout.manifest_dir(data) / "problems.json").read_text())
    assert [p["path"].rsplit("/", 1)[-1] for p in problems if p["level"] == "error"] == ["test1.mp4"]
    allow = params_file(tmp_path, root, allow_failures=True)
    assert manifest_stage.main(["--params", str(allow), "--data", str(data)]) == 0


def test_manifest_stage_too_many_folds_fails_clearly(root, tmp_path, caplog):
    params = params_file(tmp_path, root, folds=6)
    data = tmp_path / "d"
    assert manifest_stage.main(["--params", str(params), "--data", str(data)]) == 1
    assert "data.folds = 6 needs at least 6 labeled source videos" in caplog.text
    assert not layout.folds_file(data).exists() and read_manifest(data)
    allow = params_file(tmp_path, root, folds=6, allow_failures=True)
    assert manifest_stage.main(["--params", str(allow), "--data", str(data)]) == 1


def test_symlinked_video_folder_is_followed(tmp_path):
    make_video(tmp_path / "elsewhere" / "deep" / "clip.mp4", n_frames=6)
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "videos").symlink_to(tmp_path / "elsewhere")
    result = scan(tmp_path / "root", DataParams(), progress=False)
    assert [(e.id, e.source) for e in result.entries] == [
        ("clip", (tmp_path / "root" / "videos" / "deep" / "clip.mp4").as_posix())]


def test_edited_crops_and_transcripts_change_the_entry(tmp_path):
    """The shard lists carry crops and transcript fingerprints, so DVC re-runs a shard on edits."""
    root = make_affwild2(tmp_path / "ds")
    (root / "transcripts").mkdir()
    t = root / "transcripts" / "train1.json"
    t.write_text(json.dumps([{"word": "hello", "start": 0.1, "end": 0.5}]))
    before = {e.id: e for e in scan(root, DataParams(), progress=False).entries}
    assert before["train1"].transcript_hash and before["train1"].crops_hash
    assert before["train2"].crops_hash == "" and before["train2"].transcript_hash == ""
    t.write_text(json.dumps([{"word": "goodbye", "start": 0.1, "end": 0.5}]))
    crop = root / "cropped_aligned" / "duo_left" / "00002.jpg"
    crop.write_bytes(crop.read_bytes() + b"\0")  # an edited crop (its size changes)
    after = {e.id: e for e in scan(root, DataParams(), progress=False).entries}
    assert after["train1"].transcript_hash != before["train1"].transcript_hash
    assert after["duo_left"].crops_hash != before["duo_left"].crops_hash
    assert after["duo_right"] == before["duo_right"] and after["val1"] == before["val1"]


def test_manifest_logs_a_warning_shared_by_many_files_once(caplog, tmp_path):
    problems = [Problem(f"v{i}.mp4", "no audio track: audio features will be silence", "warning")
                for i in range(3)]
    problems += [Problem("a.txt", "5 label rows for 4 video frames", "warning"),
                 Problem("b.mp4", "not a readable video"), Problem("c.mp4", "not a readable video")]
    listed = tmp_path / "problems.json"
    with caplog.at_level(logging.INFO, logger="rjcma"):
        manifest_stage.log_problems(problems, listed)
    assert [r.getMessage() for r in caplog.records] == [
        "a.txt: 5 label rows for 4 video frames", "b.mp4: not a readable video",
        "c.mp4: not a readable video",  # errors: always one line each
        f"3 files: no audio track: audio features will be silence (listed in {listed})"]
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="rjcma"):
        manifest_stage.log_problems(problems, listed, verbose=True)
    assert len(caplog.records) == 6
