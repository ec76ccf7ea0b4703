"""`python -m stages.validate`: layout problems reported before any expensive stage, naming files."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from stages import validate as validate_stage
from tests.media_fixtures import make_video, write_annotation

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def root(affwild2_root, tmp_path) -> Path:
    return Path(shutil.copytree(affwild2_root, tmp_path / "aw"))


def params_file(tmp_path: Path, root: Path, **data) -> Path:
    p = tmp_path / "params.yaml"
    fields = {"root": str(root), "folds": 3, **data}
    p.write_text("data: {" + ", ".join(f"{k}: {json.dumps(v)}" for k, v in fields.items()) + "}\n")
    return p


def test_clean_dataset_passes_with_warnings_only(root, tmp_path, capsys):
    assert validate_stage.main(["--params", str(params_file(tmp_path, root))]) == 0
    out = capsys.readouterr().out
    assert "warning:" in out and "val1.avi: no audio track" in out
    assert "error:" not in out
    assert out.strip().endswith("6 usable videos (4 train, 1 validation, 1 test), 0 error(s), 1 warning(s)")


def test_every_layout_problem_is_named(root, tmp_path, capsys):
    (root / "videos" / "train2.mp4").write_bytes(b"\x00\x01" * 500)  # corrupt video
    write_annotation(root / "annotations" / "Train_Set" / "ghost.txt", [0.1], [0.2])
    (root / "annotations" / "Train_Set" / "train1.txt").write_text("valence,arousal\n0.1,0.1\n")
    make_video(root / "more" / "duo.avi", n_frames=5)  # id collision with videos/duo.mp4
    (root / "cropped_aligned" / "nobody").mkdir()
    code = validate_stage.main(["--params", str(params_file(tmp_path, root))])
    out = capsys.readouterr().out
    assert code == 1
    lines = out.splitlines()
    def line_for(name):
        hits = [ln for ln in lines if name in ln.split(": ")[1]]
        assert hits, f"no line names {name}:\n{out}"
        return hits[0]
    assert line_for("train2.mp4").startswith("error:") and "not a readable video" in line_for("train2.mp4")
    assert "labels without a video" in line_for("ghost.txt")
    assert "1 label rows but the video has 20 frames" in line_for("train1.txt")
    assert "collides with" in line_for("videos/duo.mp4") and "more/duo.avi" in line_for("videos/duo.mp4")
    assert line_for("cropped_aligned/nobody").startswith("warning: ")
    # what is left: test1 and val1; 2 labeled sources < 3 folds
    assert "data.folds = 3 needs at least 3 labeled source videos to rotate, found 1" in out


def test_empty_dataset_is_an_error(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert validate_stage.main(["--params", str(params_file(tmp_path, tmp_path / "empty"))]) == 1
    assert "no video files (.mp4/.mkv/.avi/.mov/.webm/... any video container) found" in \
        capsys.readouterr().out


def test_root_override_and_bad_params(root, tmp_path, capsys):
    make_video(tmp_path / "plain" / "a.mp4", n_frames=6)
    params = params_file(tmp_path, root)
    assert validate_stage.main(["--params", str(params), "--root", str(tmp_path / "plain")]) == 0
    assert "folder layout): 1 usable videos (0 train, 0 validation, 1 test)" in capsys.readouterr().out
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: {layout: weird}\n")
    assert validate_stage.main(["--params", str(bad)]) == 2


def test_command_line_help():
    r = subprocess.run([sys.executable, "-m", "stages.validate", "--help"], cwd=ROOT,
                       capture_output=True, text=True, check=True)
    assert "--root" in r.stdout and "Exit status" in r.stdout


def test_runs_outside_a_project_with_the_defaults(root, tmp_path, monkeypatch, capsys):
    from rjcma import cli

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # no params.yaml here
    code = cli.main(["validate", "--root", str(root)])
    out = capsys.readouterr().out
    assert out.splitlines()[0] == f"params: built-in defaults (no params.yaml in {elsewhere})"
    assert "6 usable videos (4 train, 1 validation, 1 test)" in out
    # the defaults' data.folds (6) cannot be made from 3 labeled sources: an error, not a crash
    assert code == 1 and "data.folds = 6" in out
    # a params.yaml in the working directory is used and named
    params_file(elsewhere, root)
    assert cli.main(["validate"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "params: params.yaml"
    # an explicit --params that does not exist stays an error
    assert cli.main(["validate", "--params", "nope.yaml", "--root", str(root)]) == 2


def test_an_annotation_without_labelled_rows_is_a_warning(root, tmp_path, capsys):
    n = 20
    write_annotation(root / "annotations" / "Train_Set" / "train1.txt", [float("nan")] * n,
                     [float("nan")] * n)
    assert validate_stage.main(["--params", str(params_file(tmp_path, root))]) == 0
    lines = capsys.readouterr().out.splitlines()
    hits = [ln for ln in lines if "train1.txt" in ln]
    assert hits == [f"warning: {root.as_posix()}/annotations/Train_Set/train1.txt: no labelled arousal "
                    "or valence frame (every row is -5): the video adds nothing to training or "
                    "validation of arousal or valence"]
