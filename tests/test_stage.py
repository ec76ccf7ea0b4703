"""The shared per-shard stage runner: isolation of failures, summary, exit codes."""

import json
import logging

from pipeline.core import layout
from pipeline.core.manifest import VideoEntry, read_shard, shard_of, write_shards
from pipeline.core.params import AsrParams, FusionParams, Params
from pipeline.core.stage import CONDITIONS_FILE, Outcome, shard_stage_main
from pipeline.core.uses import UNUSED_FILE, chain_uses
from stages import uses as uses_stage


def _entry(vid, shard=0):
    return VideoEntry(id=vid, source=f"{vid}.mp4", source_id=vid, content_hash="h", fps=10.0,
                      n_frames=10, duration=1.0, has_audio=True, shard=shard)


def test_shards_are_stable_and_complete(tmp_path):
    ids = [f"video{i}" for i in range(20)]
    assert [shard_of(i, 3) for i in ids] == [shard_of(i, 3) for i in ids]
    entries = [_entry(i, shard_of(i, 3)) for i in ids]
    write_shards(entries, 3, tmp_path)
    got = sorted(e.id for k in range(3) for e in read_shard(k, tmp_path))
    assert got == sorted(ids)


def _params(tmp_path, allow):
    p = tmp_path / "params.yaml"
    p.write_text(f"data:\n  allow_failures: {str(allow).lower()}\n")
    return p


def test_one_bad_video_does_not_stop_the_others(tmp_path, caplog):
    write_shards([_entry("good1"), _entry("bad"), _entry("good2")], 1, tmp_path)
    seen = []

    def make_process(params, shard, data):
        def process(entry):
            if entry.id == "bad":
                raise ValueError(f"{entry.source}: moov atom not found")
            seen.append(entry.id)
            return "done"
        return process

    argv = ["--params", str(_params(tmp_path, False)), "--data", str(tmp_path), "--shard", "0"]
    assert shard_stage_main("demo", "d", make_process, argv) == 1
    assert seen == ["good1", "good2"]
    assert "bad.mp4: moov atom not found" in caplog.text
    assert "2 done, 0 skipped (current), 1 failed" in caplog.text
    argv[1] = str(_params(tmp_path, True))
    assert shard_stage_main("demo", "d", make_process, argv) == 0


def test_setup_errors_are_one_clear_line(tmp_path, caplog):
    argv = ["--params", str(_params(tmp_path, False)), "--data", str(tmp_path / "nodata"), "--shard", "0"]
    assert shard_stage_main("demo", "d", lambda *a: (lambda e: "done"), argv) == 2
    assert "run `python -m stages.manifest` first" in caplog.text


def test_conditions_are_summarised_once_and_listed_in_the_output(tmp_path, caplog):
    write_shards([_entry("a"), _entry("b"), _entry("c"), _entry("d")], 1, tmp_path)
    out = tmp_path / "out" / "0"
    status = {"a": "done", "b": "skipped", "c": "done", "d": "done"}
    found = {"a": ("silent audio", "no face"), "b": ("silent audio",), "c": (), "d": ("silent audio",)}

    def make_process(params, shard, data):
        return lambda e: Outcome(status[e.id], found[e.id])

    argv = ["--params", str(_params(tmp_path, False)), "--data", str(tmp_path), "--shard", "0"]
    assert shard_stage_main("demo", "d", make_process, argv, out_dir=lambda s, d: out) == 0
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    path = out / CONDITIONS_FILE
    assert [ln for ln in lines if "video(s)" in ln] == [
        f"demo[0]: no face: 1 video(s), listed in {path}",
        f"demo[0]: silent audio: 3 video(s), listed in {path}"]
    assert not any("video a" in ln for ln in lines)  # per-video lines only with -v
    assert json.loads(path.read_text()) == {"no face": ["a"], "silent audio": ["a", "b", "d"]}
    # a rerun with the same conditions leaves the file alone (skip-if-current, DVC hashes)
    before = path.stat().st_mtime_ns, path.read_bytes()
    caplog.clear()
    assert shard_stage_main("demo", "d", make_process, argv + ["-v"], out_dir=lambda s, d: out) == 0
    assert (path.stat().st_mtime_ns, path.read_bytes()) == before
    assert "demo[0]: video a: no face" in caplog.text  # -v: one line per video
    # no condition left: no file
    found.update(a=(), b=(), d=())
    assert shard_stage_main("demo", "d", make_process, argv, out_dir=lambda s, d: out) == 0
    assert not path.exists()


def test_chain_verdicts_follow_the_modalities():
    def uses(modalities, engine="transcripts"):
        p = Params(fusion=FusionParams(modalities=modalities), asr=AsrParams(engine=engine))
        return {c: u.used for c, u in chain_uses(p).items()}

    assert uses(("audio", "visual", "text")) == dict(wav=True, audio=True, visual=True, text=True)
    assert uses(("text",)) == dict(wav=False, audio=False, visual=False, text=True)
    assert uses(("text",), "vosk") == dict(wav=True, audio=False, visual=False, text=True)  # ASR reads wavs
    assert uses(("video",)) == dict(wav=False, audio=False, visual=True, text=False)


def test_an_unused_chain_extracts_nothing_and_a_verdict_file_changes_only_with_its_chain(tmp_path, caplog):
    write_shards([_entry("a"), _entry("b")], 1, tmp_path)
    params = tmp_path / "params.yaml"
    out = tmp_path / "out" / "0"
    calls = []

    def make_process(p, shard, data):  # would load the model
        calls.append(shard)
        return lambda e: "done"

    def run(modalities):
        params.write_text(f"fusion: {{modalities: [{', '.join(modalities)}]}}\n")
        assert uses_stage.main(["--params", str(params), "--data", str(tmp_path)]) == 0
        argv = ["--params", str(params), "--data", str(tmp_path), "--shard", "0"]
        return shard_stage_main("audio_features", "d", make_process, argv, out_dir=lambda s, d: out,
                                chain="audio")

    assert run(["audio", "visual", "text"]) == 0 and calls == [0]
    audio_bytes = layout.uses_file("audio", tmp_path).read_bytes()
    caplog.clear()
    assert run(["visual", "text"]) == 0 and calls == [0]  # audio unused: no model, no video
    assert json.loads((out / UNUSED_FILE).read_text())["why"] == (
        "no configured run uses audio (not in fusion.modalities)")
    assert [r.getMessage() for r in caplog.records if "nothing to extract" in r.getMessage()] == [
        "audio_features[0]: nothing to extract for 2 videos: no configured run uses audio "
        "(not in fusion.modalities)"]
    run(["audio", "text"])  # back on: extracted again, the marker gone
    assert calls == [0, 0] and not (out / UNUSED_FILE).exists()
    run(["audio", "visual"])  # another modality's switch leaves audio's verdict byte-identical (DVC)
    assert layout.uses_file("audio", tmp_path).read_bytes() == audio_bytes
