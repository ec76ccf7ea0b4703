"""The shared per-shard stage runner: isolation of failures, summary, exit codes."""

from pipeline.core.manifest import VideoEntry, read_shard, shard_of, write_shards
from pipeline.core.stage import shard_stage_main


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
