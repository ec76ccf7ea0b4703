"""``data.allow_failures`` with the real stages: a plain folder of videos without transcripts under
``asr.engine: transcripts`` fails every video of the text chain; each stage still writes its (empty)
output folder and its failure list, and the other stages run for what succeeded. Without it, the
first failing stage stops with the error naming the file."""

from __future__ import annotations

import yaml

from pipeline.core import layout
from pipeline.core.stage import FAILURES_FILE
from stages import audio_features, extract_audio, manifest, punctuate, text_features, transcribe
from tests.media_fixtures import make_video


def _setup(tmp_path, allow: bool):
    root = tmp_path / "videos"
    for k, vid in enumerate(("a", "b")):
        make_video(root / f"{vid}.mp4", n_frames=20, fps=10.0, seed=k)
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({
        "data": {"root": str(root), "layout": "folder", "shards": 1, "shard_ids": [0],
                 "allow_failures": allow},
        "asr": {"engine": "transcripts"}}))
    data = tmp_path / "data"
    common = ["--params", str(params), "--data", str(data)]
    assert manifest.main(common) == 0
    assert extract_audio.main([*common, "--shard", "0"]) == 0
    return data, [*common, "--shard", "0"]


def test_an_all_failed_shard_still_gives_its_outputs(tmp_path):
    data, args = _setup(tmp_path, allow=True)
    for stage in (transcribe, punctuate, text_features, audio_features):
        assert stage.main(args) == 0
    for folder, why in [(layout.asr_dir(0, data), "no transcript for video"),
                        (layout.transcript_dir(0, data), "missing"),
                        (layout.feature_shard_dir("text", 0, data), "missing")]:
        assert sorted(p.name for p in folder.iterdir()) == [FAILURES_FILE], folder
        rows = (folder / FAILURES_FILE).read_text().splitlines()
        assert rows[0] == "video_id\terror" and [r.split("\t")[0] for r in rows[1:]] == ["a", "b"]
        assert all(why in r for r in rows[1:]), rows
    assert "videos/transcripts" in (layout.asr_dir(0, data) / FAILURES_FILE).read_text()
    audio = layout.feature_shard_dir("audio", 0, data)
    assert sorted(p.name for p in audio.iterdir()) == ["a.h5", "b.h5"]  # no failures, no list
    # fixed (a transcript for a), the rerun lists only b
    (tmp_path / "videos" / "transcripts").mkdir()
    (tmp_path / "videos" / "transcripts" / "a.json").write_text('[{"word": "hi", "start": 0.1, "end": 0.5}]')
    assert manifest.main(args[:4]) == 0 and transcribe.main(args) == 0
    asr = layout.asr_dir(0, data)
    assert sorted(p.name for p in asr.iterdir()) == ["a.json", FAILURES_FILE]
    assert (asr / FAILURES_FILE).read_text().splitlines()[1].startswith("b\t")


def test_without_allow_failures_the_first_failure_stops(tmp_path, caplog):
    data, args = _setup(tmp_path, allow=False)
    assert transcribe.main(args) == 1
    assert "video a failed" in caplog.text and "no transcript for video 'a'" in caplog.text
    assert str(tmp_path / "videos" / "transcripts") in caplog.text
    assert not (layout.asr_dir(0, data) / FAILURES_FILE).exists()
