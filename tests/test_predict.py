"""``rjcma predict``: any video file → per-frame CSV + PNG with the stages' own feature code."""

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from fusion.checkpoint import save_checkpoint
from fusion.model import RJCMA
from pipeline.core.params import Params
from rjcma.cli import main
from rjcma.predict import extract_features, predict
from tests.media_fixtures import make_video

N_FRAMES = 30
FPS = 10.0


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("predict")
    video = make_video(tmp / "clip.mp4", n_frames=N_FRAMES, fps=FPS, face="astronaut")
    transcript = tmp / "clip.json"
    transcript.write_text(json.dumps([{"word": "happy", "start": 0.2, "end": 0.8},
                                      {"word": "day", "start": 1.0, "end": 1.6}]))
    params = Params()
    params = replace(params, fusion=replace(params.fusion, window=16, stride=8, recursions=1,
                                            tcn_channels={"audio": (8,), "visual": (8,), "text": (8,)}))
    feats, present, fps, notes = extract_features(video, params, ("audio", "visual", "text"), transcript)
    dims = {m: x.shape[1] for m, x in feats.items()}
    runs = tmp / "train"
    for seed, run, targets in [(0, "0-valence", ["valence"]), (1, "1-valence", ["valence"]),
                               (2, "0-arousal", ["arousal"])]:
        torch.manual_seed(seed)
        model = RJCMA(params.fusion, dims, n_outputs=1)
        save_checkpoint(runs / run / "checkpoint.pt", model, targets=targets, params=params)
    return {"tmp": tmp, "video": video, "transcript": transcript, "runs": runs, "feats": feats,
            "present": present, "notes": notes}


def test_features_are_computed_for_every_modality(setup):
    feats = setup["feats"]
    assert set(feats) == {"audio", "visual", "text"}
    assert all(x.shape[0] == N_FRAMES for x in feats.values())
    assert setup["present"].mean() > 0.8  # the astronaut's face is found
    text = feats["text"]
    # words cover 0.2-0.8 s and 1.0-1.6 s: frames 2..7 and 10..15 carry features, the gaps are zero
    assert np.abs(text[2:8]).sum(1).min() > 0 and np.abs(text[10:16]).sum(1).min() > 0
    assert np.abs(text[[0, 1, 8, 9, 16, 29]]).sum() == 0
    assert setup["notes"] == []


def test_cli_writes_csv_and_png_and_averages_folds(setup, tmp_path):
    out = tmp_path / "out"
    code = main(["predict", str(setup["video"]), "--model", str(setup["runs"]), "--out", str(out),
                 "--transcript", str(setup["transcript"])])
    assert code == 0
    rows = (out / "clip.csv").read_text().splitlines()
    assert rows[0] == "frame,time,arousal,valence,face"
    assert len(rows) == N_FRAMES + 1
    values = np.array([[float(v) for v in r.split(",")] for r in rows[1:]])
    assert np.all(np.abs(values[:, 2:4]) <= 1)
    assert (out / "clip.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the two valence folds are averaged
    single = [predict(setup["video"], setup["runs"] / r, transcript=setup["transcript"]).values["valence"]
              for r in ("0-valence", "1-valence")]
    np.testing.assert_allclose(values[:, 3], (single[0] + single[1]) / 2, atol=2e-6)
    assert not np.allclose(single[0], single[1])


def test_bad_videos_are_named_and_the_others_still_predicted(setup, tmp_path, caplog):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(setup["video"].read_bytes()[:300])
    mute = make_video(tmp_path / "mute.mp4", n_frames=20, fps=FPS, with_audio=False)
    out = tmp_path / "out"
    code = main(["predict", str(broken), str(mute), "--model", str(setup["runs"] / "0-valence"),
                 "--out", str(out)])
    assert code == 1
    assert "broken.mp4" in caplog.text
    assert len((out / "mute.csv").read_text().splitlines()) == 21
    assert not (out / "broken.csv").exists()
    assert "no audio track" in caplog.text


def test_transcript_file_for_many_videos_is_refused(setup, tmp_path, caplog):
    code = main(["predict", str(setup["video"]), str(setup["video"]), "--model", str(setup["runs"]),
                 "--transcript", str(setup["transcript"]), "--out", str(tmp_path)])
    assert code == 2 and "one file" in caplog.text


def test_missing_model_dir_is_a_clear_error(setup, tmp_path, caplog):
    code = main(["predict", str(setup["video"]), "--model", str(tmp_path / "nothing"),
                 "--out", str(tmp_path)])
    assert code == 2 and "no such model directory" in caplog.text


def test_mistakes_in_what_the_user_named_are_errors_not_zeros(setup, tmp_path, caplog):
    video, runs = str(setup["video"]), str(setup["runs"])
    bad = tmp_path / "words.txt"
    bad.write_text("hello")
    assert main(["predict", video, "--model", runs, "--transcript", str(bad),
                 "--out", str(tmp_path / "o1")]) == 1
    assert "words.txt: unknown transcript format" in caplog.text
    assert not (tmp_path / "o1" / "clip.csv").exists()
    (tmp_path / "nocrops").mkdir()
    assert main(["predict", video, "--model", runs, "--crops", str(tmp_path / "nocrops"),
                 "--out", str(tmp_path / "o2")]) == 1
    assert "no face crops" in caplog.text
    other = tmp_path / "other"
    other.mkdir()
    (other / "clip.mp4").write_bytes(setup["video"].read_bytes())
    assert main(["predict", video, str(other / "clip.mp4"), "--model", runs,
                 "--out", str(tmp_path / "o3")]) == 2
    assert "same name" in caplog.text
    (tmp_path / "afile").write_text("x")
    assert main(["predict", video, "--model", runs, "--out", str(tmp_path / "afile")]) == 2
    assert "not a directory" in caplog.text



def test_a_checkpoint_trained_on_cuda1_predicts_on_this_cpu(setup, tmp_path, caplog):
    """Checkpoints record where they ran (visual/audio/asr/train.device = cuda:1, here an IR-50
    checkpoint): predict places every backbone on its own --device (auto: this CPU), never that."""
    from pipeline.visual.ir50 import IR50

    assert not torch.cuda.is_available()
    torch.manual_seed(0)
    weights = tmp_path / "res50_ir_0.887.pth"
    torch.save(IR50().state_dict(), weights)
    params = Params()
    params = replace(params,
                     fusion=replace(params.fusion, modalities=("audio", "visual"), window=16, stride=8,
                                    recursions=1, tcn_channels={"audio": (8,), "visual": (8,)}),
                     visual=replace(params.visual, backbone="ir50", ir50_weights=str(weights)))
    model = RJCMA(params.fusion, {"audio": 64, "visual": 512}, n_outputs=1)
    on_gpu = replace(params, visual=replace(params.visual, device="cuda:1"),
                     audio=replace(params.audio, device="cuda:1"),
                     asr=replace(params.asr, device="cuda:1"), train=replace(params.train, device="cuda:1"))
    for run, p in (("gpu", on_gpu), ("cpu", replace(params, visual=replace(params.visual, device="cpu")))):
        save_checkpoint(tmp_path / run / "checkpoint.pt", model, targets=["valence"], params=p)
    out = tmp_path / "out"
    assert main(["predict", str(setup["video"]), "--model", str(tmp_path / "gpu"), "--out", str(out)]) == 0
    got = np.loadtxt(out / "clip.csv", delimiter=",", skiprows=1)[:, 2]
    ref = predict(setup["video"], tmp_path / "cpu", device="cpu").values["valence"]
    assert np.isfinite(got).all() and np.ptp(got) > 0
    np.testing.assert_allclose(got, ref, atol=1e-6)
    # a device this machine lacks, asked for explicitly, is a clear error naming the option
    assert main(["predict", str(setup["video"]), "--model", str(tmp_path / "gpu"), "--device", "cuda:1",
                 "--out", str(out)]) == 2
    assert "--device: 'cuda:1'" in caplog.text
