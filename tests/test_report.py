"""The report stage on real training runs of a small synthetic dataset (real caches, real trainer).

Two folds x two targets are trained for one epoch; the report must read exactly the configured runs,
average the folds, draw the plots and write challenge-format test predictions that are the mean of
the folds' models.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from fusion.checkpoint import load_checkpoint
from fusion.data import open_videos
from fusion.evaluate import predict_video
from pipeline.core import layout
from stages import report as report_stage
from stages import train as train_stage
from tests.synthetic import write_dataset

N_FRAMES = [40, 56]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

TINY = {
    "fusion": {"window": 16, "stride": 8, "tcn_channels": {"audio": [8], "visual": [8], "text": [8]},
               "tcn_kernel": 3, "head_hidden": 8},
    "train": {"folds": [0, 1], "epochs": 1, "batch_size": 4, "lr": 1e-3, "warmup_epochs": 0,
              "device": "cpu", "threads": 1},
    "report": {"plot_videos": 1},
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A synthetic dataset with 2 folds, the 4 runs trained on it and their report (+ a stale run
folder); returns (root, params file)."""
    root = tmp_path_factory.mktemp("report")
    data, results = root / "data", root / "results"
    ids = write_dataset(data, {"train": 4, "validation": 2, "test": 2}, N_FRAMES, seed=3)
    labelled = ids["train"] + ids["validation"]
    folds = {"folds": [{"train": ids["train"], "validation": ids["validation"]},
                       {"train": labelled[2:], "validation": labelled[:2]}], "test": ids["test"]}
    (data / "manifest" / "folds.json").write_text(json.dumps(folds))
    params = root / "params.yaml"
    params.write_text(yaml.safe_dump(TINY))
    for fold in (0, 1):
        for target in ("valence", "arousal"):
            rc = train_stage.main(["--params", str(params), "--data", str(data), "--out", str(results),
                                   "--fold", str(fold), "--target", target])
            assert rc == 0
    # a stale result folder of a fold no longer configured must be ignored, not globbed
    stale = layout.train_dir(5, "valence", results)
    stale.mkdir(parents=True)
    (stale / "metrics.json").write_text('{"ccc": {"valence": 1.0}}')
    assert run_report(root, params) == 0
    return root, params


def run_report(root: Path, params: Path) -> int:
    return report_stage.main(["--params", str(params), "--data", str(root / "data"),
                              "--results", str(root / "results")])


def test_report_metrics_are_the_runs_ccc_and_their_mean(trained):
    root, _ = trained
    out = layout.report_dir(root / "results")
    metrics = json.loads((out / "metrics.json").read_text())
    runs = {(f, t): json.loads((layout.train_dir(f, t, root / "results") / "metrics.json").read_text())
            for f in (0, 1) for t in ("valence", "arousal")}
    for t in ("valence", "arousal"):
        per_fold = [runs[f, t]["ccc"][t] for f in (0, 1)]
        assert [metrics["folds"][str(f)][t] for f in (0, 1)] == pytest.approx(per_fold)
        assert metrics["ccc"][t] == pytest.approx(np.mean(per_fold))
        assert metrics["ccc_std"][t] == pytest.approx(np.std(per_fold))
    both = (metrics["ccc"]["valence"] + metrics["ccc"]["arousal"]) / 2
    assert metrics["ccc"]["mean"] == pytest.approx(both)
    assert set(metrics["folds"]) == {"0", "1"}  # not the stale fold 5


def test_report_plots_and_plot_data(trained):
    root, _ = trained
    out = layout.report_dir(root / "results")
    folds = json.loads((root / "data" / "manifest" / "folds.json").read_text())["folds"]
    for f in (0, 1):
        for t in ("valence", "arousal"):
            name = f"{f}-{t}"
            assert (out / "png" / f"curves-{name}.png").read_bytes()[:8] == PNG_MAGIC
            curves = (out / "curves" / f"{name}.csv").read_text().splitlines()
            assert curves[0].startswith("epoch,") and "val_ccc" in curves[0] and len(curves) == 2
            video = sorted(folds[f]["validation"])[0]  # report.plot_videos = 1
            assert (out / "png" / f"trace-{name}-{video}.png").read_bytes()[:8] == PNG_MAGIC
            trace = (out / "traces" / f"{name}-{video}.csv").read_text().splitlines()
            assert trace[0] == "frame,label,predicted"
            entry = next(e for e in json.loads((root / "data" / "manifest" / "videos.json").read_text())
                         if e["id"] == video)
            assert len(trace) == 1 + entry["n_frames"]
            assert len(list((out / "traces").glob(f"{name}-*.csv"))) == 1


def test_test_predictions_are_the_mean_of_the_folds_models(trained):
    root, _ = trained
    out = layout.report_dir(root / "results")
    data = root / "data"
    test_ids = json.loads((data / "manifest" / "folds.json").read_text())["test"]
    assert sorted(p.stem for p in (out / "test").glob("*.txt")) == sorted(test_ids)
    for video in test_ids:
        lines = (out / "test" / f"{video}.txt").read_text().splitlines()
        assert lines[0] == "valence,arousal"
        table = np.array([[float(x) for x in line.split(",")] for line in lines[1:]])
        for j, t in enumerate(("valence", "arousal")):
            preds = []
            for f in (0, 1):
                model, ckpt = load_checkpoint(layout.train_dir(f, t, root / "results") / "checkpoint.pt")
                (v,) = open_videos([video], list(model.modalities), [t], data, require_labels=False)
                preds.append(predict_video(model, v.features, ckpt["window"], ckpt["stride"])[:, 0])
            assert len(table) == len(preds[0])
            np.testing.assert_allclose(table[:, j], np.clip(np.mean(preds, axis=0), -1, 1), atol=2e-6)
            assert not np.allclose(preds[0], preds[1])  # two different models were averaged


def test_a_missing_configured_run_is_a_clear_error(trained, tmp_path, caplog):
    root, _ = trained
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({**TINY, "train": {**TINY["train"], "folds": [0, 2]}}))
    assert run_report(root, params) == 2
    assert "folds.json" in caplog.text and "[0, 2]" in caplog.text
    (tmp_path / "results").mkdir()
    params.write_text(yaml.safe_dump(TINY))
    assert report_stage.main(["--params", str(params), "--data", str(root / "data"),
                              "--results", str(tmp_path / "results")]) == 2
    assert "0-valence" in caplog.text and "missing" in caplog.text and "stages.train" in caplog.text


def test_joint_runs_work_through_the_folds_x_targets_matrix(tmp_path):
    """train.joint with train.targets [both] (what dvc.yaml's matrix runs): one 2-output model per
    fold, reported per target like separate runs."""
    data, results = tmp_path / "data", tmp_path / "results"
    ids = write_dataset(data, {"train": 3, "validation": 2, "test": 1}, N_FRAMES, seed=5)
    params = tmp_path / "params.yaml"
    joint = {**TINY, "train": {**TINY["train"], "folds": [0], "joint": True, "targets": ["both"]}}
    params.write_text(yaml.safe_dump(joint))
    assert train_stage.main(["--params", str(params), "--data", str(data), "--out", str(results),
                             "--fold", "0", "--target", "both"]) == 0
    _, ckpt = load_checkpoint(layout.train_dir(0, "both", results) / "checkpoint.pt")
    assert ckpt["targets"] == ["valence", "arousal"]
    assert run_report(tmp_path, params) == 0
    out = layout.report_dir(results)
    metrics = json.loads((out / "metrics.json").read_text())
    run = json.loads((layout.train_dir(0, "both", results) / "metrics.json").read_text())
    assert metrics["folds"]["0"] == pytest.approx({t: run["ccc"][t] for t in ("valence", "arousal")})
    test_file = out / "test" / f"{ids['test'][0]}.txt"
    assert test_file.read_text().splitlines()[0] == "valence,arousal"


def test_the_abaw_submission_file_lists_every_test_frame(trained):
    from fusion.report import SUBMISSION

    root, _ = trained
    out = layout.report_dir(root / "results")
    data = root / "data"
    test_ids = sorted(json.loads((data / "manifest" / "folds.json").read_text())["test"])
    lines = (out / SUBMISSION).read_text().splitlines()
    assert lines[0] == "image_location,valence,arousal"
    expected, values = [], []
    for video in test_ids:
        rows = (out / "test" / f"{video}.txt").read_text().splitlines()[1:]
        expected += [f"{video}/{i + 1:05d}.jpg" for i in range(len(rows))]
        values += rows
    assert [line.split(",", 1)[0] for line in lines[1:]] == expected
    assert [line.split(",", 1)[1] for line in lines[1:]] == values


def test_the_submission_follows_the_organisers_frame_list(tmp_path):
    from fusion.report import ReportError, submission_csv
    from pipeline.dataset.lists import ListError, read_frame_list

    preds = {"a": {"valence": np.array([0.1, 0.2, 0.3]), "arousal": np.array([-0.1, -0.2, 2.0])},
             "b_left": {"valence": np.array([0.5]), "arousal": np.array([0.6])}}
    listing = tmp_path / "list.txt"
    listing.write_text("image_location,valence,arousal\nb_left/00001.jpg\na/00002.jpg\na/00005.jpg\n")
    rows = submission_csv(preds, read_frame_list(listing)).splitlines()
    assert rows == ["image_location,valence,arousal", "b_left/00001.jpg,0.500000,0.600000",
                    "a/00002.jpg,0.200000,-0.200000", "a/00005.jpg,0.300000,1.000000"]  # padded, clipped
    listing.write_text("c/00001.jpg\n")
    with pytest.raises(ReportError, match="without test predictions"):
        submission_csv(preds, read_frame_list(listing))
    listing.write_text("a/frame.png\n")
    with pytest.raises(ListError, match="line 1"):
        read_frame_list(listing)


def test_the_submission_list_is_a_file_in_conf_lists(tmp_path):
    """report.submission_list names a file in conf/lists (the folder the report stage depends on):
    one elsewhere is an error naming the key, since DVC would not see it change."""
    from pipeline.dataset.lists import ListError, frame_list

    lists = tmp_path / "conf" / "lists"
    lists.mkdir(parents=True)
    (lists / "test_set.txt").write_text("image_location\na/00001.jpg\n# a comment\n\na/00002.jpg\n")
    assert frame_list(str(lists / "test_set.txt"), lists) == [("a", 1), ("a", 2)]
    assert frame_list("", lists) is None  # every test frame
    (tmp_path / "elsewhere.txt").write_text("a/00001.jpg\n")
    with pytest.raises(ListError, match=r"report.submission_list = .*elsewhere.txt: put the file in"):
        frame_list(str(tmp_path / "elsewhere.txt"), lists)
